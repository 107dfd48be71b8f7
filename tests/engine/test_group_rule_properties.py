"""Property: through any order of profile edits, manual membership changes, rule activations,
deactivations and deletions, the memberships equal what a plain model of the rules says:
manual ones, plus what inactive rules kept, plus the active rules' evaluation (in dependency
order, one rule reading a group another fills)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import group_rules
from headwater.testing.toolkit import (
    add_member,
    create_group,
    create_rule,
    create_user,
    make_runtime,
    remove_member,
    update_user,
)

USERS = 4
DEPARTMENTS = ("Eng", "Sales", None)
#: Groups: 0 and 1 filled by rules, 2 filled by a rule reading group 0, 3 only by hand.
GROUPS = 4


@dataclass(frozen=True)
class RuleModel:
    """A rule as the model sees it: its test over (profile, groups so far) and its group."""

    name: str
    target: int
    excluded_group: int | None

    def expression(self, groups: list[str]) -> str:
        return {
            "eng": 'user.department == "Eng"',
            "senior": "user.level >= 2",
            "eng-on-call": f'isMemberOfGroup("{groups[0]}") && user.level != 3',
            "sales-or-top": 'user.department == "Sales" || user.level == 3',
        }[self.name]

    def test(self, profile: dict[str, Any], member_of: set[int]) -> bool:
        if self.excluded_group is not None and self.excluded_group in member_of:
            return False
        department, level = profile.get("department"), profile.get("level")
        if self.name == "eng":
            return department == "Eng"
        if self.name == "senior":
            return isinstance(level, int) and level >= 2
        if self.name == "eng-on-call":
            return 0 in member_of and level != 3
        return department == "Sales" or level == 3


RULES = (
    RuleModel("eng", 0, None),
    RuleModel("sales-or-top", 0, 3),
    RuleModel("senior", 1, 3),
    RuleModel("eng-on-call", 2, None),
)
#: Writers before readers.
ORDER = (0, 1, 2, 3)


@dataclass
class Model:
    profiles: list[dict[str, Any]]
    manual: set[tuple[int, int]] = field(default_factory=set)
    status: dict[int, str] = field(default_factory=lambda: dict.fromkeys(range(len(RULES)), "I"))
    kept: dict[int, set[tuple[int, int]]] = field(
        default_factory=lambda: {i: set() for i in range(len(RULES))}
    )

    def holdings(self, rule: int) -> set[tuple[int, int]]:
        if self.status[rule] != "A":
            return set(self.kept[rule])
        return self.evaluate()[rule]

    def evaluate(self) -> dict[int, set[tuple[int, int]]]:
        result: dict[int, set[tuple[int, int]]] = {}
        base = set(self.manual)
        for rule, status in self.status.items():
            if status != "A":
                base |= self.kept[rule]
        for rule in ORDER:
            if self.status[rule] != "A":
                continue
            got = {
                (RULES[rule].target, user)
                for user in range(USERS)
                if RULES[rule].test(self.profiles[user], {g for g, u in base if u == user})
            }
            result[rule] = got
            base |= got
        return result

    def memberships(self) -> set[tuple[int, int]]:
        found = set(self.manual)
        for rule in self.status:
            if self.status[rule] != "D":
                found |= self.holdings(rule)
        return found


profiles = st.fixed_dictionaries(
    {"department": st.sampled_from(DEPARTMENTS), "level": st.integers(1, 3)}
)
actions = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, USERS - 1), profiles),
    st.tuples(st.just("add"), st.integers(0, GROUPS - 1), st.integers(0, USERS - 1)),
    st.tuples(st.just("remove"), st.integers(0, GROUPS - 1), st.integers(0, USERS - 1)),
    st.tuples(st.just("activate"), st.integers(0, len(RULES) - 1), st.just(None)),
    st.tuples(st.just("deactivate"), st.integers(0, len(RULES) - 1), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, len(RULES) - 1), st.booleans()),
)


@contextmanager
def fresh_runtime() -> Iterator[Runtime]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        runtime = make_runtime(f"sqlite:///{path / 'hw.db'}", path)
        try:
            yield runtime
        finally:
            runtime.close()


def _actual(runtime: Runtime, groups: list[str], users: list[str]) -> set[tuple[int, int]]:
    with runtime.database.read() as session:
        rows = session.execute(select(t.Membership.group_id, t.Membership.user_id)).all()
    return {(groups.index(g), users.index(u)) for g, u in rows}


def _apply(runtime: Runtime, model: Model, ids: dict[str, list[str]], action: Any) -> None:
    kind, a, b = action
    groups, users, rules = ids["groups"], ids["users"], ids["rules"]
    if kind == "edit":
        update_user(runtime, users[a], **b)
        model.profiles[a] = b
    elif kind == "add" and (a, b) not in model.manual:
        if a < 3:
            add_member(runtime, groups[a], users[b])
            model.manual.add((a, b))
    elif kind == "remove":
        remove_member(runtime, groups[a], users[b])
        model.manual.discard((a, b))
    elif model.status[a] == "D":
        return
    elif kind == "activate":
        with runtime.database.transaction() as session:
            group_rules.activate_rule(session, SYSTEM, rules[a])
        group_rules.run_sweep(runtime.database, rules[a], SYSTEM, batch=3)
        model.status[a] = "A"
        model.kept[a] = set()
    elif kind == "deactivate":
        holdings = model.holdings(a)
        with runtime.database.transaction() as session:
            group_rules.deactivate_rule(session, SYSTEM, rules[a], remove_users=b)
        model.status[a] = "I"
        model.kept[a] = set() if b else holdings
    elif kind == "delete" and model.status[a] == "I":
        with runtime.database.transaction() as session:
            group_rules.delete_rule(session, SYSTEM, rules[a], remove_users=b)
        if not b:
            model.manual |= model.kept[a]
        model.status[a] = "D"
        model.kept[a] = set()


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    start=st.lists(profiles, min_size=USERS, max_size=USERS),
    first=st.permutations(range(len(RULES))),
    steps=st.lists(actions, min_size=3, max_size=20),
)
def test_memberships_equal_the_rules_evaluation(
    start: list[dict[str, Any]], first: list[int], steps: list[Any]
) -> None:
    with fresh_runtime() as runtime:
        groups = [create_group(runtime, f"group{i}") for i in range(GROUPS)]
        users = [create_user(runtime, f"user{i}@example.com", **start[i]) for i in range(USERS)]
        rules = [
            create_rule(
                runtime,
                rule.name,
                rule.expression(groups),
                [groups[rule.target]],
                exclude_groups=[] if rule.excluded_group is None else [groups[3]],
                activate=False,
            )
            for rule in RULES
        ]
        model = Model([dict(profile) for profile in start])
        ids = {"groups": groups, "users": users, "rules": rules}
        # Every rule activated once, in any order (readers before or after writers).
        for step in [("activate", rule, None) for rule in first] + steps:
            if step[0] == "add" and step[1] == 3:
                add_member(runtime, groups[3], users[step[2]])
                model.manual.add((3, step[2]))
            else:
                _apply(runtime, model, ids, step)
            assert _actual(runtime, groups, users) == model.memberships(), step
