"""The matching rules, pure, from tables: first rule that finds exactly one user wins, a rule
that finds two is a conflict, two accounts reaching one user are both conflicts, an account
already linked reads as linked."""

from __future__ import annotations

import pytest

from headwater.domain.downstream import ListedAccount
from headwater.domain.matching import (
    DEFAULT_RULES,
    DirectoryPerson,
    MatchKind,
    MatchRule,
    check_rules,
    match_accounts,
    parse_rules,
)
from headwater.domain.states import HoldDecision, UnmanagedState
from headwater.domain.unmanaged import plan_stray

PEOPLE = [
    DirectoryPerson("u1", "ann@example.com", "ann@example.com", "E1"),
    DirectoryPerson("u2", "bob@example.com", "shared@example.com", "E2"),
    DirectoryPerson("u3", "cy@example.com", "shared@example.com", None),
    DirectoryPerson("u4", "dee@example.com", "dee@example.com", "E4"),
]
ALL = [MatchRule.USER_NAME, MatchRule.EMAIL, MatchRule.EXTERNAL_ID, MatchRule.EMPLOYEE_NUMBER]


def account(id: str, user_name: str, **more: str) -> ListedAccount:
    return ListedAccount(id, user_name, True, **more)


@pytest.mark.parametrize(
    ("given", "rules", "kind", "user", "rule"),
    [
        (account("a", "ANN@example.com"), ALL, MatchKind.MATCHED, "u1", MatchRule.USER_NAME),
        (account("a", "x", email="Ann@Example.com"), ALL, MatchKind.MATCHED, "u1", MatchRule.EMAIL),
        (account("a", "x", external_id="u4"), ALL, MatchKind.MATCHED, "u4", MatchRule.EXTERNAL_ID),
        (
            account("a", "x", employee_number="E2"),
            ALL,
            MatchKind.MATCHED,
            "u2",
            MatchRule.EMPLOYEE_NUMBER,
        ),
        # Exact employee numbers: no case folding.
        (account("a", "x", employee_number="e2"), ALL, MatchKind.UNMATCHED, None, None),
        (
            account("a", "x", email="shared@example.com"),
            ALL,
            MatchKind.CONFLICT,
            "u2",
            MatchRule.EMAIL,
        ),
        # First match wins: userName decides before the ambiguous email is looked at.
        (
            account("a", "bob@example.com", email="shared@example.com"),
            ALL,
            MatchKind.MATCHED,
            "u2",
            MatchRule.USER_NAME,
        ),
        # A rule not in the app's list is never used.
        (account("a", "x", external_id="u4"), [MatchRule.EMAIL], MatchKind.UNMATCHED, None, None),
        (account("a", "nobody"), ALL, MatchKind.UNMATCHED, None, None),
    ],
)
def test_one_account(
    given: ListedAccount,
    rules: list[MatchRule],
    kind: MatchKind,
    user: str | None,
    rule: MatchRule | None,
) -> None:
    [verdict] = match_accounts([given], PEOPLE, rules)
    assert (verdict.kind, verdict.user_id, verdict.rule) == (kind, user, rule)


def test_two_accounts_for_one_user_are_both_conflicts() -> None:
    verdicts = match_accounts(
        [account("a", "ann@example.com"), account("b", "x", email="ann@example.com")],
        PEOPLE,
        ALL,
    )
    assert [v.kind for v in verdicts] == [MatchKind.CONFLICT, MatchKind.CONFLICT]
    assert {v.reason for v in verdicts} == {"2 accounts match the same user"}


def test_linked_accounts_and_users_who_hold_one_already() -> None:
    verdicts = match_accounts(
        [account("a", "ann@example.com"), account("b", "dee@example.com")],
        PEOPLE,
        ALL,
        linked={"u1": "a", "u4": "other"},
    )
    assert [v.kind for v in verdicts] == [MatchKind.LINKED, MatchKind.CONFLICT]


def test_rules_setting() -> None:
    assert parse_rules("email, userName") == (MatchRule.EMAIL, MatchRule.USER_NAME)
    assert parse_rules("bogus") == DEFAULT_RULES
    assert check_rules("email,employeeNumber") is None
    assert check_rules("email,email") == "email is named twice"
    assert check_rules("shoeSize") is not None


@pytest.mark.parametrize(
    ("state", "active", "decision", "sends", "held", "done"),
    [
        (UnmanagedState.DEACTIVATING, True, None, True, False, False),
        (UnmanagedState.DEACTIVATING, True, HoldDecision.APPROVED, True, False, False),
        (UnmanagedState.DEACTIVATING, True, HoldDecision.HELD, False, True, False),
        (UnmanagedState.DEACTIVATING, False, None, False, False, True),
        (UnmanagedState.UNMANAGED, True, None, False, False, False),
        (UnmanagedState.IGNORED, True, None, False, False, False),
    ],
)
def test_stray_plans(
    state: UnmanagedState,
    active: bool,
    decision: HoldDecision | None,
    sends: bool,
    held: bool,
    done: bool,
) -> None:
    plan = plan_stray(state, "ext-1", active, decision)
    assert (plan.operation is not None, plan.held, plan.done) == (sends, held, done)
    if plan.operation is not None:
        assert plan.operation.external_id == "ext-1" and plan.operation.active is False
