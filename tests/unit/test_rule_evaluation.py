"""The pure side of group rules, from tables: which rules feed which, cycles, order, matches."""

from __future__ import annotations

import pytest

from headwater.domain.expressions import Facts
from headwater.domain.group_rules import (
    RuleDefinition,
    compile_rule,
    find_cycle,
    matching_groups,
    order_rules,
)

NAMES = {"gA": "Alpha", "gB": "Beta", "gC": "Gamma"}


def rule(rule_id: str, expression: str, *groups: str, exclude: str = "") -> RuleDefinition:
    excluded = frozenset({exclude}) if exclude else frozenset()
    return RuleDefinition(rule_id, rule_id, expression, groups, exclude_group_ids=excluded)


@pytest.mark.parametrize(
    ("rules", "cycle"),
    [
        ([rule("r1", "true", "gA")], None),
        ([rule("r1", 'isMemberOfGroup("gA")', "gA")], ["r1", "r1"]),
        ([rule("r1", 'isMemberOfGroup("gA")', "gB"), rule("r2", "true", "gA")], None),
        (
            [rule("r1", 'isMemberOfGroup("gA")', "gB"), rule("r2", 'isMemberOfGroup("gB")', "gA")],
            ["r1", "r2", "r1"],
        ),
        (
            [
                rule("r1", 'isMemberOfGroupName("Beta")', "gC"),
                rule("r2", 'isMemberOfGroupNameStartsWith("Gam")', "gA"),
                rule("r3", 'isMemberOfAnyGroup("gX", "gA")', "gB"),
            ],
            ["r1", "r2", "r3", "r1"],
        ),
        (
            [rule("r1", "true", "gA", exclude="gB"), rule("r2", "true", "gB", exclude="gA")],
            ["r1", "r2", "r1"],
        ),
        ([rule("r1", 'isMemberOfGroupNameContains("lph")', "gB"), rule("r2", "true", "gA")], None),
    ],
)
def test_cycles_through_the_groups_rules_read_and_fill(
    rules: list[RuleDefinition], cycle: list[str] | None
) -> None:
    assert find_cycle([compile_rule(r) for r in rules], NAMES) == cycle


def test_writers_come_before_their_readers() -> None:
    compiled = [
        compile_rule(rule("reader", 'isMemberOfGroupName("Alpha")', "gB")),
        compile_rule(rule("last", 'isMemberOfGroup("gB")', "gC")),
        compile_rule(rule("writer", 'user.department == "Eng"', "gA")),
    ]
    assert [r.id for r in order_rules(compiled, NAMES)] == ["writer", "reader", "last"]


def test_one_pass_in_order_gives_the_final_memberships() -> None:
    compiled = order_rules(
        [
            compile_rule(rule("chain", 'isMemberOfGroup("gA")', "gB")),
            compile_rule(rule("eng", 'user.department == "Eng"', "gA")),
            compile_rule(rule("not-c", "true", "gC", exclude="gB")),
        ],
        NAMES,
    )
    eng = Facts(user={"department": "Eng"})
    assert matching_groups(compiled, "u1", eng, NAMES.__getitem__) == {
        ("eng", "gA"),
        ("chain", "gB"),
    }
    sales = Facts(user={"department": "Sales"})
    assert matching_groups(compiled, "u2", sales, NAMES.__getitem__) == {("not-c", "gC")}


def test_a_failing_evaluation_or_an_excluded_person_is_no_match() -> None:
    compiled = compile_rule(
        RuleDefinition("r", "r", 'String.startsWith(user.code, "A")', ("gA",), frozenset({"u-out"}))
    )
    assert compiled.matches("u1", Facts(user={"code": "Abc"}))
    assert not compiled.matches("u1", Facts(user={"code": 42}))  # a number where text is needed
    assert not compiled.matches("u-out", Facts(user={"code": "Abc"}))
    assert not compiled.matches("u1", Facts(user={}))  # null: false
