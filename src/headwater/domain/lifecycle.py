"""Okta's user lifecycle as data: which action is legal from which status, and where it leads.

Pure: no I/O, so the API, the console and the tests share one table of truth. Refusals carry
the error Okta gives for them (E0000016, E0000038, or E0000001 for suspend/unsuspend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from headwater.errors import AlreadyActive, HeadwaterError, InvalidRequest, StatusConflict

__all__ = [
    "DELETED",
    "RULES",
    "Action",
    "Rule",
    "Status",
    "allowed_actions",
    "initial_status",
    "transition",
]


class Status(StrEnum):
    """The statuses Okta shows (RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT are never set here)."""

    STAGED = "STAGED"
    PROVISIONED = "PROVISIONED"
    ACTIVE = "ACTIVE"
    RECOVERY = "RECOVERY"
    PASSWORD_EXPIRED = "PASSWORD_EXPIRED"
    LOCKED_OUT = "LOCKED_OUT"
    SUSPENDED = "SUSPENDED"
    DEPROVISIONED = "DEPROVISIONED"


#: Internal status of a deleted user awaiting purge; never shown, every read treats it as 404.
DELETED = "DELETED"


class Action(StrEnum):
    """Lifecycle operations, spelled as in ``/api/v1/users/{id}/lifecycle/{action}``."""

    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    REACTIVATE = "reactivate"


@dataclass(frozen=True)
class Rule:
    """One action: the statuses it is legal from, its result, and how it refuses.

    ``target`` is None for activation, whose result depends on whether a password exists.
    """

    allowed_from: frozenset[Status]
    target: Status | None
    refusal: type[HeadwaterError]
    message: str
    #: Statuses refused with a different error than ``refusal``.
    special: Mapping[Status, tuple[type[HeadwaterError], str]] = field(default_factory=dict)


_ALL = frozenset(Status)
_NOT_ALLOWED = "This operation is not allowed in the user's current status."

RULES: Mapping[Action, Rule] = {
    Action.ACTIVATE: Rule(
        allowed_from=frozenset({Status.STAGED, Status.DEPROVISIONED}),
        target=None,
        refusal=StatusConflict,
        message=_NOT_ALLOWED,
        special={
            Status.ACTIVE: (
                AlreadyActive,
                "Activation failed because the user is already active",
            )
        },
    ),
    Action.DEACTIVATE: Rule(
        allowed_from=_ALL - {Status.DEPROVISIONED},
        target=Status.DEPROVISIONED,
        refusal=StatusConflict,
        message=_NOT_ALLOWED,
    ),
    Action.SUSPEND: Rule(
        allowed_from=frozenset({Status.ACTIVE}),
        target=Status.SUSPENDED,
        refusal=InvalidRequest,
        message="Api validation failed: Cannot suspend a user that is not active",
    ),
    Action.UNSUSPEND: Rule(
        allowed_from=frozenset({Status.SUSPENDED}),
        target=Status.ACTIVE,
        refusal=InvalidRequest,
        message="Api validation failed: Cannot unsuspend a user that is not suspended",
    ),
    Action.REACTIVATE: Rule(
        allowed_from=frozenset({Status.PROVISIONED, Status.RECOVERY}),
        target=Status.PROVISIONED,
        refusal=StatusConflict,
        message=_NOT_ALLOWED,
    ),
}


def initial_status(*, activate: bool, has_password: bool) -> Status:
    """Status of a new user: STAGED unless activated; ACTIVE only with a password."""
    if not activate:
        return Status.STAGED
    return Status.ACTIVE if has_password else Status.PROVISIONED


def transition(current: Status | str, action: Action, *, has_password: bool) -> Status:
    """The status ``action`` leads to from ``current``, or the error Okta answers with."""
    rule = RULES[action]
    status = Status(current)
    if status in rule.allowed_from:
        if rule.target is None:
            return initial_status(activate=True, has_password=has_password)
        return rule.target
    error, message = rule.special.get(status, (rule.refusal, rule.message))
    raise error(message)


def allowed_actions(current: Status | str) -> list[Action]:
    """Actions legal from ``current``, in a stable order (for the user's ``_links``)."""
    status = Status(current)
    return [action for action, rule in RULES.items() if status in rule.allowed_from]
