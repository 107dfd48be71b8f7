"""Profile rules: what can be stored must load back into the SDK and into both databases."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.domain.profiles import (
    MAX_ATTRIBUTES,
    check_text,
    merge,
    validate_group_profile,
    validate_user_profile,
)
from headwater.errors import InvalidRequest

BASE = {"login": "ann@example.com", "email": "ann@example.com", "firstName": "A", "lastName": "B"}


def causes_for(profile: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidRequest) as raised:
        validate_user_profile(profile)
    return raised.value.causes


def test_a_complete_profile_with_custom_attributes_is_kept_without_nulls() -> None:
    profile = {**BASE, "costCenter": "42", "level": 3, "vip": True, "tags": ["a", 1], "x": None}
    assert validate_user_profile(profile) == {k: v for k, v in profile.items() if k != "x"}


def test_every_missing_required_attribute_is_named() -> None:
    causes = causes_for({"login": "ann@example.com"})
    assert {c.split(":")[0] for c in causes} == {"email", "firstName", "lastName"}


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("login", "a@b"),
        ("login", "x" * 101),
        ("login", 12345),
        ("email", "not-an-email"),
        ("firstName", ""),
        ("firstName", "x" * 51),
        ("countryCode", "USA"),
        ("title", {"nested": "object"}),
        ("title", "nul\x00byte"),
        ("title", "lone \ud800 surrogate"),
        ("custom", float("nan")),
        ("custom", float("inf")),
        ("custom", 2**60),
        ("custom", {"a": 1}),
        ("custom", [[1]]),
        ("custom", "x" * 5000),
        ("bad name", "x"),
        ("dotted.name", "x"),
    ],
)
def test_bad_values_are_refused_naming_the_attribute(attribute: str, value: Any) -> None:
    causes = causes_for({**BASE, attribute: value})
    assert causes[0].startswith(f"{attribute}: ")


def test_merge_replaces_given_keeps_others_and_removes_nulls() -> None:
    current = {**BASE, "title": "Dev", "city": "Oslo"}
    merged = merge(current, {"title": "Lead", "city": None})
    assert merged == {**BASE, "title": "Lead"}


def test_group_profile_needs_a_name() -> None:
    assert validate_group_profile({"name": "Accounting", "description": None}) == {
        "name": "Accounting"
    }
    with pytest.raises(InvalidRequest):
        validate_group_profile({"description": "no name"})
    with pytest.raises(InvalidRequest):
        validate_group_profile("not an object")


def test_check_text() -> None:
    assert check_text("plain ü") is None
    assert check_text("a\x00") is not None
    assert check_text("\udfff") is not None


def test_a_profile_has_a_bounded_number_of_attributes() -> None:
    custom = {f"a{i}": i for i in range(MAX_ATTRIBUTES - len(BASE))}
    assert len(validate_user_profile({**BASE, **custom})) == MAX_ATTRIBUTES
    too_many = causes_for({**BASE, **custom, "one_more": 1})
    assert too_many == [f"profile: must have at most {MAX_ATTRIBUTES} attributes"]
    with pytest.raises(InvalidRequest):
        validate_group_profile({"name": "G", **{f"a{i}": i for i in range(MAX_ATTRIBUTES)}})
