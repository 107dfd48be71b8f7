"""The filter parser: Okta's syntax in, a small tree out, hostile input refused with a 400."""

from __future__ import annotations

import pytest

from headwater.domain.filters import MAX_COMPARISONS, MAX_DEPTH, And, Comparison, Not, Or, parse
from headwater.errors import InvalidRequest


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('status eq "ACTIVE"', Comparison("status", "eq", "ACTIVE")),
        ('status EQ "ACTIVE"', Comparison("status", "eq", "ACTIVE")),
        ("profile.title pr", Comparison("profile.title", "pr")),
        ('profile.login eq "a\\"b"', Comparison("profile.login", "eq", 'a"b')),
        ("profile.age gt 41", Comparison("profile.age", "gt", 41)),
        ("profile.score le 1.5", Comparison("profile.score", "le", 1.5)),
        ("profile.admin eq true", Comparison("profile.admin", "eq", True)),
        (
            'status eq "ACTIVE" and lastUpdated gt "2024-01-01T00:00:00.000Z"',
            And(
                (
                    Comparison("status", "eq", "ACTIVE"),
                    Comparison("lastUpdated", "gt", "2024-01-01T00:00:00.000Z"),
                )
            ),
        ),
        (
            'status eq "A" or status eq "B" and id eq "c"',
            Or(
                (
                    Comparison("status", "eq", "A"),
                    And((Comparison("status", "eq", "B"), Comparison("id", "eq", "c"))),
                )
            ),
        ),
        (
            '(status eq "A" or status eq "B") and not (id eq "c")',
            And(
                (
                    Or((Comparison("status", "eq", "A"), Comparison("status", "eq", "B"))),
                    Not(Comparison("id", "eq", "c")),
                )
            ),
        ),
    ],
)
def test_parses(text: str, tree: object) -> None:
    assert parse(text) == tree


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "status",
        'status eq "ACTIVE',
        'status is "ACTIVE"',
        'status eq "A" and',
        '(status eq "A"',
        'status eq "A")',
        "status eq ACTIVE",
        'status eq "A" "B"',
        "status eq 1e999",
        "eq eq eq",
        'status eq "\x00"',
        "x" * 5000,
        "(" * (MAX_DEPTH + 2) + 'a eq "b"' + ")" * (MAX_DEPTH + 2),
        "not " * 1000 + 'a eq "b"',
        " and ".join(['a eq "b"'] * (MAX_COMPARISONS + 1)),
    ],
)
def test_refuses_bad_filters_with_400(text: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(text)
    assert raised.value.code == "E0000001"
    assert raised.value.causes
