"""Desired state of one user in one app, from the directory alone (pure, no I/O).

The effective assignment is the union of a direct assignment and every assigned group the user
is a member of; the app profile comes from the highest-priority group (lowest number), and a
direct assignment's profile overrides it. A user gets an account only when assigned and in a
status that may hold one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.domain.lifecycle import Status
from headwater.domain.settings import ProvisioningSettings, SuspendAction

__all__ = [
    "DesiredAccount",
    "DirectGrant",
    "GroupGrant",
    "UserFacts",
    "desired_account",
    "resolve_profile",
]

#: Directory statuses whose users keep their downstream accounts active.
ACCOUNT_STATUSES = frozenset(
    {
        Status.ACTIVE,
        Status.PROVISIONED,
        Status.RECOVERY,
        Status.PASSWORD_EXPIRED,
        Status.LOCKED_OUT,
    }
)


@dataclass(frozen=True)
class GroupGrant:
    """The app is assigned to a group the user belongs to."""

    group_id: str
    group_name: str
    priority: int
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DirectGrant:
    """The app is assigned to the user directly (scope USER)."""

    profile: dict[str, Any] = field(default_factory=dict)
    user_name: str | None = None


@dataclass(frozen=True)
class UserFacts:
    id: str
    status: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class DesiredAccount:
    """What the directory wants downstream for one (app, user)."""

    #: True when the user should hold an account (active or not).
    assigned: bool
    #: True when the account should be active downstream.
    active: bool
    scope: str | None
    app_profile: dict[str, Any]
    #: The group whose profile won, if any (for explanations).
    winning_group: GroupGrant | None
    direct: DirectGrant | None
    groups: tuple[GroupGrant, ...]
    #: A suspended user whose account is left untouched (app setting LEAVE).
    leave_alone: bool = False


def resolve_profile(
    direct: DirectGrant | None, groups: tuple[GroupGrant, ...] | list[GroupGrant]
) -> tuple[dict[str, Any], GroupGrant | None]:
    """Highest-priority group's profile, overridden key by key by the direct assignment's."""
    ordered = sorted(groups, key=lambda g: (g.priority, g.group_id))
    winner = ordered[0] if ordered else None
    profile = dict(winner.profile) if winner else {}
    if direct is not None:
        profile.update(direct.profile)
    return profile, winner


def desired_account(
    user: UserFacts | None,
    direct: DirectGrant | None,
    groups: tuple[GroupGrant, ...],
    settings: ProvisioningSettings,
) -> DesiredAccount:
    """Combine assignment and status into the account the directory wants."""
    profile, winner = resolve_profile(direct, groups)
    scope = "USER" if direct is not None else ("GROUP" if groups else None)
    has_grant = direct is not None or bool(groups)
    if user is None or not has_grant:
        return DesiredAccount(False, False, scope, profile, winner, direct, groups)
    if user.status == Status.SUSPENDED:
        if settings.on_suspend is SuspendAction.DEACTIVATE:
            return DesiredAccount(True, False, scope, profile, winner, direct, groups)
        return DesiredAccount(True, True, scope, profile, winner, direct, groups, leave_alone=True)
    if user.status in ACCOUNT_STATUSES:
        return DesiredAccount(True, True, scope, profile, winner, direct, groups)
    # STAGED gets nothing; DEPROVISIONED and deleted users lose their accounts.
    return DesiredAccount(False, False, scope, profile, winner, direct, groups)
