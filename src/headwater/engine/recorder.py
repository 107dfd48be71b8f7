"""Records what the reconciler did: links, pushed members, mappings, tasks, events, key state.

Every function here is one short write transaction (or runs inside the caller's). Nothing here
talks to a downstream app.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.connectors.errors import DownstreamError, NotFoundError, TransientError
from headwater.db import events, leases, outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import SYSTEM, Target
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.domain.mapping import MappingError
from headwater.domain.plan import PushPlan
from headwater.domain.retry import RetryPolicy
from headwater.engine import guard
from headwater.engine.executor import AccountResult, GroupResult, MembershipResult
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import Outcome

__all__ = [
    "finish_all",
    "hold",
    "mark_deprovisioning",
    "quarantine",
    "record",
    "record_push_intents",
    "release_quarantine",
]

#: Quarantine probe intervals grow from this to ``PROBE_MAX`` seconds.
PROBE_FIRST = 5.0
PROBE_MAX = 900.0


def finish_all(database: Database, keys: list[ClaimedKey]) -> None:
    with database.transaction() as session:
        for key in keys:
            leases.finish(session, key)


def hold(database: Database, keys: list[ClaimedKey], delay: float) -> None:
    with database.transaction() as session:
        for key in keys:
            leases.retry_later(session, key, delay, count_attempt=False)


def _app_target(app: AppSnapshot) -> Target:
    return Target(app.id, "AppInstance", app.name, app.label)


def quarantine(database: Database, app: AppSnapshot, keys: list[ClaimedKey], reason: str) -> None:
    """Hold the app's work and probe it later, at growing intervals."""
    interval = min(PROBE_MAX, max(PROBE_FIRST, app.probe_interval * 2))
    now = clock.utcnow()
    with database.transaction() as session:
        row = session.get(t.App, app.id)
        if row is None:
            return
        first = row.quarantined_since is None
        row.quarantined_since = row.quarantined_since or now
        row.quarantine_reason = reason[:1000]
        row.probe_interval = interval
        row.next_probe = now + timedelta(seconds=interval)
        for key in keys:
            leases.retry_later(session, key, interval, count_attempt=False)
        if first:
            events.record(
                session,
                "app.headwater.quarantine.start",
                f"Provisioning to {app.label} is paused: {reason}",
                actor=SYSTEM,
                targets=[_app_target(app)],
                outcome="FAILURE",
                reason=reason[:1000],
            )


def release_quarantine(database: Database, app: AppSnapshot) -> None:
    with database.transaction() as session:
        row = session.get(t.App, app.id)
        if row is None or row.quarantined_since is None:
            return
        row.quarantined_since = None
        row.quarantine_reason = None
        row.next_probe = None
        row.probe_interval = 0.0
        events.record(
            session,
            "app.headwater.quarantine.end",
            f"Provisioning to {app.label} resumed: the app answers again",
            actor=SYSTEM,
            targets=[_app_target(app)],
        )
        outbox.enqueue_app(session, app.id)


def mark_deprovisioning(session: Session, app_id: str, user_ids: list[str]) -> None:
    """From here on no push may add these users (their link rows are now write-locked)."""
    session.execute(
        update(t.AppUserLink)
        .where(
            t.AppUserLink.app_id == app_id,
            t.AppUserLink.user_id.in_(user_ids),
            t.AppUserLink.state.in_(["ACTIVE", "INACTIVE"]),
        )
        .values(state="DEPROVISIONING")
    )


def record_push_intents(session: Session, app_id: str, plan: PushPlan) -> PushPlan:
    """Insert pending rows for members about to be added; members whose account is no longer
    ACTIVE are dropped from the plan. Returns the plan that may be sent."""
    adds = [op for op in plan.operations if isinstance(op, ops.AddMembers | ops.ReplaceMembers)]
    if not adds:
        return plan
    user_ids = sorted({m[0] for op in adds for m in op.members})
    query = select(t.AppUserLink.user_id).where(
        t.AppUserLink.app_id == app_id,
        t.AppUserLink.user_id.in_(user_ids),
        t.AppUserLink.state == "ACTIVE",
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    allowed = set(session.execute(query).scalars())
    operations: list[ops.Operation] = []
    for op in plan.operations:
        if isinstance(op, ops.AddMembers | ops.ReplaceMembers):
            members = tuple(m for m in op.members if m[0] in allowed)
            _insert_pending(session, op.mapping_id, members)
            if isinstance(op, ops.AddMembers):
                if members:
                    operations.append(ops.AddMembers(op.mapping_id, op.group_external_id, members))
                continue
            op = ops.ReplaceMembers(op.mapping_id, op.group_external_id, op.display_name, members)
        operations.append(op)
    return PushPlan(
        tuple(operations),
        orphans=plan.orphans,
        finalize_delete=plan.finalize_delete,
        needs_group=plan.needs_group,
        reason=plan.reason,
    )


def _insert_pending(
    session: Session, mapping_id: str, members: tuple[tuple[str, str], ...]
) -> None:
    if not members:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {"mapping_id": mapping_id, "user_id": u, "external_id": e, "pending": True}
        for u, e in members
    ]
    for start in range(0, len(rows), 1000):
        stmt = insert(t.PushMember).values(rows[start : start + 1000])
        # A member recorded under an account id that changed (the account was recreated):
        # the row follows the new id, pending, so removing the old id later keeps it.
        stmt = stmt.on_conflict_do_update(
            index_elements=["mapping_id", "user_id"],
            set_={"external_id": stmt.excluded.external_id, "pending": True},
            where=t.PushMember.external_id != stmt.excluded.external_id,
        )
        session.execute(stmt)


# --- outcomes ---------------------------------------------------------------------------------


def record(
    database: Database, app: AppSnapshot, outcomes: list[Outcome], policy: RetryPolicy
) -> None:
    """Write every outcome of one app's batch in one transaction."""
    with database.transaction() as session:
        user_names = _user_labels(
            session, [o.key.subject_id for o in outcomes if o.key.kind == "user"]
        )
        for outcome in outcomes:
            _record_outcome(session, app, outcome, policy, user_names)
        # Accounts made or (re)activated may now join pushed groups: one set-based enqueue for
        # the whole batch rather than one INSERT ... SELECT per account.
        joined = session.info.pop(_JOINED, None)
        if joined:
            outbox.enqueue_push_for_app_users(session, app.id, sorted(joined))


#: ``session.info`` key: users whose account became active in this ``record`` transaction.
_JOINED = "headwater.recorder.joined"


def _push_later(session: Session, user_id: str) -> None:
    session.info.setdefault(_JOINED, set()).add(user_id)


def _user_labels(session: Session, user_ids: list[str]) -> dict[str, tuple[str, str]]:
    if not user_ids:
        return {}
    rows = session.execute(
        select(t.User.id, t.User.login, t.User.profile).where(t.User.id.in_(user_ids))
    )
    labels = {}
    for row in rows:
        profile = row.profile or {}
        name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p)
        labels[row.id] = (row.login, name or row.login)
    return labels


def _record_outcome(
    session: Session,
    app: AppSnapshot,
    outcome: Outcome,
    policy: RetryPolicy,
    users: dict[str, tuple[str, str]],
) -> None:
    now = clock.utcnow()
    for operation, result in outcome.done:
        _record_done(session, app, operation, result, users, now)
        if outcome.key.kind == outbox.USER and isinstance(operation, ops.RemoveMembers):
            _account_event(
                session,
                app,
                outcome.key.subject_id,
                users,
                "application.provision.group_push.push_memberships",
                f"Removed from pushed group {operation.group_external_id} in {app.label} "
                "before the account is deprovisioned",
            )
    work = getattr(outcome, "work", None)
    key = outcome.key
    refused = any(
        isinstance(result, MembershipResult) and result.rejected for _, result in outcome.done
    )
    if outcome.error is None:
        if key.kind == outbox.PUSH and work is not None and work.plan is not None:
            _push_succeeded(session, app, work, now, keep_error=refused)
        elif key.kind == outbox.USER:
            _account_succeeded(session, app, key.subject_id, outcome, now)
        if outcome.requeue is not None:
            leases.retry_later(session, key, outcome.requeue, count_attempt=False)
        else:
            leases.finish(session, key)
            if not refused:
                _clear_task(session, app.id, key)
        return
    _record_failure(session, app, outcome, policy, users, now)


def _upsert_link(session: Session, app_id: str, user_id: str, **values: Any) -> None:
    link = session.get(t.AppUserLink, (app_id, user_id))
    now = clock.utcnow()
    if link is None:
        link = t.AppUserLink(
            app_id=app_id,
            user_id=user_id,
            state="NONE",
            sync_state="SYNCING",
            created=now,
            last_updated=now,
        )
        session.add(link)
    if "state" in values and values["state"] != link.state:
        link.status_changed = now
    for name, value in values.items():
        setattr(link, name, value)
    link.last_updated = now


def _user_target(user_id: str, users: dict[str, tuple[str, str]]) -> Target:
    login, name = users.get(user_id, (user_id, user_id))
    return Target(user_id, "User", login, name)


def _record_done(
    session: Session,
    app: AppSnapshot,
    operation: ops.Operation,
    result: AccountResult | GroupResult | MembershipResult | None,
    users: dict[str, tuple[str, str]],
    now: Any,
) -> None:
    match operation:
        case ops.CreateAccount(user_id, attrs):
            assert isinstance(result, AccountResult)
            _upsert_link(
                session,
                app.id,
                user_id,
                external_id=result.external_id,
                user_name=attrs.user_name,
                state="ACTIVE",
                last_pushed=attrs.as_dict(),
                sync_state="SYNCHRONIZED",
                last_sync=now,
                last_error=None,
            )
            verb = "linked to existing" if result.linked else "created"
            _account_event(
                session,
                app,
                user_id,
                users,
                "application.provision.user.verify_exists"
                if result.linked
                else "application.provision.user.push",
                f"Account {verb} in {app.label} ({result.external_id})",
            )
            _push_later(session, user_id)
        case ops.UpdateAccount(user_id, _, attrs):
            _upsert_link(
                session,
                app.id,
                user_id,
                last_pushed=attrs.as_dict(),
                user_name=attrs.user_name,
                sync_state="SYNCHRONIZED",
                last_sync=now,
                last_error=None,
            )
            _account_event(
                session,
                app,
                user_id,
                users,
                "application.provision.user.push_profile",
                f"Profile pushed to {app.label}",
            )
        case ops.SetActive(user_id, _, active, attrs):
            values: dict[str, Any] = {
                "state": "ACTIVE" if active else "INACTIVE",
                "sync_state": "SYNCHRONIZED",
                "last_sync": now,
                "last_error": None,
            }
            if attrs is not None:
                values["last_pushed"] = attrs.as_dict()
            _upsert_link(session, app.id, user_id, **values)
            _account_event(
                session,
                app,
                user_id,
                users,
                "application.provision.user.reactivate"
                if active
                else "application.provision.user.deactivate",
                f"Account {'reactivated' if active else 'deactivated'} in {app.label}",
            )
            _push_later(session, user_id)
        case ops.DeleteAccount(user_id, _):
            _upsert_link(
                session,
                app.id,
                user_id,
                state="DELETED",
                external_id=None,
                last_pushed=None,
                sync_state="SYNCHRONIZED",
                last_sync=now,
            )
            _account_event(
                session,
                app,
                user_id,
                users,
                "application.provision.user.delete",
                f"Account deleted in {app.label}",
            )
        case ops.EnsureGroup(mapping_id, display_name):
            assert isinstance(result, GroupResult)
            _record_group(session, app, mapping_id, result, now)
        case ops.RenameGroup(mapping_id, _, display_name):
            mapping = session.get(t.PushMapping, mapping_id)
            if mapping is not None and mapping.target_group_id:
                _free_app_group_name(session, app.id, display_name, mapping.target_group_id)
                group = session.get(t.Group, mapping.target_group_id)
                if group is not None:
                    group.name, group.name_lower, group.last_updated = (
                        display_name,
                        display_name.lower(),
                        now,
                    )
            _push_event(
                session,
                app,
                mapping_id,
                "application.provision.group_push.mapping.app.group.renamed",
                f"Downstream group renamed to {display_name}",
            )
        case ops.AddMembers(mapping_id, _, members):
            rejected: tuple[tuple[str, str, str], ...] = (
                result.rejected if isinstance(result, MembershipResult) else ()
            )
            refused = {user_id for user_id, _, _ in rejected}
            accepted = [m[0] for m in members if m[0] not in refused]
            session.execute(
                update(t.PushMember)
                .where(t.PushMember.mapping_id == mapping_id, t.PushMember.user_id.in_(accepted))
                .values(pending=False)
            )
            if rejected:
                _record_rejected_members(session, app, mapping_id, rejected, users, now)
        case ops.RemoveMembers(mapping_id, _, members):
            # Match the account id too: a row already moved to a recreated account stays.
            known = [(u, e) for u, e in members if u is not None]
            if known:
                session.execute(
                    delete(t.PushMember).where(
                        t.PushMember.mapping_id == mapping_id,
                        tuple_(t.PushMember.user_id, t.PushMember.external_id).in_(known),
                    )
                )
        case ops.ReplaceMembers(mapping_id, _, _, members):
            keep = [m[0] for m in members]
            session.execute(
                delete(t.PushMember).where(
                    t.PushMember.mapping_id == mapping_id, t.PushMember.user_id.not_in(keep)
                )
            )
            session.execute(
                update(t.PushMember)
                .where(t.PushMember.mapping_id == mapping_id)
                .values(pending=False)
            )
        case ops.DeleteGroup(mapping_id, _):
            mapping = session.get(t.PushMapping, mapping_id)
            session.execute(delete(t.PushMember).where(t.PushMember.mapping_id == mapping_id))
            if mapping is not None and mapping.target_group_id:
                target = mapping.target_group_id
                mapping.target_group_id = None
                session.flush()
                session.execute(delete(t.Group).where(t.Group.id == target))
            _push_event(
                session,
                app,
                mapping_id,
                "application.provision.group_push.delete_appgroup",
                "Downstream group deleted",
            )


def _record_rejected_members(
    session: Session,
    app: AppSnapshot,
    mapping_id: str,
    rejected: tuple[tuple[str, str, str], ...],
    users: dict[str, tuple[str, str]],
    now: Any,
) -> None:
    """Members the downstream refused: forget their pending rows, raise a Task, flag the
    mapping; the rest of the batch went through."""
    session.execute(
        delete(t.PushMember).where(
            t.PushMember.mapping_id == mapping_id,
            t.PushMember.user_id.in_([user_id for user_id, _, _ in rejected]),
        )
    )
    summary = "; ".join(f"{external_id}: {message}" for _, external_id, message in rejected)
    message = f"{len(rejected)} member(s) refused by {app.label}: {summary}"[:2000]
    mapping = session.get(t.PushMapping, mapping_id)
    if mapping is not None:
        mapping.status, mapping.error_summary, mapping.last_updated = "ERROR", message, now
    key = ClaimedKey(app.id, outbox.PUSH, mapping_id, 0, 0, False)
    _upsert_task(session, app.id, key, "AddMembers", mapping_id, 400, message, 1, now)
    _push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_membership.add",
        message,
        outcome="FAILURE",
        reason=message,
    )


def _free_app_group_name(session: Session, app_id: str, name: str, keep_id: str | None) -> None:
    """Another APP_GROUP row of the app recorded under ``name`` is stale: the downstream group
    just given that name is a different one (a rename checks the name is free downstream). The
    row is kept (it may be assigned) but stops holding the name, so the unique index holds."""
    query = select(t.Group).where(t.Group.name_scope == app_id, t.Group.name_lower == name.lower())
    if keep_id is not None:
        query = query.where(t.Group.id != keep_id)
    for stale in session.execute(query).scalars():
        stale.name_lower = f"{stale.name_lower}#{stale.id}"[:255]
    session.flush()


def _record_group(
    session: Session, app: AppSnapshot, mapping_id: str, result: GroupResult, now: Any
) -> None:
    """Create or update the APP_GROUP standing for the downstream group; a new or relinked
    group starts with no recorded members and gets a full push next."""
    mapping = session.get(t.PushMapping, mapping_id)
    if mapping is None:
        return
    group = session.execute(
        select(t.Group).where(t.Group.app_id == app.id, t.Group.external_id == result.external_id)
    ).scalar_one_or_none()
    if group is None and mapping.target_group_id:
        group = session.get(t.Group, mapping.target_group_id)
    _free_app_group_name(session, app.id, result.display_name, group.id if group else None)
    if group is None:
        group = t.Group(
            id=ids.new_id("00g"),
            type="APP_GROUP",
            app_id=app.id,
            profile={},
            description=None,
            created=now,
            last_membership_updated=None,
        )
        session.add(group)
    group.external_id = result.external_id
    group.name = result.display_name
    group.name_lower = result.display_name.lower()
    group.name_scope = app.id
    group.last_updated = now
    session.flush()
    mapping.target_group_id = group.id
    mapping.full_push = True
    session.execute(delete(t.PushMember).where(t.PushMember.mapping_id == mapping_id))
    verb = "linked to the existing" if result.linked else "created the"
    _push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_push.pushed",
        f"Group push {verb} downstream group {result.display_name}",
    )


def _account_event(
    session: Session,
    app: AppSnapshot,
    user_id: str,
    users: dict[str, tuple[str, str]],
    event_type: str,
    message: str,
    *,
    outcome: str = "SUCCESS",
    reason: str | None = None,
) -> None:
    events.record(
        session,
        event_type,
        message,
        actor=SYSTEM,
        targets=[_user_target(user_id, users), _app_target(app)],
        outcome=outcome,
        reason=reason,
    )


def _push_event(
    session: Session,
    app: AppSnapshot,
    mapping_id: str,
    event_type: str,
    message: str,
    *,
    outcome: str = "SUCCESS",
    reason: str | None = None,
    debug: dict[str, Any] | None = None,
) -> None:
    events.record(
        session,
        event_type,
        message,
        actor=SYSTEM,
        targets=[Target(mapping_id, "GroupPushMapping", mapping_id, mapping_id), _app_target(app)],
        outcome=outcome,
        reason=reason,
        debug=debug,
    )


def _account_succeeded(
    session: Session, app: AppSnapshot, user_id: str, outcome: Outcome, now: Any
) -> None:
    work = getattr(outcome, "work", None)
    link = session.get(t.AppUserLink, (app.id, user_id))
    if link is not None and link.sync_state in ("ERROR", "SYNCING", "OUT_OF_SYNC"):
        link.sync_state = "SYNCHRONIZED"
        link.last_error = None
        link.last_sync = now
    if work is not None and work.plan is not None and not work.plan.deprovision:
        return
    if work is not None and work.plan is not None and work.plan.deprovision:
        guard.settle(session, app.id, [user_id])
    if link is not None and link.state == "DEPROVISIONING" and not outcome.done:
        # Nothing had to be sent (deactivation switched off): the account is ours no more.
        link.state = "INACTIVE"


def _push_succeeded(
    session: Session, app: AppSnapshot, work: Any, now: Any, *, keep_error: bool = False
) -> None:
    mapping = session.get(t.PushMapping, work.key.subject_id)
    if mapping is None:
        return
    plan: PushPlan = work.plan
    if plan.finalize_delete:
        # A kept downstream group keeps its APP_GROUP row: it still stands for that group.
        session.delete(mapping)
        session.flush()
        _push_event(
            session,
            app,
            mapping.id,
            "application.provision.group_push.removed",
            "Group push mapping removed",
        )
        return
    if plan.needs_group or (not plan.operations and mapping.status == "INACTIVE"):
        return
    changes = [
        op
        for op in plan.operations
        if isinstance(op, ops.AddMembers | ops.RemoveMembers | ops.ReplaceMembers)
    ]
    snap = work.snapshot
    skipped = max(0, snap.source_member_count - len(snap.eligible)) if snap.source_group_id else 0
    if skipped and skipped != mapping.skipped_count:
        _push_event(
            session,
            app,
            mapping.id,
            "app.user_management.grouppush.mapping.okta.users.ignored",
            f"{skipped} member(s) of the source group have no account in {app.label} "
            "and were not pushed",
            debug={"skipped": skipped},
        )
    mapping.skipped_count = skipped
    if not keep_error:
        if mapping.status == "ERROR":
            mapping.status = "ACTIVE"
        mapping.error_summary = None
    if work.snapshot.full_push:
        # Only the full push this reconcile did; one requested meanwhile is still owed.
        mapping.full_push = False
    mapping.last_push = now
    mapping.last_updated = now
    _store_orphans(session, app.id, mapping.id, plan.orphans, observed=work.observed_members)
    if changes:
        added = sum(len(op.members) for op in changes if isinstance(op, ops.AddMembers))
        removed = sum(len(op.members) for op in changes if isinstance(op, ops.RemoveMembers))
        _push_event(
            session,
            app,
            mapping.id,
            "application.provision.group_push.push_memberships",
            f"Pushed memberships: {added} added, {removed} removed",
            debug={"added": added, "removed": removed},
        )


def _store_orphans(
    session: Session, app_id: str, mapping_id: str, orphans: frozenset[str], observed: Any
) -> None:
    """Remember the unknown downstream members seen in the last observation of a group."""
    if not isinstance(observed, frozenset):
        return
    session.execute(delete(t.Orphan).where(t.Orphan.mapping_id == mapping_id))
    now = clock.utcnow()
    for external_id in sorted(orphans):
        session.add(
            t.Orphan(mapping_id=mapping_id, app_id=app_id, external_id=external_id, seen=now)
        )


def _record_failure(
    session: Session,
    app: AppSnapshot,
    outcome: Outcome,
    policy: RetryPolicy,
    users: dict[str, tuple[str, str]],
    now: Any,
) -> None:
    key, error = outcome.key, outcome.error
    assert error is not None
    message = str(error) or type(error).__name__
    if isinstance(error, NotFoundError) and _recover_not_found(session, app, outcome):
        leases.retry_later(session, key, 0.0, count_attempt=False)
        return
    if isinstance(error, TransientError):
        decision = policy.decide(key.attempts + 1, error.retry_after)
        if decision.retry:
            _failure_event(session, app, outcome, users, message + " (will retry)")
            leases.retry_later(session, key, decision.delay)
            _mark_error(session, app, key, message, error_state=False)
            return
        message = f"gave up after {key.attempts + 1} attempts: {message}"
    _failure_event(session, app, outcome, users, message)
    _mark_error(session, app, key, message, error_state=True)
    _open_task(session, app, outcome, message, now)
    if key.kind == outbox.PUSH:
        _settle_pending(session, key.subject_id)
    leases.finish(session, key)


def _settle_pending(session: Session, mapping_id: str) -> None:
    """Adds whose outcome is unknown after a final failure count as sent: a deprovision then
    removes them first (removing a non-member is harmless) instead of waiting for an answer
    that will never come. The retry of the Task pushes the whole membership again."""
    session.execute(
        update(t.PushMember)
        .where(t.PushMember.mapping_id == mapping_id, t.PushMember.pending.is_(True))
        .values(pending=False)
    )


def _recover_not_found(session: Session, app: AppSnapshot, outcome: Outcome) -> bool:
    """A 404 on an account or group we address by id: the downstream lost it. Forget the id;
    the next reconcile recreates what is still wanted (or finds nothing to do)."""
    failed = outcome.failed
    if isinstance(failed, ops.UpdateAccount | ops.SetActive | ops.DeleteAccount):
        state = "NONE" if not isinstance(failed, ops.DeleteAccount) else "DELETED"
        if isinstance(failed, ops.SetActive) and not failed.active:
            state = "DELETED"
        _upsert_link(
            session, app.id, failed.user_id, external_id=None, state=state, last_pushed=None
        )
        return True
    if isinstance(failed, ops.RenameGroup | ops.AddMembers | ops.ReplaceMembers | ops.DeleteGroup):
        mapping = session.get(t.PushMapping, failed.mapping_id)
        if mapping is not None and mapping.target_group_id:
            group = session.get(t.Group, mapping.target_group_id)
            if group is not None:
                group.external_id = None
            mapping.full_push = True
            session.execute(
                delete(t.PushMember).where(t.PushMember.mapping_id == failed.mapping_id)
            )
        return True
    return False


def _failure_event(
    session: Session,
    app: AppSnapshot,
    outcome: Outcome,
    users: dict[str, tuple[str, str]],
    message: str,
) -> None:
    failed = outcome.failed
    name = type(failed).__name__ if failed is not None else "Plan"
    if outcome.key.kind == outbox.USER:
        _account_event(
            session,
            app,
            outcome.key.subject_id,
            users,
            _ACCOUNT_FAILURE_EVENTS.get(name, "application.provision.user.sync"),
            f"{name} failed in {app.label}: {message}",
            outcome="FAILURE",
            reason=message[:1000],
        )
    else:
        transient = isinstance(outcome.error, TransientError)
        _push_event(
            session,
            app,
            outcome.key.subject_id,
            "application.provision.group_push.mapping.update.or.delete.failed"
            if transient
            else "application.provision.group_push.mapping.update.or.delete.failed.with.error",
            f"{name} failed in {app.label}: {message}",
            outcome="FAILURE",
            reason=message[:1000],
        )


_ACCOUNT_FAILURE_EVENTS = {
    "CreateAccount": "application.provision.user.push",
    "UpdateAccount": "application.provision.user.push_profile",
    "SetActive": "application.provision.user.deactivate",
    "DeleteAccount": "application.provision.user.delete",
    "RemoveMembers": "application.provision.group_membership.remove",
}


def _mark_error(
    session: Session, app: AppSnapshot, key: ClaimedKey, message: str, *, error_state: bool
) -> None:
    if key.kind == outbox.USER:
        _upsert_link(
            session,
            app.id,
            key.subject_id,
            sync_state="ERROR" if error_state else "OUT_OF_SYNC",
            last_error=message[:2000],
        )
        return
    mapping = session.get(t.PushMapping, key.subject_id)
    if mapping is not None and mapping.status != "INACTIVE":
        mapping.status = "ERROR" if error_state else mapping.status
        mapping.error_summary = message[:2000]
        mapping.last_updated = clock.utcnow()


def _open_task(
    session: Session, app: AppSnapshot, outcome: Outcome, message: str, now: Any
) -> None:
    error = outcome.error
    status = error.status if isinstance(error, DownstreamError) else None
    operation = (
        type(outcome.failed).__name__
        if outcome.failed is not None
        else ("MapAttributes" if isinstance(error, MappingError) else "Reconcile")
    )
    key = outcome.key
    _upsert_task(
        session, app.id, key, operation, key.subject_id, status, message, key.attempts + 1, now
    )


def _upsert_task(
    session: Session,
    app_id: str,
    key: ClaimedKey,
    operation: str,
    target: str,
    status: int | None,
    message: str,
    attempts: int,
    now: Any,
) -> None:
    """One open Task per key: a new failure updates it rather than piling up duplicates."""
    task = session.execute(
        select(t.Task).where(
            t.Task.app_id == app_id, t.Task.kind == key.kind, t.Task.subject_id == key.subject_id
        )
    ).scalar_one_or_none()
    if task is None:
        session.add(
            t.Task(
                id=ids.new_id("tsk"),
                app_id=app_id,
                kind=key.kind,
                subject_id=key.subject_id,
                operation=operation,
                target=target,
                http_status=status,
                message=message[:2000],
                attempts=attempts,
                first_attempt=now,
                last_attempt=now,
            )
        )
        return
    task.operation, task.http_status, task.message = operation, status, message[:2000]
    task.attempts += 1
    task.last_attempt = now


def _clear_task(session: Session, app_id: str, key: ClaimedKey) -> None:
    session.execute(
        delete(t.Task).where(
            and_(
                t.Task.app_id == app_id,
                t.Task.kind == key.kind,
                t.Task.subject_id == key.subject_id,
            )
        )
    )
