"""The mass-change guard's decision, pure: which deprovisions must wait for an admin.

Like Okta's import safeguard and Entra's accidental-deletion threshold: a mistaken group
unassignment or a broken directory sync must not wipe an app. The guard weighs the whole pending
change (every active account the directory no longer wants), not one batch; decisions already
taken (held, approved, rejected) stand until the account stops leaving.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import HoldDecision

__all__ = ["GuardVerdict", "judge", "tripped"]


@dataclass(frozen=True)
class GuardVerdict:
    #: Leaving users whose deprovision must not run now (held before, rejected, or newly held).
    blocked: frozenset[str]
    #: Leaving users held by this verdict (no decision recorded for them yet).
    newly_held: frozenset[str]


def tripped(unwanted: int, active: int, settings: ProvisioningSettings) -> bool:
    """Does a change taking ``unwanted`` of ``active`` accounts exceed the app's threshold?"""
    if settings.mass_change_threshold <= 0:
        return False
    return unwanted >= settings.mass_change_minimum and unwanted > (
        settings.mass_change_threshold * max(active, 1)
    )


def judge(
    leaving: Collection[str],
    decisions: Mapping[str, HoldDecision],
    *,
    unwanted: int,
    active: int,
    settings: ProvisioningSettings,
) -> GuardVerdict:
    """Decide for ``leaving`` users, given the decisions recorded for them and the app's counts
    (``unwanted``: active accounts the directory no longer wants; ``active``: all active)."""
    blocked = {u for u in leaving if decisions.get(u) in (HoldDecision.HELD, HoldDecision.REJECTED)}
    undecided = frozenset(u for u in leaving if u not in decisions)
    if not undecided or not tripped(unwanted, active, settings):
        return GuardVerdict(frozenset(blocked), frozenset())
    return GuardVerdict(frozenset(blocked | undecided), undecided)
