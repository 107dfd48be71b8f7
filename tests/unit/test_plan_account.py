"""The account planner as a pure function: table-driven decisions and ordering."""

from __future__ import annotations

from dataclasses import replace

import pytest

from headwater.domain import operations as ops
from headwater.domain.desired import DirectGrant, GroupGrant, UserFacts, desired_account
from headwater.domain.downstream import AccountAttributes, RemoteAccount
from headwater.domain.plan import (
    UNOBSERVED,
    AccountFacts,
    AccountRecord,
    PushedMembership,
    plan_account,
)
from headwater.domain.settings import Deprovision, ProvisioningSettings, SuspendAction
from headwater.domain.states import LinkState

ATTRS = AccountAttributes(user_name="taylor@example.com", external_id="00u1", given_name="Taylor")
GROUP = GroupGrant("00gA", "Accounting", 0)
SETTINGS = ProvisioningSettings()


def facts(
    status: str = "ACTIVE",
    *,
    groups: tuple[GroupGrant, ...] = (GROUP,),
    record: AccountRecord | None = None,
    memberships: tuple[PushedMembership, ...] = (),
    observed: object = UNOBSERVED,
    settings: ProvisioningSettings = SETTINGS,
) -> AccountFacts:
    user = UserFacts("00u1", status, {"login": "taylor@example.com"})
    desired = desired_account(user, None, groups, settings)
    return AccountFacts(
        user_id="00u1",
        desired=desired,
        attributes=ATTRS if desired.assigned else None,
        record=record,
        memberships=memberships,
        observed=observed,  # type: ignore[arg-type]
    )


LINKED = AccountRecord("ext-1", LinkState.ACTIVE, ATTRS.as_dict())
INACTIVE = AccountRecord("ext-1", LinkState.INACTIVE, ATTRS.as_dict())
PUSHED = PushedMembership("gPm1", "grp-1", "ext-1")


def kinds(plan_ops: tuple[ops.Operation, ...]) -> list[str]:
    return [ops.describe(op)["op"] for op in plan_ops]


@pytest.mark.parametrize(
    ("name", "kwargs", "expected", "deprovision"),
    [
        ("assigned, no account → create", dict(), ["CREATE_ACCOUNT"], False),
        ("provisioned user → create", dict(status="PROVISIONED"), ["CREATE_ACCOUNT"], False),
        ("staged user gets nothing", dict(status="STAGED"), [], False),
        ("in sync → nothing", dict(record=LINKED), [], False),
        (
            "profile changed → one update",
            dict(record=replace(LINKED, last_pushed={"userName": "old"})),
            ["UPDATE_ACCOUNT"],
            False,
        ),
        ("unassigned → deactivate", dict(groups=(), record=LINKED), ["DEACTIVATE_ACCOUNT"], True),
        (
            "deactivated user → deactivate",
            dict(status="DEPROVISIONED", record=LINKED),
            ["DEACTIVATE_ACCOUNT"],
            True,
        ),
        (
            "unassigned while pushed → remove membership first, then deactivate",
            dict(groups=(), record=LINKED, memberships=(PUSHED,)),
            ["REMOVE_MEMBERS", "DEACTIVATE_ACCOUNT"],
            True,
        ),
        ("reassigned → reactivate same id", dict(record=INACTIVE), ["REACTIVATE_ACCOUNT"], False),
        ("already inactive → nothing", dict(groups=(), record=INACTIVE), [], False),
        (
            "downstream lost the account → create again",
            dict(record=LINKED, observed=None),
            ["CREATE_ACCOUNT"],
            False,
        ),
        (
            "downstream deactivated by hand → reactivate",
            dict(record=LINKED, observed=RemoteAccount("ext-1", "taylor@example.com", False)),
            ["REACTIVATE_ACCOUNT"],
            False,
        ),
        ("suspended, app leaves it → nothing", dict(status="SUSPENDED", record=LINKED), [], False),
        (
            "suspended, app deactivates → deactivate",
            dict(
                status="SUSPENDED",
                record=LINKED,
                settings=replace(SETTINGS, on_suspend=SuspendAction.DEACTIVATE),
            ),
            ["DEACTIVATE_ACCOUNT"],
            True,
        ),
    ],
)
def test_account_decisions(
    name: str, kwargs: dict[str, object], expected: list[str], deprovision: bool
) -> None:
    """Each situation yields exactly the listed operations, in this order."""
    settings = kwargs.get("settings", SETTINGS)
    assert isinstance(settings, ProvisioningSettings)
    plan = plan_account(facts(**kwargs), settings)  # type: ignore[arg-type]
    assert kinds(plan.operations) == expected, name
    assert plan.deprovision is deprovision, name


def test_delete_setting_deletes_instead_of_deactivating() -> None:
    settings = replace(SETTINGS, deprovision=Deprovision.DELETE)
    plan = plan_account(facts(groups=(), record=LINKED, settings=settings), settings)
    assert kinds(plan.operations) == ["DELETE_ACCOUNT"]


def test_deactivation_switch_off_sends_nothing_but_still_removes_memberships() -> None:
    settings = replace(SETTINGS, deactivate_users=False)
    plan = plan_account(facts(groups=(), record=LINKED, memberships=(PUSHED,)), settings)
    assert kinds(plan.operations) == ["REMOVE_MEMBERS"]
    assert plan.deprovision


def test_pending_membership_makes_the_deprovision_wait() -> None:
    """An add still in flight could land after our removal: wait for its outcome first."""
    pending = replace(PUSHED, pending=True)
    plan = plan_account(facts(groups=(), record=LINKED, memberships=(pending,)), SETTINGS)
    assert plan.wait and plan.operations == ()


def test_reactivation_with_changed_profile_sends_the_profile() -> None:
    record = replace(INACTIVE, last_pushed={"userName": "old"})
    plan = plan_account(facts(record=record), SETTINGS)
    (operation,) = plan.operations
    assert isinstance(operation, ops.SetActive) and operation.attributes == ATTRS


def test_reactivation_disabled() -> None:
    settings = replace(SETTINGS, reactivate_users=False)
    assert plan_account(facts(record=INACTIVE), settings).operations == ()


def test_direct_assignment_alone_grants_an_account() -> None:
    user = UserFacts("00u1", "ACTIVE", {})
    desired = desired_account(user, DirectGrant({"title": "x"}), (), SETTINGS)
    assert desired.assigned and desired.scope == "USER"


def test_rank_orders_any_mix_safely() -> None:
    """Creates, then group creates, adds, removals, deactivations, deletions."""
    mixed: list[ops.Operation] = [
        ops.DeleteGroup("m", "g"),
        ops.SetActive("u", "e", False),
        ops.RemoveMembers("m", "g", (("u", "e"),)),
        ops.AddMembers("m", "g", (("u", "e"),)),
        ops.EnsureGroup("m", "G"),
        ops.CreateAccount("u", ATTRS),
        ops.DeleteAccount("u", "e"),
    ]
    ordered = [ops.describe(op)["op"] for op in sorted(mixed, key=ops.rank)]
    assert ordered == [
        "CREATE_ACCOUNT",
        "CREATE_OR_LINK_GROUP",
        "ADD_MEMBERS",
        "REMOVE_MEMBERS",
        "DEACTIVATE_ACCOUNT",
        "DELETE_ACCOUNT",
        "DELETE_GROUP",
    ]
