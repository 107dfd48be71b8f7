"""Previews: what a reconcile would send now (the plan) and why a user has what they have.

A preview runs the reconciler's own steps (load, read back, plan, the guard's verdict) without
writing anything, so for the same state it shows exactly the operations a reconcile sends. A
read-only connector refuses every write, should anything try one.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import ConnectionInfo
from headwater.domain.desired import desired_account
from headwater.domain.downstream import AccountAttributes, GroupState, RemoteAccount, RemoteGroup
from headwater.domain.lifecycle import DELETED
from headwater.domain.plan import plan_account
from headwater.domain.profile_mapping import (
    AppMapping,
    MappingChange,
    MappingImpact,
    attribute_changes,
)
from headwater.domain.states import HoldDecision, KeyKind, LinkState, UnmanagedState
from headwater.domain.unmanaged import plan_stray
from headwater.engine import guard, observe, snapshot
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.ports import Connector
from headwater.engine.snapshot import AppSnapshot, Without
from headwater.engine.work import Batch, account_work, mapping_inputs
from headwater.engine.work import load as load_work
from headwater.errors import NotFound

__all__ = [
    "ReadOnlyConnector",
    "RemovalImpact",
    "explain_user",
    "mapping_impact",
    "mapping_preview",
    "plan_app",
    "plan_batch",
    "removal_impact",
]

#: Keys planned per read transaction.
CHUNK = 500


class DryRunRefused(PermissionError):
    """A preview tried to write downstream."""


class ReadOnlyConnector:
    """Delegates reads to a real connector and refuses every write (previews)."""

    def __init__(self, inner: Connector) -> None:
        self._inner = inner

    @property
    def patch_refused(self) -> bool:
        return False

    async def test_connection(self) -> Capabilities:
        return await self._inner.test_connection()

    async def find_user(self, user_name: str) -> RemoteAccount | None:
        return await self._inner.find_user(user_name)

    async def get_user(self, id: str) -> RemoteAccount | None:
        return await self._inner.get_user(id)

    async def find_group(self, display_name: str) -> RemoteGroup | None:
        return await self._inner.find_group(display_name)

    async def get_group(self, id: str) -> RemoteGroup | None:
        return await self._inner.get_group(id)

    async def has_member(self, id: str, member_id: str) -> bool | None:
        return await self._inner.has_member(id, member_id)

    async def groups_of(self, member_id: str) -> frozenset[str] | None:
        return await self._inner.groups_of(member_id)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def create_user(self, attrs: AccountAttributes) -> RemoteAccount:
        raise DryRunRefused("dry run: create_user refused")

    async def replace_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount:
        raise DryRunRefused("dry run: replace_user refused")

    async def patch_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount | None:
        raise DryRunRefused("dry run: patch_user refused")

    async def set_active(self, id: str, active: bool) -> None:
        raise DryRunRefused("dry run: set_active refused")

    async def delete_user(self, id: str) -> None:
        raise DryRunRefused("dry run: delete_user refused")

    async def create_group(self, display_name: str) -> RemoteGroup:
        raise DryRunRefused("dry run: create_group refused")

    async def rename_group(self, id: str, display_name: str) -> None:
        raise DryRunRefused("dry run: rename_group refused")

    async def delete_group(self, id: str) -> None:
        raise DryRunRefused("dry run: delete_group refused")

    async def patch_members(
        self,
        id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None = None,
    ) -> int:
        raise DryRunRefused("dry run: patch_members refused")

    async def remove_members(
        self, id: str, member_ids: Sequence[str], *, whole: GroupState | None = None
    ) -> None:
        raise DryRunRefused("dry run: remove_members refused")

    async def replace_members(
        self,
        id: str,
        display_name: str,
        member_ids: Sequence[str],
        *,
        recorded: Sequence[str] = (),
    ) -> int:
        raise DryRunRefused("dry run: replace_members refused")


def _read_batch(database: Database, app: AppSnapshot, keys: list[ClaimedKey]) -> Batch:
    with database.read() as session:
        return load_work(session, app, keys)


def _held(database: Database, app: AppSnapshot, batch: Batch) -> frozenset[str]:
    with database.read() as session:
        leaving = [w.key.subject_id for w in batch.leaving()]
        return guard.assess(session, app, leaving).verdict.blocked


async def plan_batch(
    database: Database, app: AppSnapshot, keys: list[ClaimedKey], connector: Connector | None
) -> Batch:
    """Plan ``keys`` as a reconcile would, sending nothing and writing nothing. With a
    (read-only) connector, the downstream is read back first, as a full reconcile does."""
    batch = await asyncio.to_thread(_read_batch, database, app, keys)
    if connector is not None:
        await observe.read_back(app, connector, batch.accounts, batch.pushes)
    batch.plan_accounts(app.settings)
    if batch.leaving():
        batch.hold(await asyncio.to_thread(_held, database, app, batch))
        batch.plan_accounts(app.settings)
    batch.plan_pushes(app.settings)
    return batch


def _subjects(database: Database, app_id: str) -> tuple[list[str], list[str]]:
    """Every user and push mapping a full reconcile of the app would visit (the outbox's
    own query)."""
    with database.read() as session:
        users = sorted(set(session.execute(outbox.app_user_subjects(app_id)).scalars()))
        mappings = sorted(session.execute(outbox.app_mapping_subjects(app_id)).scalars())
    return users, mappings


async def plan_app(
    database: Database, connectors: ConnectorFactory, app_id: str, *, observe: bool = False
) -> dict[str, Any]:
    """The operations a reconcile of ``app_id`` would send now, in sending order."""
    with database.read() as session:
        app = snapshot.load_app(session, app_id)
    if app is None:
        raise NotFound()
    users, mappings = await asyncio.to_thread(_subjects, database, app_id)
    keys = [ClaimedKey(app_id, KeyKind.USER, u, 0, 0, observe) for u in users]
    keys += [ClaimedKey(app_id, KeyKind.PUSH, m, 0, 0, observe) for m in mappings]
    connector: Connector | None = None
    if observe and app.base_url:
        info = ConnectionInfo(app.id, app.base_url, app.auth_scheme or "NONE", app.secret_encrypted)
        connector = ReadOnlyConnector(
            connectors.build(info, app.settings, capabilities=app.capabilities)
        )
    planned: list[ops.Operation] = []
    changes: dict[str, dict[str, dict[str, Any]]] = {}
    waiting: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    try:
        for start in range(0, len(keys), CHUNK):
            batch = await plan_batch(database, app, keys[start : start + CHUNK], connector)
            for work in batch.accounts:
                if work.mapping_error:
                    waiting.append({"userId": work.key.subject_id, "error": work.mapping_error})
                elif work.plan is not None:
                    planned.extend(work.plan.operations)
                    record = work.snapshot.record
                    if work.attributes is not None and record is not None:
                        changes[work.key.subject_id] = attribute_changes(
                            record.last_pushed, work.attributes
                        )
            for push in batch.pushes:
                if push.plan is not None:
                    planned.extend(push.plan.operations)
                    orphans.extend(
                        {"mappingId": push.key.subject_id, "externalId": e}
                        for e in sorted(push.plan.orphans)
                    )
    finally:
        if connector is not None:
            await connector.aclose()
    planned.sort(key=ops.rank)
    described = [ops.describe(op) for op in planned]
    # What each update changes, beside (not inside) the operations, which stay those sent.
    attribute_diffs = {
        item["userId"]: changes[item["userId"]]
        for item in described
        if item["op"] in ("UPDATE_ACCOUNT", "REACTIVATE_ACCOUNT") and item["userId"] in changes
    }
    summary: dict[str, int] = {}
    for item in described:
        summary[item["op"]] = summary.get(item["op"], 0) + 1
    return {
        "appId": app_id,
        "observed": observe,
        "operations": described,
        "summary": summary,
        # How each CREATE_ACCOUNT is sent: looked up first (found: linked), or created first
        # (a 409 is looked up and linked).
        "accountCreates": "LOOK_UP_FIRST" if app.settings.lookup_before_create else "CREATE_FIRST",
        "attributeChanges": attribute_diffs,
        "errors": waiting,
        "orphans": orphans,
        "unmanaged": await asyncio.to_thread(_unmanaged_plan, database, app_id),
    }


def _unmanaged_plan(database: Database, app_id: str) -> list[dict[str, Any]]:
    """Deactivations of unmanaged accounts asked for and not yet sent (``domain.unmanaged``),
    each with whether the mass-change guard holds it."""
    found = []
    with database.read() as session:
        rows = session.execute(
            select(t.UnmanagedAccount)
            .where(
                t.UnmanagedAccount.app_id == app_id,
                t.UnmanagedAccount.state == UnmanagedState.DEACTIVATING,
            )
            .order_by(t.UnmanagedAccount.id)
        ).scalars()
        for row in rows:
            decision = HoldDecision(row.decision) if row.decision else None
            plan = plan_stray(UnmanagedState(row.state), row.external_id, row.active, decision)
            if plan.operation is None and not plan.held:
                continue
            found.append(
                {
                    "op": "DEACTIVATE_ACCOUNT",
                    "externalId": row.external_id,
                    "userName": row.user_name,
                    "held": plan.held,
                }
            )
    return found


def mapping_impact(session: Session, app_id: str, mapping: AppMapping) -> MappingImpact:
    """The users whose attributes, as a reconcile would send them, differ under ``mapping``
    from the app's current mapping (a mapping failure appearing or going counts): exactly the
    keys a mapping change must enqueue. Only the properties that changed are evaluated
    (``MappingChange``). Reads in ``session`` (the change's own transaction)."""
    app = snapshot.load_app(session, app_id)
    if app is None:
        raise NotFound()
    change = MappingChange(app.mapping, mapping)
    active = guard.active_accounts(session, app_id)
    if change.changed == ():
        return MappingImpact((), 0, active)
    groups = app.mapping.reads_membership or mapping.reads_membership
    users = sorted(set(session.execute(outbox.app_user_subjects(app_id)).scalars()))
    affected: list[str] = []
    updates = 0
    for start in range(0, len(users), CHUNK):
        chunk = users[start : start + CHUNK]
        accounts = snapshot.load_accounts(
            session,
            app_id,
            chunk,
            all_groups=groups,
            memberships=False,
            managers=change.reads_manager,
            last_pushed=change.reads_pushed,
        )
        for user_id in chunk:
            snap = accounts[user_id]
            desired = desired_account(snap.user, snap.direct, snap.groups, app.settings)
            inputs = mapping_inputs(snap, app.settings, desired)
            if inputs is None or not change.differs(**inputs):
                continue
            affected.append(user_id)
            if snap.record is not None and snap.record.state == LinkState.ACTIVE:
                updates += 1
    return MappingImpact(tuple(affected), updates, active)


def mapping_preview(
    session: Session, app_id: str, user_id: str, mapping: AppMapping | None = None
) -> tuple[AccountAttributes | None, str | None]:
    """What the app would get for one user under ``mapping`` (the app's own when None): the
    attributes, or the mapping's error for this user; (None, None) when not assigned."""
    app = snapshot.load_app(session, app_id)
    if app is None:
        raise NotFound()
    if mapping is not None:
        app = replace(app, mapping=mapping)
    account = snapshot.load_accounts(
        session, app_id, [user_id], all_groups=app.mapping.reads_membership
    )[user_id]
    if account.user is None:
        raise NotFound()
    key = ClaimedKey(app_id, KeyKind.USER, user_id, 0, 0, False)
    work = account_work(key, account, app)
    return work.attributes, work.mapping_error


@dataclass(frozen=True)
class RemovalImpact:
    """What taking a grant away would do in one app, by the planner's own reckoning."""

    #: People left with no grant for the app.
    people: int
    #: Accounts the plan would take away (deactivate or delete, per the app's settings).
    accounts: int
    #: Memberships in pushed groups removed first.
    memberships: int
    #: Some of the people's logins, in login order.
    sample: tuple[str, ...]


def removal_impact(
    session: Session, app: AppSnapshot, subjects: Select[Any], without: Without, *, sample: int
) -> RemovalImpact:
    """A what-if run of the planner: ``subjects`` (a query of user ids) planned as if the grants
    in ``without`` were gone. Read-only; the mass-change guard is left out (this is what the
    change means once approved)."""
    user_ids = list(session.execute(subjects).scalars())
    people = accounts = memberships = 0
    logins: list[str] = []
    for start in range(0, len(user_ids), CHUNK):
        chunk = user_ids[start : start + CHUNK]
        snaps = snapshot.load_accounts(
            session, app.id, chunk, without=without, all_groups=app.mapping.reads_membership
        )
        for user_id in chunk:
            key = ClaimedKey(app.id, KeyKind.USER, user_id, 0, 0, False)
            work = account_work(key, snaps[user_id], app)
            if work.desired.assigned or work.snapshot.user is None:
                continue
            people += 1
            logins.append(str(work.snapshot.user.profile.get("login") or user_id))
            plan = plan_account(work.facts(), app.settings)
            accounts += plan.deprovision
            memberships += sum(
                len(op.members) for op in plan.operations if isinstance(op, ops.RemoveMembers)
            )
    first = heapq.nsmallest(sample, logins, key=str.lower)
    return RemovalImpact(people, accounts, memberships, tuple(first))


def _provenance(
    session: Session, user_id: str
) -> dict[str, tuple[bool, list[tuple[str, str, str]]]]:
    """Group id → (added by hand, [(rule id, name, expression)] of the rules holding it)."""
    found: dict[str, tuple[bool, list[tuple[str, str, str]]]] = {}
    for group_id, manual in session.execute(
        select(t.Membership.group_id, t.Membership.manual).where(t.Membership.user_id == user_id)
    ):
        found[group_id] = (bool(manual), [])
    held = session.execute(
        select(t.GroupRuleMember.group_id, t.GroupRule.id, t.GroupRule.name, t.GroupRule.expression)
        .join(t.GroupRule, t.GroupRule.id == t.GroupRuleMember.rule_id)
        .where(t.GroupRuleMember.user_id == user_id)
        .order_by(t.GroupRule.id)
    )
    for group_id, rule_id, rule_name, expression in held:
        if group_id in found:
            found[group_id][1].append((rule_id, rule_name, expression))
    return found


def explain_user(database: Database, app_id: str, user_id: str) -> dict[str, Any]:
    """Why the user has (or lacks) an account in the app, and each pushed membership."""
    with database.read() as session:
        app = snapshot.load_app(session, app_id)
        user = session.get(t.User, user_id)
        if app is None or user is None or user.status == DELETED:
            raise NotFound()
        session.expunge(user)  # read after the session ends: keep its loaded attributes
        snap = snapshot.load_accounts(
            session, app_id, [user_id], all_groups=app.mapping.reads_membership
        )[user_id]
        pushes = snapshot.load_push(
            session, app_id, list(session.execute(outbox.app_mapping_subjects(app_id)).scalars())
        )
        in_groups = set(
            session.execute(
                select(t.Membership.group_id).where(t.Membership.user_id == user_id)
            ).scalars()
        )
        provenance = _provenance(session, user_id)
    work = account_work(ClaimedKey(app_id, KeyKind.USER, user_id, 0, 0, False), snap, app)
    desired, attributes, error = work.desired, work.attributes, work.mapping_error
    name = user.profile.get("firstName") or user.login
    reasons = [f"{name} is {user.status} in the directory."]
    grants: list[dict[str, Any]] = []
    if snap.direct is not None:
        grants.append({"type": "USER", "detail": "assigned directly"})
        reasons.append(f"{name} is assigned to {app.label} directly.")
    for grant in snap.groups:
        winner = (
            desired.winning_group is not None and desired.winning_group.group_id == grant.group_id
        )
        manual, rules = provenance.get(grant.group_id, (True, []))
        grants.append(
            {
                "type": "GROUP",
                "groupId": grant.group_id,
                "groupName": grant.group_name,
                "priority": grant.priority,
                "profileSource": winner,
                "manual": manual,
                "rules": [{"id": i, "name": n, "expression": e} for i, n, e in rules],
            }
        )
        reasons.append(
            f"{name} has {app.label} because of group {grant.group_name}, priority {grant.priority}"
            + (" (its profile wins)." if winner else ".")
        )
        reasons += [
            f"{name} is in {grant.group_name} because rule {rule} matched {expression}."
            for _, rule, expression in rules
        ]
        if manual and rules:
            reasons.append(f"{name} was also added to {grant.group_name} by hand.")
    if not grants:
        reasons.append(f"{name} is not assigned to {app.label}, directly or through a group.")
    record = snap.record
    account = {
        "wanted": desired.assigned,
        "active": desired.active,
        "scope": desired.scope,
        "userName": attributes.user_name if attributes else snap.user_name,
        "externalId": record.external_id if record else None,
        "state": record.state if record else LinkState.NONE,
        "mappingError": error,
    }
    if desired.assigned and not desired.active:
        reasons.append(f"The account should be inactive ({user.status}).")
    if desired.leave_alone:
        reasons.append("The user is suspended; this app leaves suspended accounts alone.")
    memberships = []
    recorded = {m.mapping_id for m in snap.memberships}
    stale = {m.mapping_id for m in snap.memberships if m.stale}
    for mapping_id, push in sorted(pushes.items()):
        member = push.source_group_id in in_groups
        eligible = any(u == user_id for u, _ in push.eligible)
        entry = {
            "mappingId": mapping_id,
            "sourceGroupId": push.source_group_id,
            "sourceGroupName": push.source_name,
            "mappingStatus": push.status,
            "memberOfSource": member,
            "eligible": eligible,
            "pushed": mapping_id in recorded,
            "stale": mapping_id in stale,
        }
        memberships.append(entry)
        if mapping_id in stale:
            reasons.append(
                f"{name} could not be removed from {push.custom_name or push.source_name} "
                f"when the account was deactivated; the removal is being retried."
            )
        elif member and eligible:
            reasons.append(
                f"{name} is pushed to {push.custom_name or push.source_name} "
                f"(mapping {mapping_id}, {push.status})."
            )
        elif member:
            reasons.append(
                f"{name} is in {push.source_name} but has no active account in "
                f"{app.label}, so is not pushed."
            )
    return {
        "appId": app_id,
        "userId": user_id,
        "account": account,
        "grants": grants,
        "memberships": memberships,
        "reasons": reasons,
    }
