"""Okta's user lifecycle table: every (status, action) pair, with its result or its error."""

from __future__ import annotations

import pytest

from headwater.domain.lifecycle import (
    Action,
    Status,
    allowed_actions,
    initial_status,
    transition,
)
from headwater.errors import AlreadyActive, InvalidRequest, StatusConflict

S = Status
A = Action
ALL = list(Status)

#: (action, from) -> result; None in the result means "depends on the password".
LEGAL: dict[tuple[Action, Status], Status | None] = {
    (A.ACTIVATE, S.STAGED): None,
    (A.ACTIVATE, S.DEPROVISIONED): None,
    **{(A.DEACTIVATE, s): S.DEPROVISIONED for s in ALL if s is not S.DEPROVISIONED},
    (A.SUSPEND, S.ACTIVE): S.SUSPENDED,
    (A.UNSUSPEND, S.SUSPENDED): S.ACTIVE,
    (A.REACTIVATE, S.PROVISIONED): S.PROVISIONED,
    (A.REACTIVATE, S.RECOVERY): S.PROVISIONED,
}

#: Errors for illegal pairs, by action; activation of an active user has its own code.
REFUSALS = {
    A.ACTIVATE: (StatusConflict, "E0000038"),
    A.DEACTIVATE: (StatusConflict, "E0000038"),
    A.SUSPEND: (InvalidRequest, "E0000001"),
    A.UNSUSPEND: (InvalidRequest, "E0000001"),
    A.REACTIVATE: (StatusConflict, "E0000038"),
}

ILLEGAL = [(a, s) for a in Action for s in ALL if (a, s) not in LEGAL]


@pytest.mark.parametrize(("action", "status"), list(LEGAL))
@pytest.mark.parametrize("has_password", [True, False])
def test_legal_transitions(action: Action, status: Status, has_password: bool) -> None:
    expected = LEGAL[(action, status)]
    if expected is None:
        expected = S.ACTIVE if has_password else S.PROVISIONED
    assert transition(status, action, has_password=has_password) is expected
    assert action in allowed_actions(status)


@pytest.mark.parametrize(("action", "status"), ILLEGAL)
def test_illegal_transitions_raise_okta_errors(action: Action, status: Status) -> None:
    error, code = REFUSALS[action]
    if (action, status) == (A.ACTIVATE, S.ACTIVE):
        error, code = AlreadyActive, "E0000016"
    with pytest.raises(error) as raised:
        transition(status, action, has_password=True)
    assert raised.value.code == code
    assert action not in allowed_actions(status)


def test_statuses_given_as_strings_are_accepted() -> None:
    assert transition("ACTIVE", A.SUSPEND, has_password=False) is S.SUSPENDED


@pytest.mark.parametrize(
    ("activate", "has_password", "expected"),
    [
        (False, False, S.STAGED),
        (False, True, S.STAGED),
        (True, False, S.PROVISIONED),
        (True, True, S.ACTIVE),
    ],
)
def test_initial_status(activate: bool, has_password: bool, expected: Status) -> None:
    assert initial_status(activate=activate, has_password=has_password) is expected


def test_every_status_can_reach_deprovisioned_except_itself() -> None:
    reachable = {s for s in ALL if A.DEACTIVATE in allowed_actions(s)}
    assert reachable == set(ALL) - {S.DEPROVISIONED}
