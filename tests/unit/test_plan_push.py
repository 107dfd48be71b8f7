"""The Group Push planner as a pure function: table-driven decisions, no I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from headwater.domain import operations as ops
from headwater.domain.dialects import DialectName
from headwater.domain.downstream import GroupState
from headwater.domain.plan import UNOBSERVED, PushFacts, PushPlan, plan_push
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import MappingStatus
from headwater.engine.observe import share_budget

SETTINGS = ProvisioningSettings()
PUT_ONLY = replace(SETTINGS, dialect=DialectName.PUT_ONLY_GROUPS)
TAYLOR, ALEX, SAM = ("00uT", "ext-t"), ("00uA", "ext-a"), ("00uS", "ext-s")

BASE = PushFacts(
    mapping_id="gPm1",
    status=MappingStatus.ACTIVE,
    source_name="AppPushGroup",
    custom_name=None,
    target_external_id="grp-1",
    target_name="AppPushGroup",
    eligible=frozenset({TAYLOR, ALEX}),
    recorded=frozenset({TAYLOR, ALEX}),
    known_accounts={"ext-t": "00uT", "ext-a": "00uA", "ext-s": "00uS"},
)


def facts(**changes: Any) -> PushFacts:
    return replace(BASE, **changes)


def described(plan: PushPlan) -> list[dict[str, Any]]:
    return [ops.describe(op) for op in plan.operations]


def summary(plan: PushPlan) -> list[tuple[str, list[str]]]:
    """(operation, user ids or external ids) in plan order."""
    result = []
    for item in described(plan):
        if item["op"] == "REMOVE_MEMBERS":
            result.append((item["op"], item["externalIds"]))
        elif "userIds" in item:
            result.append((item["op"], sorted(item["userIds"])))
        else:
            result.append((item["op"], [item.get("name") or item.get("groupExternalId")]))
    return result


CASES: list[tuple[str, PushFacts, ProvisioningSettings, list[tuple[str, list[str]]]]] = [
    ("in sync → nothing", facts(), SETTINGS, []),
    (
        "member joined → one add",
        facts(eligible=frozenset({TAYLOR, ALEX, SAM})),
        SETTINGS,
        [("ADD_MEMBERS", ["00uS"])],
    ),
    (
        "member left → one remove",
        facts(eligible=frozenset({TAYLOR})),
        SETTINGS,
        [("REMOVE_MEMBERS", ["ext-a"])],
    ),
    (
        "joins and leaves → adds before removes",
        facts(eligible=frozenset({TAYLOR, SAM})),
        SETTINGS,
        [("ADD_MEMBERS", ["00uS"]), ("REMOVE_MEMBERS", ["ext-a"])],
    ),
    (
        "account recreated under a new id → add the new id, remove the old one",
        facts(eligible=frozenset({("00uT", "ext-t2"), ALEX})),
        SETTINGS,
        [("ADD_MEMBERS", ["00uT"]), ("REMOVE_MEMBERS", ["ext-t"])],
    ),
    (
        "first push → group created or linked first",
        facts(target_external_id=None, target_name=None, recorded=frozenset()),
        SETTINGS,
        [("CREATE_OR_LINK_GROUP", ["AppPushGroup"])],
    ),
    (
        "custom name → the group is made under that name",
        facts(target_external_id=None, custom_name="acct-readers"),
        SETTINGS,
        [("CREATE_OR_LINK_GROUP", ["acct-readers"])],
    ),
    (
        "full push (unobserved) → the whole membership replaced",
        facts(full_push=True, recorded=frozenset()),
        SETTINGS,
        [("REPLACE_MEMBERS", ["00uA", "00uT"])],
    ),
    (
        "full push of an empty group → an empty replace",
        facts(full_push=True, eligible=frozenset()),
        SETTINGS,
        [("REPLACE_MEMBERS", [])],
    ),
    (
        "source renamed → rename before memberships",
        facts(source_name="Finance", eligible=frozenset({TAYLOR, ALEX, SAM})),
        SETTINGS,
        [("RENAME_GROUP", ["Finance"]), ("ADD_MEMBERS", ["00uS"])],
    ),
    (
        "custom name kept when the source is renamed",
        facts(source_name="Finance", custom_name="acct", target_name="acct"),
        SETTINGS,
        [],
    ),
    ("INACTIVE → paused", facts(status="INACTIVE", eligible=frozenset()), SETTINGS, []),
    (
        "group push switched off for the app → nothing",
        facts(eligible=frozenset()),
        replace(SETTINGS, group_push=False),
        [],
    ),
    (
        "ERROR status still pushes (it is retried)",
        facts(status="ERROR", eligible=frozenset({TAYLOR})),
        SETTINGS,
        [("REMOVE_MEMBERS", ["ext-a"])],
    ),
    (
        "PUT-only app → the same plan (the connector turns it into PUTs)",
        facts(eligible=frozenset({TAYLOR, SAM})),
        PUT_ONLY,
        [("ADD_MEMBERS", ["00uS"]), ("REMOVE_MEMBERS", ["ext-a"])],
    ),
    ("PUT-only app in sync → nothing", facts(), PUT_ONLY, []),
]


@pytest.mark.parametrize(
    ("name", "given", "settings", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_push(
    name: str,
    given: PushFacts,
    settings: ProvisioningSettings,
    expected: list[tuple[str, list[str]]],
) -> None:
    assert summary(plan_push(given, settings)) == expected


def test_first_push_needs_the_group_before_members() -> None:
    plan = plan_push(facts(target_external_id=None), SETTINGS)
    assert plan.needs_group and not plan.finalize_delete


# --- Observed state (full reconcile, push now) ---------------------------------------------------

OBSERVED_CASES = [
    ("matches → nothing", frozenset({"ext-t", "ext-a"}), SETTINGS, [], set()),
    (
        "member removed by hand → added back",
        frozenset({"ext-t"}),
        SETTINGS,
        [("ADD_MEMBERS", ["00uA"])],
        set(),
    ),
    (
        "linked account added by hand → removed",
        frozenset({"ext-t", "ext-a", "ext-s"}),
        SETTINGS,
        [("REMOVE_MEMBERS", ["ext-s"])],
        set(),
    ),
    (
        "unknown member → reported, not removed",
        frozenset({"ext-t", "ext-a", "stranger"}),
        SETTINGS,
        [],
        {"stranger"},
    ),
    (
        "unknown member with remove_unknown_members → removed",
        frozenset({"ext-t", "ext-a", "stranger"}),
        replace(SETTINGS, remove_unknown_members=True),
        [("REMOVE_MEMBERS", ["stranger"])],
        set(),
    ),
    (
        "known and unknown extras, missing member",
        frozenset({"ext-t", "ext-s", "stranger"}),
        SETTINGS,
        [("ADD_MEMBERS", ["00uA"]), ("REMOVE_MEMBERS", ["ext-s"])],
        {"stranger"},
    ),
    (
        "drift on a PUT-only app → the same diff as any app",
        frozenset({"ext-t", "ext-s"}),
        PUT_ONLY,
        [("ADD_MEMBERS", ["00uA"]), ("REMOVE_MEMBERS", ["ext-s"])],
        set(),
    ),
]


@pytest.mark.parametrize(
    ("name", "observed", "settings", "expected", "orphans"),
    OBSERVED_CASES,
    ids=[c[0] for c in OBSERVED_CASES],
)
def test_plan_push_against_the_observed_group(
    name: str,
    observed: frozenset[str],
    settings: ProvisioningSettings,
    expected: list[tuple[str, list[str]]],
    orphans: set[str],
) -> None:
    plan = plan_push(facts(observed_members=observed), settings)
    assert summary(plan) == expected
    assert plan.orphans == orphans


def test_observed_diff_beats_full_push() -> None:
    """With the group read back, a full push sends only the difference."""
    plan = plan_push(facts(full_push=True, observed_members=frozenset({"ext-t"})), SETTINGS)
    assert summary(plan) == [("ADD_MEMBERS", ["00uA"])]


def test_a_group_deleted_downstream_is_recreated() -> None:
    plan = plan_push(facts(observed_members=None), SETTINGS)
    assert summary(plan) == [("CREATE_OR_LINK_GROUP", ["AppPushGroup"])]
    assert plan.needs_group


def test_unknown_members_removed_carry_no_user() -> None:
    settings = replace(SETTINGS, remove_unknown_members=True)
    plan = plan_push(facts(observed_members=frozenset({"ext-t", "ext-a", "x"})), settings)
    (remove,) = plan.operations
    assert isinstance(remove, ops.RemoveMembers) and remove.members == ((None, "x"),)


def test_unobserved_is_not_a_lost_group() -> None:
    assert plan_push(facts(observed_members=UNOBSERVED), SETTINGS).operations == ()


# --- Deletion ---------------------------------------------------------------------------------

DELETE_CASES = [
    (
        "unlink deleting the group",
        facts(status="INACTIVE", delete_requested=True, delete_target=True),
        SETTINGS,
        [("DELETE_GROUP", ["grp-1"])],
        True,
    ),
    (
        "unlink deleting a group never created",
        facts(delete_requested=True, delete_target=True, target_external_id=None),
        SETTINGS,
        [],
        True,
    ),
    (
        "unlink keeping the group",
        facts(status="INACTIVE", delete_requested=True, delete_target=False),
        SETTINGS,
        [],
        True,
    ),
    (
        "source group deleted, app keeps downstream groups",
        facts(status="INACTIVE", source_name=None),
        SETTINGS,
        [],
        False,
    ),
    (
        "source group deleted, app deletes downstream groups",
        facts(status="INACTIVE", source_name=None),
        replace(SETTINGS, delete_group_with_source=True),
        [("DELETE_GROUP", ["grp-1"])],
        False,
    ),
    (
        "source group deleted, downstream group already gone",
        facts(status="INACTIVE", source_name=None, target_external_id=None),
        replace(SETTINGS, delete_group_with_source=True),
        [],
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "given", "settings", "expected", "finalize"),
    DELETE_CASES,
    ids=[c[0] for c in DELETE_CASES],
)
def test_plan_push_deletion(
    name: str,
    given: PushFacts,
    settings: ProvisioningSettings,
    expected: list[tuple[str, list[str]]],
    finalize: bool,
) -> None:
    plan = plan_push(given, settings)
    assert summary(plan) == expected
    assert plan.finalize_delete is finalize


def test_operations_of_a_plan_are_already_in_sending_order() -> None:
    plan = plan_push(facts(source_name="Finance", eligible=frozenset({TAYLOR, SAM})), SETTINGS)
    ranks = [ops.rank(op) for op in plan.operations]
    assert ranks == sorted(ranks)


def test_membership_changes_carry_the_whole_group_as_wanted() -> None:
    """Apps that take groups only whole are given what Headwater wants, from the plan itself."""
    plan = plan_push(facts(eligible=frozenset({TAYLOR, SAM})), SETTINGS)
    wanted = GroupState("AppPushGroup", ("ext-s", "ext-t"))
    assert [getattr(op, "whole", None) for op in plan.operations] == [wanted, wanted]


def test_members_unknown_on_read_is_a_full_push_never_an_empty_group() -> None:
    """A group read without ``members`` is not empty: nobody is re-added one by one, and the
    members recorded as pushed go along so the connector can remove those no longer wanted."""
    plan = plan_push(facts(eligible=frozenset({TAYLOR}), members_unknown=True), SETTINGS)
    (op,) = plan.operations
    assert isinstance(op, ops.ReplaceMembers)
    assert op.members == (TAYLOR,) and op.recorded == ("ext-a", "ext-t")


def test_members_unknown_but_checked_takes_out_the_linked_accounts_found() -> None:
    """Members hidden, some linked accounts checked one by one: those found and not wanted go
    (after the full push); a wanted one found stays; one pushed before goes with the full push
    (not twice); an id no linked account stands for is never removed."""
    checked = facts(
        eligible=frozenset({TAYLOR}),
        members_unknown=True,
        found_members=frozenset({"ext-s", "ext-t", "ext-a", "stranger"}),
    )
    plan = plan_push(checked, SETTINGS)
    first, second = plan.operations
    assert isinstance(first, ops.ReplaceMembers) and first.members == (TAYLOR,)
    assert first.recorded == ("ext-a", "ext-t")
    assert isinstance(second, ops.RemoveMembers) and second.members == (SAM,)
    assert second.whole == GroupState("AppPushGroup", ("ext-t",))
    # Nothing wanted and nothing ever pushed: only what a check proved goes.
    empty = facts(
        eligible=frozenset(),
        recorded=frozenset(),
        members_unknown=True,
        found_members=frozenset({"ext-a"}),
    )
    assert summary(plan_push(empty, SETTINGS)) == [("REMOVE_MEMBERS", ["ext-a"])]


def test_the_check_budget_is_shared_and_a_small_group_leaves_its_share_to_others() -> None:
    assert share_budget([2, 10, 10], 12) == [2, 5, 5]
    assert share_budget([2, 10], 3) == [1, 2]
    assert share_budget([3, 4], 100) == [3, 4]
    assert share_budget([5], 0) == [0]
