"""The mass-change guard's verdict, from tables."""

from __future__ import annotations

from headwater.domain.mass_change import judge, tripped
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import HoldDecision

GUARDED = ProvisioningSettings(mass_change_threshold=0.2, mass_change_minimum=10)


def test_small_changes_do_not_trip() -> None:
    assert not tripped(9, 10, GUARDED)  # below the minimum, whatever the share
    assert not tripped(20, 100, GUARDED)  # exactly the threshold is allowed
    assert tripped(21, 100, GUARDED)
    assert not tripped(1000, 10, ProvisioningSettings(mass_change_threshold=0))


def test_undecided_users_are_held_when_the_change_is_too_large() -> None:
    verdict = judge(["a", "b"], {}, unwanted=50, active=100, settings=GUARDED)
    assert verdict.blocked == {"a", "b"}
    assert verdict.newly_held == {"a", "b"}


def test_decisions_stand() -> None:
    decisions = {
        "held": HoldDecision.HELD,
        "rejected": HoldDecision.REJECTED,
        "approved": HoldDecision.APPROVED,
    }
    leaving = ["held", "rejected", "approved", "new"]
    quiet = judge(leaving, decisions, unwanted=1, active=100, settings=GUARDED)
    assert quiet.blocked == {"held", "rejected"}
    assert quiet.newly_held == frozenset()
    loud = judge(leaving, decisions, unwanted=90, active=100, settings=GUARDED)
    assert loud.blocked == {"held", "rejected", "new"}
    assert loud.newly_held == {"new"}


def test_an_approved_change_runs_even_while_the_guard_trips() -> None:
    verdict = judge(["a"], {"a": HoldDecision.APPROVED}, unwanted=90, active=100, settings=GUARDED)
    assert verdict.blocked == frozenset()
