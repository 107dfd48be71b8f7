"""The planner: desired state + recorded state (+ observed state) → ordered operations. Pure.

One planner serves the worker, the full reconcile and the dry run. Two kinds of keys:

* an account key ``(app, user)`` decides create / link / update / reactivate / deactivate, and
  before any deactivation or deletion removes the user from every pushed group that still
  records them (the seed's orphan pitfall, closed whatever order admins act in);
* a push key ``(app, mapping)`` keeps a downstream group equal to the source group's members who
  hold an active account in the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from headwater.domain.desired import DesiredAccount
from headwater.domain.downstream import AccountAttributes, GroupState, RemoteAccount
from headwater.domain.operations import (
    AddMembers,
    CreateAccount,
    DeleteAccount,
    DeleteGroup,
    EnsureGroup,
    Operation,
    RemoveMembers,
    RenameGroup,
    ReplaceMembers,
    SetActive,
    UpdateAccount,
)
from headwater.domain.settings import Deprovision, ProvisioningSettings
from headwater.domain.states import LinkState, MappingStatus

__all__ = [
    "UNOBSERVED",
    "AccountFacts",
    "AccountPlan",
    "AccountRecord",
    "PushFacts",
    "PushPlan",
    "PushedMembership",
    "Unobserved",
    "plan_account",
    "plan_push",
]


class Unobserved(Enum):
    """Marker: the downstream was not read for this reconcile (distinct from "not found")."""

    UNOBSERVED = "UNOBSERVED"


UNOBSERVED = Unobserved.UNOBSERVED

NONE, ACTIVE, INACTIVE, DEPROVISIONING, DELETED = (
    LinkState.NONE,
    LinkState.ACTIVE,
    LinkState.INACTIVE,
    LinkState.DEPROVISIONING,
    LinkState.DELETED,
)


@dataclass(frozen=True)
class AccountRecord:
    """What Headwater recorded of the account."""

    external_id: str | None
    state: LinkState
    last_pushed: dict[str, object] | None = None


@dataclass(frozen=True)
class PushedMembership:
    """A pushed group that records this user as a member."""

    mapping_id: str
    group_external_id: str
    user_external_id: str
    #: An add is in flight: its outcome is unknown yet.
    pending: bool = False
    #: A removal already failed and the account went anyway: the push mapping retries it.
    stale: bool = False


@dataclass(frozen=True)
class AccountFacts:
    user_id: str
    desired: DesiredAccount
    #: The mapped attributes; ``None`` when the user is not assigned.
    attributes: AccountAttributes | None
    record: AccountRecord | None
    memberships: tuple[PushedMembership, ...] = ()
    observed: RemoteAccount | Unobserved | None = UNOBSERVED
    #: The mass-change guard holds this user's deprovision for an admin's decision.
    held: bool = False


@dataclass(frozen=True)
class AccountPlan:
    operations: tuple[Operation, ...]
    #: The plan takes the account away; the caller marks it DEPROVISIONING before sending.
    deprovision: bool = False
    #: Pushed memberships are still in flight; try again shortly instead of acting now.
    wait: bool = False
    reason: str = ""


def _exists(record: AccountRecord | None, observed: RemoteAccount | Unobserved | None) -> bool:
    if record is None or record.external_id is None or record.state in (NONE, DELETED):
        return False
    return observed is not None  # observed None means the downstream lost it


def _membership_removals(facts: AccountFacts) -> list[Operation]:
    """The account's pushed memberships to remove before it goes (stale ones are the push
    mapping's to retry, not the account's)."""
    return [
        RemoveMembers(
            m.mapping_id,
            m.group_external_id,
            ((facts.user_id, m.user_external_id),),
            offboarding=True,
        )
        for m in sorted(facts.memberships, key=lambda m: m.mapping_id)
        if not m.stale
    ]


def plan_account(facts: AccountFacts, settings: ProvisioningSettings) -> AccountPlan:
    """Decide what one user's account in one app needs."""
    desired, record, observed = facts.desired, facts.record, facts.observed
    if desired.assigned and desired.active and facts.attributes is not None:
        return _plan_keep(facts, settings)
    if not _exists(record, observed):
        # Nothing (left) downstream; still drop memberships recorded against a lost account.
        removals = _membership_removals(facts) if observed is not None else []
        return AccountPlan(tuple(removals), reason="no account to deprovision")
    assert record is not None and record.external_id is not None
    inactive_downstream = isinstance(observed, RemoteAccount) and not observed.active
    if record.state == INACTIVE and (inactive_downstream or observed is UNOBSERVED):
        return AccountPlan(tuple(_membership_removals(facts)), reason="already inactive")
    if facts.held:
        return AccountPlan((), reason="held by the mass-change guard")
    if any(m.pending for m in facts.memberships):
        return AccountPlan((), deprovision=True, wait=True, reason="membership add in flight")
    operations = _membership_removals(facts)
    operations.extend(_deprovision_account(facts.user_id, record.external_id, desired, settings))
    return AccountPlan(tuple(operations), deprovision=True, reason="not assigned or not active")


def _deprovision_account(
    user_id: str, external_id: str, desired: DesiredAccount, settings: ProvisioningSettings
) -> list[Operation]:
    if desired.assigned:  # suspended, and the app deactivates suspended users
        return [SetActive(user_id, external_id, False)]
    if settings.deprovision is Deprovision.DELETE:
        return [DeleteAccount(user_id, external_id)]
    if settings.deactivate_users:
        return [SetActive(user_id, external_id, False)]
    return []


def _plan_keep(facts: AccountFacts, settings: ProvisioningSettings) -> AccountPlan:
    record, observed, attributes = facts.record, facts.observed, facts.attributes
    assert attributes is not None
    user_id = facts.user_id
    if not _exists(record, observed):
        return AccountPlan((CreateAccount(user_id, attributes),), reason="assigned, no account")
    assert record is not None and record.external_id is not None
    if facts.desired.leave_alone:
        return AccountPlan((), reason="suspended: account left alone")
    inactive_downstream = isinstance(observed, RemoteAccount) and not observed.active
    if record.state in (INACTIVE, DEPROVISIONING) or inactive_downstream:
        if not settings.reactivate_users:
            return AccountPlan((), reason="reactivation disabled for this app")
        changed = record.last_pushed != attributes.as_dict()
        operation = SetActive(user_id, record.external_id, True, attributes if changed else None)
        return AccountPlan((operation,), reason="assigned again: reactivate")
    if settings.update_users and record.last_pushed != attributes.as_dict():
        return AccountPlan(
            (UpdateAccount(user_id, record.external_id, attributes),), reason="profile changed"
        )
    return AccountPlan((), reason="in sync")


# --- Group Push --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushFacts:
    mapping_id: str
    status: MappingStatus
    #: The source group's current name; ``None`` when the source group was deleted.
    source_name: str | None
    #: A custom downstream name given at creation (else the source name is followed).
    custom_name: str | None
    target_external_id: str | None
    #: The downstream name as last pushed.
    target_name: str | None
    #: Source members holding an active account: (user id, account external id).
    eligible: frozenset[tuple[str, str]]
    #: Members recorded as pushed: (user id, account external id).
    recorded: frozenset[tuple[str, str]]
    full_push: bool = False
    delete_requested: bool = False
    delete_target: bool = False
    #: The downstream group's member ids when read; ``None`` when the group is gone.
    observed_members: frozenset[str] | Unobserved | None = UNOBSERVED
    #: The group was read but the app did not say who its members are (it hides them, or
    #: drops the attribute of an empty group): treated as a full push, never as empty.
    members_unknown: bool = False
    #: Members unknown: accounts Headwater links that a check proved to be in the group.
    found_members: frozenset[str] = frozenset()
    #: Account external id → user id for every account linked in the app (classifies members).
    known_accounts: dict[str, str] = field(default_factory=dict)
    #: Users that may be added now (their account is still active under a lock taken just
    #: before sending); ``None`` admits every eligible member.
    admitted: frozenset[str] | None = None


@dataclass(frozen=True)
class PushPlan:
    operations: tuple[Operation, ...]
    #: Downstream members that belong to no account Headwater manages (reported, not removed).
    orphans: frozenset[str] = frozenset()
    #: The mapping goes away once the operations succeed.
    finalize_delete: bool = False
    #: The downstream group must be created or linked before members can be pushed.
    needs_group: bool = False
    reason: str = ""


def plan_push(facts: PushFacts, settings: ProvisioningSettings) -> PushPlan:
    """Decide what one push mapping's downstream group needs."""
    if facts.delete_requested:
        ops: tuple[Operation, ...] = ()
        if facts.delete_target and facts.target_external_id:
            ops = (DeleteGroup(facts.mapping_id, facts.target_external_id),)
        return PushPlan(ops, finalize_delete=True, reason="unlinked")
    if facts.source_name is None:
        if settings.delete_group_with_source and facts.target_external_id:
            return PushPlan(
                (DeleteGroup(facts.mapping_id, facts.target_external_id),),
                finalize_delete=False,
                reason="source group deleted",
            )
        return PushPlan((), reason="source group deleted")
    if facts.status == MappingStatus.INACTIVE or not settings.group_push:
        return PushPlan((), reason="mapping inactive")
    name = facts.custom_name or facts.source_name
    if facts.target_external_id is None or facts.observed_members is None:
        return PushPlan(
            (EnsureGroup(facts.mapping_id, name),), needs_group=True, reason="no downstream group"
        )
    group = facts.target_external_id
    operations: list[Operation] = []
    if facts.target_name != name:
        operations.append(RenameGroup(facts.mapping_id, group, name))
    eligible = sorted(facts.eligible)
    addable = [m for m in eligible if facts.admitted is None or m[0] in facts.admitted]
    observed = facts.observed_members
    if isinstance(observed, frozenset):
        wanted = {external_id for _, external_id in eligible}
        add = tuple(m for m in addable if m[1] not in observed)
        extra = sorted(observed - wanted)
        known = [(facts.known_accounts[e], e) for e in extra if e in facts.known_accounts]
        unknown = frozenset(e for e in extra if e not in facts.known_accounts)
        remove: list[tuple[str | None, str]] = list(known)
        if settings.remove_unknown_members:
            remove.extend((None, e) for e in sorted(unknown))
            unknown = frozenset()
        whole = GroupState(name, tuple(e for _, e in addable))
        operations.extend(_membership_changes(facts.mapping_id, group, add, tuple(remove), whole))
        return PushPlan(tuple(operations), orphans=unknown, reason="compared with downstream")
    # Members hidden, but some accounts were checked one by one: those found and not wanted
    # are taken out (a check proves them there); members no account stands for stay unknown.
    # (Members pushed before and no longer wanted are removed by the full push already.)
    settled = {e for _, e in eligible} | {e for _, e in facts.recorded}
    proved = tuple(
        (facts.known_accounts[e], e)
        for e in sorted(facts.found_members - settled)
        if e in facts.known_accounts
    )
    checked_out = (
        [
            RemoveMembers(
                facts.mapping_id,
                group,
                proved,
                whole=GroupState(name, tuple(e for _, e in addable)),
            )
        ]
        if facts.members_unknown and proved
        else []
    )
    if facts.members_unknown and not facts.full_push and not addable and not facts.recorded:
        # Nothing wanted, nothing ever pushed: an overwrite would only empty what cannot be
        # seen (and an app that drops an empty group's attribute reads this way too).
        operations.extend(checked_out)
        return PushPlan(tuple(operations), reason="members unknown, none wanted")
    if facts.full_push or facts.members_unknown:
        recorded = tuple(sorted(e for _, e in facts.recorded))
        operations.append(ReplaceMembers(facts.mapping_id, group, name, tuple(addable), recorded))
        operations.extend(checked_out)
        return PushPlan(tuple(operations), reason="full push")
    recorded_ids = {e for _, e in facts.recorded}
    eligible_ids = {e for _, e in eligible}
    add = tuple(m for m in addable if m[1] not in recorded_ids)
    gone = tuple(sorted((u, e) for u, e in facts.recorded if e not in eligible_ids))
    whole = GroupState(name, tuple(e for _, e in addable))
    operations.extend(_membership_changes(facts.mapping_id, group, add, gone, whole))
    return PushPlan(tuple(operations), reason="incremental")


def _membership_changes(
    mapping_id: str,
    group: str,
    add: tuple[tuple[str, str], ...],
    remove: tuple[tuple[str | None, str], ...],
    whole: GroupState,
) -> list[Operation]:
    """The adds and removals; each carries the whole group as wanted, which only apps that
    take groups whole (by PUT) are sent."""
    operations: list[Operation] = []
    if add:
        operations.append(AddMembers(mapping_id, group, add, whole))
    if remove:
        operations.append(RemoveMembers(mapping_id, group, remove, whole=whole))
    return operations
