"""What to do with an unmanaged account (one in an app that no directory user owns), pure.

An admin asks to deactivate it or to link it to a user; the engine decides what is sent. A
deactivation the mass-change guard holds sends nothing; one of an account already inactive
sends nothing either (it is recorded as done).
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.domain.operations import SetActive
from headwater.domain.states import HoldDecision, UnmanagedState

__all__ = ["StrayPlan", "plan_stray"]


@dataclass(frozen=True)
class StrayPlan:
    #: The deactivation to send, if any (the account has no directory user: ``user_id`` "").
    operation: SetActive | None = None
    #: Link the account to the user the admin chose (nothing is sent).
    link: bool = False
    #: The deactivation waits for an admin's decision (the guard holds it).
    held: bool = False
    #: Nothing left to send: the account is already what was asked.
    done: bool = False


def plan_stray(
    state: UnmanagedState, external_id: str, active: bool, decision: HoldDecision | None
) -> StrayPlan:
    """The plan for one unmanaged account, from its state, the guard's decision on it, and
    whether the app last listed it active."""
    if state is UnmanagedState.LINKING:
        return StrayPlan(link=True)
    if state is not UnmanagedState.DEACTIVATING:
        return StrayPlan()
    if decision in (HoldDecision.HELD, HoldDecision.REJECTED):
        return StrayPlan(held=True)
    if not active:
        return StrayPlan(done=True)
    return StrayPlan(operation=SetActive("", external_id, False))
