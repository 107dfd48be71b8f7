"""The recorder writes what a reconcile did and the fate of each key, in one short transaction
per app batch: links for accounts made or changed, pushed members, downstream groups, events,
then the fate exactly as ``domain.fate`` decided it. It decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, exists, select, tuple_, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import leases, outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import Buffer
from headwater.db.rowsets import any_of
from headwater.domain import operations as ops
from headwater.domain.fate import ErrorClass, Fate, Finish, Quarantine, RequeueAfter, Retry, Task
from headwater.domain.states import GroupType, KeyKind, LinkState, MappingStatus, SyncState
from headwater.engine import failures, guard, orphans, quarantine, trail
from headwater.engine.executor import AccountResult, GroupResult, MembershipResult, OperationResult
from headwater.engine.links import Links
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.trail import UserLabels
from headwater.engine.work import AccountWork, Outcome, PushWork

__all__ = ["finish_all", "record"]


def finish_all(database: Database, keys: Sequence[leases.ClaimedKey]) -> None:
    """Keys with nothing to do (the app is inactive, the mapping is gone)."""
    with database.transaction() as session:
        leases.finish_many(session, keys)


@dataclass
class _Batch:
    """What one ``record`` transaction writes for one app's batch: the links it touches (read
    once), and the keys whose end is written in bulk at the end."""

    session: Session
    app: AppSnapshot
    labels: UserLabels
    links: Links
    finished: list[leases.ClaimedKey] = field(default_factory=list)
    settled: list[leases.ClaimedKey] = field(default_factory=list)
    joined: set[str] = field(default_factory=set)
    #: Push mappings that went through (their members wanted again are no longer stale).
    pushed: list[str] = field(default_factory=list)
    #: Events of operations that went through, written together at the end.
    events: Buffer = field(default_factory=Buffer)


def record(database: Database, app: AppSnapshot, fates: Sequence[tuple[Outcome, Fate]]) -> None:
    """Write every outcome of one app's batch, and each key's fate, in one transaction.

    Statements are set-based per batch: links read in one query, new ones inserted by one
    ``executemany`` once every outcome is recorded (before anything reads them back), keys
    finished and Tasks cleared in one statement each."""
    with database.transaction() as session, session.no_autoflush:
        users = [o.key.subject_id for o, _ in fates if o.key.kind is KeyKind.USER]
        batch = _Batch(
            session,
            app,
            trail.load_labels(session, users),
            Links.load(session, app.id, users),
        )
        quarantined: list[leases.ClaimedKey] = []
        reason = ""
        for outcome, fate in fates:
            _record_done(batch, outcome)
            if outcome.stale:
                failures.record_stale(session, app, outcome, batch.labels)
            if isinstance(fate, Quarantine):
                quarantined.append(outcome.key)
                reason = reason or fate.reason
                continue
            _write_fate(batch, outcome, fate)
        batch.links.write()
        leases.finish_many(session, batch.finished)
        failures.clear_tasks(session, app.id, batch.settled)
        if batch.pushed:
            session.flush()
            _unstale(session, app.id, batch.pushed)
        if quarantined:
            quarantine.enter(session, app, quarantined, reason)
        # Accounts made or (re)activated may now join pushed groups: one set-based enqueue for
        # the whole batch rather than one INSERT ... SELECT per account.
        if batch.joined:
            session.flush()
            outbox.enqueue_push_for_app_users(session, app.id, sorted(batch.joined))
        batch.events.write(session)


def _write_fate(batch: _Batch, outcome: Outcome, fate: Fate) -> None:
    session, app, key = batch.session, batch.app, outcome.key
    match fate:
        case Finish(clear_task):
            _succeeded(batch, outcome)
            batch.finished.append(key)
            if clear_task:
                batch.settled.append(key)
        case RequeueAfter(seconds):
            if outcome.error_class is ErrorClass.LOST:
                failures.forget_lost(session, batch.links, outcome.failed)
            else:
                _succeeded(batch, outcome)
            leases.retry_later(session, key, seconds, count_attempt=False)
        case Retry(delay, message):
            trail.failure_event(session, app, outcome, batch.labels, message + " (will retry)")
            leases.retry_later(session, key, delay)
            failures.mark_error(session, batch.links, key, message, final=False)
        case Task(message):
            trail.failure_event(session, app, outcome, batch.labels, message)
            failures.mark_error(session, batch.links, key, message, final=True)
            failures.open_task(session, app, outcome, message)
            if key.kind is KeyKind.PUSH:
                failures.settle_pending(session, key.subject_id)
            batch.finished.append(key)


def _succeeded(batch: _Batch, outcome: Outcome) -> None:
    work = outcome.work
    if isinstance(work, PushWork):
        _push_succeeded(batch, work, outcome)
    else:
        _account_succeeded(batch, work, outcome)


# --- operations done ----------------------------------------------------------------------------


def _record_done(batch: _Batch, outcome: Outcome) -> None:
    """Record every operation that went through (accounts that became active join pushes)."""
    session, app, labels = batch.session, batch.app, batch.labels
    now = clock.utcnow()
    for operation, result in outcome.done:
        if _record_operation(batch, operation, result, now):
            batch.joined.add(outcome.key.subject_id)
        if outcome.key.kind is KeyKind.USER and isinstance(operation, ops.RemoveMembers):
            trail.account_event(
                session,
                app,
                outcome.key.subject_id,
                labels,
                "application.provision.group_push.push_memberships",
                f"Removed from pushed group {operation.group_external_id} in {app.label} "
                "before the account is deprovisioned",
                buffer=batch.events,
            )


def _record_operation(
    batch: _Batch, operation: ops.Operation, result: OperationResult, now: datetime
) -> bool:
    """Record one operation that went through; True when an account became active."""
    session, app, labels, links = batch.session, batch.app, batch.labels, batch.links
    match operation:
        case ops.CreateAccount(user_id, attrs):
            assert isinstance(result, AccountResult)
            links.upsert(
                user_id,
                external_id=result.external_id,
                user_name=attrs.user_name,
                state=LinkState.ACTIVE,
                last_pushed=attrs.as_dict(),
                sync_state=SyncState.SYNCHRONIZED,
                last_sync=now,
                last_error=None,
            )
            verb = "linked to existing" if result.linked else "created"
            trail.account_event(
                session,
                app,
                user_id,
                labels,
                "application.provision.user.verify_exists"
                if result.linked
                else "application.provision.user.push",
                f"Account {verb} in {app.label} ({result.external_id})",
                buffer=batch.events,
            )
            return True
        case ops.UpdateAccount(user_id, _, attrs):
            links.upsert(
                user_id,
                last_pushed=attrs.as_dict(),
                user_name=attrs.user_name,
                sync_state=SyncState.SYNCHRONIZED,
                last_sync=now,
                last_error=None,
            )
            trail.account_event(
                session,
                app,
                user_id,
                labels,
                "application.provision.user.push_profile",
                f"Profile pushed to {app.label}",
                buffer=batch.events,
            )
        case ops.SetActive(user_id, _, active, attrs):
            pushed = {} if attrs is None else {"last_pushed": attrs.as_dict()}
            links.upsert(
                user_id,
                state=LinkState.ACTIVE if active else LinkState.INACTIVE,
                sync_state=SyncState.SYNCHRONIZED,
                last_sync=now,
                last_error=None,
                **pushed,
            )
            trail.account_event(
                session,
                app,
                user_id,
                labels,
                "application.provision.user.reactivate"
                if active
                else "application.provision.user.deactivate",
                f"Account {'reactivated' if active else 'deactivated'} in {app.label}",
                buffer=batch.events,
            )
            return True
        case ops.DeleteAccount(user_id, _):
            links.upsert(
                user_id,
                state=LinkState.DELETED,
                external_id=None,
                last_pushed=None,
                sync_state=SyncState.SYNCHRONIZED,
                last_sync=now,
            )
            trail.account_event(
                session,
                app,
                user_id,
                labels,
                "application.provision.user.delete",
                f"Account deleted in {app.label}",
                buffer=batch.events,
            )
        case ops.EnsureGroup(mapping_id, _):
            assert isinstance(result, GroupResult)
            _record_group(session, app, mapping_id, result, now)
        case ops.RenameGroup(mapping_id, _, display_name):
            _record_rename(session, app, mapping_id, display_name, now)
        case ops.AddMembers(mapping_id, _, members):
            refused = result.rejected if isinstance(result, MembershipResult) else ()
            refused_ids = {user_id for user_id, _, _ in refused}
            accepted = [m[0] for m in members if m[0] not in refused_ids]
            session.execute(
                update(t.PushMember)
                .where(
                    t.PushMember.mapping_id == mapping_id, any_of(t.PushMember.user_id, accepted)
                )
                .values(pending=False)
            )
            if refused:
                failures.record_refused_members(session, app, mapping_id, refused, now)
        case ops.RemoveMembers(mapping_id, _, members):
            # Match the account id too: a row already moved to a recreated account stays.
            known = [(u, e) for u, e in members if u is not None]
            if known:
                session.execute(
                    delete(t.PushMember).where(
                        t.PushMember.mapping_id == mapping_id,
                        # The plain IN lets SQLite use the key; the pairs then pick the rows.
                        any_of(t.PushMember.user_id, [u for u, _ in known]),
                        tuple_(t.PushMember.user_id, t.PushMember.external_id).in_(known),
                    )
                )
        case ops.ReplaceMembers(mapping_id, _, _, members):
            keep = [m[0] for m in members]
            session.execute(
                delete(t.PushMember).where(
                    t.PushMember.mapping_id == mapping_id, ~any_of(t.PushMember.user_id, keep)
                )
            )
            session.execute(
                update(t.PushMember)
                .where(t.PushMember.mapping_id == mapping_id)
                .values(pending=False)
            )
        case ops.DeleteGroup(mapping_id, _):
            _record_group_deleted(session, app, mapping_id)
    return False


# --- downstream groups --------------------------------------------------------------------------


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
    session: Session, app: AppSnapshot, mapping_id: str, result: GroupResult, now: datetime
) -> None:
    """Create or update the APP_GROUP standing for the downstream group; a new or relinked
    group starts with no recorded members and gets a full push next."""
    mapping = session.get(t.PushMapping, mapping_id)
    if mapping is None:
        return
    session.flush()  # groups recorded earlier in this batch are looked up below
    group = session.execute(
        select(t.Group).where(t.Group.app_id == app.id, t.Group.external_id == result.external_id)
    ).scalar_one_or_none()
    if group is None and mapping.target_group_id:
        group = session.get(t.Group, mapping.target_group_id)
    _free_app_group_name(session, app.id, result.display_name, group.id if group else None)
    if group is None:
        group = t.Group(
            id=ids.new_id("00g"),
            type=GroupType.APP_GROUP,
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
    # A group just created is known to be empty: its members are added in batches, never
    # written whole. A linked group's members are not known, so it gets a full push.
    mapping.full_push = result.linked
    session.execute(delete(t.PushMember).where(t.PushMember.mapping_id == mapping_id))
    verb = "linked to the existing" if result.linked else "created the"
    trail.push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_push.pushed",
        f"Group push {verb} downstream group {result.display_name}",
    )


def _record_rename(
    session: Session, app: AppSnapshot, mapping_id: str, display_name: str, now: datetime
) -> None:
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
    trail.push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_push.mapping.app.group.renamed",
        f"Downstream group renamed to {display_name}",
    )


def _record_group_deleted(session: Session, app: AppSnapshot, mapping_id: str) -> None:
    mapping = session.get(t.PushMapping, mapping_id)
    session.execute(delete(t.PushMember).where(t.PushMember.mapping_id == mapping_id))
    if mapping is not None and mapping.target_group_id:
        target = mapping.target_group_id
        mapping.target_group_id = None
        session.flush()
        session.execute(delete(t.Group).where(t.Group.id == target))
    trail.push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_push.delete_appgroup",
        "Downstream group deleted",
    )


# --- keys that went through ---------------------------------------------------------------------


def _unstale(session: Session, app_id: str, mapping_ids: list[str]) -> None:
    """A stale membership whose user holds an active account again is wanted, not stale."""
    active = exists().where(
        t.AppUserLink.app_id == app_id,
        t.AppUserLink.user_id == t.PushMember.user_id,
        t.AppUserLink.state == LinkState.ACTIVE,
    )
    session.execute(
        update(t.PushMember)
        .where(
            any_of(t.PushMember.mapping_id, mapping_ids),
            t.PushMember.stale_since.is_not(None),
            active,
        )
        .values(stale_since=None, stale_error=None)
        .execution_options(synchronize_session=False)
    )


def _account_succeeded(batch: _Batch, work: AccountWork, outcome: Outcome) -> None:
    session, app = batch.session, batch.app
    link = batch.links.get(work.key.subject_id)
    if link is not None and link.sync_state in (
        SyncState.ERROR,
        SyncState.SYNCING,
        SyncState.OUT_OF_SYNC,
    ):
        link.sync_state = SyncState.SYNCHRONIZED
        link.last_error = None
        link.last_sync = clock.utcnow()
    if work.plan is None or not work.plan.deprovision:
        return
    guard.settle(session, app.id, [work.key.subject_id])
    if link is not None and link.state == LinkState.DEPROVISIONING and not outcome.done:
        # Nothing had to be sent (deactivation switched off): the account is ours no more.
        link.state = LinkState.INACTIVE


def _push_succeeded(batch: _Batch, work: PushWork, outcome: Outcome) -> None:
    session, app = batch.session, batch.app
    mapping = session.get(t.PushMapping, work.key.subject_id)
    plan = work.plan
    if mapping is None or plan is None:
        return
    if plan.finalize_delete:
        # A kept downstream group keeps its APP_GROUP row: it still stands for that group.
        session.delete(mapping)
        session.flush()
        trail.push_event(
            session,
            app,
            mapping.id,
            "application.provision.group_push.removed",
            "Group push mapping removed",
        )
        return
    if plan.needs_group or (not plan.operations and mapping.status == MappingStatus.INACTIVE):
        return
    now = clock.utcnow()
    snap = work.snapshot
    skipped = max(0, snap.source_member_count - len(snap.eligible)) if snap.source_group_id else 0
    if skipped and skipped != mapping.skipped_count:
        trail.push_event(
            session,
            app,
            mapping.id,
            "app.user_management.grouppush.mapping.okta.users.ignored",
            f"{skipped} member(s) of the source group have no account in {app.label} "
            "and were not pushed",
            debug={"skipped": skipped},
        )
    mapping.skipped_count = skipped
    batch.pushed.append(mapping.id)
    refused = any(
        isinstance(result, MembershipResult) and result.rejected for _, result in outcome.done
    )
    if not refused:
        if mapping.status == MappingStatus.ERROR:
            mapping.status = MappingStatus.ACTIVE
        mapping.error_summary = None
    if snap.full_push:
        # Only the full push this reconcile did; one requested meanwhile is still owed.
        mapping.full_push = False
    mapping.last_push = now
    mapping.last_updated = now
    if isinstance(work.observed_members, frozenset):
        orphans.remember(session, app.id, mapping.id, plan.orphans)
    changes = [
        op
        for op in plan.operations
        if isinstance(op, ops.AddMembers | ops.RemoveMembers | ops.ReplaceMembers)
    ]
    if changes:
        added = sum(len(op.members) for op in changes if isinstance(op, ops.AddMembers))
        removed = sum(len(op.members) for op in changes if isinstance(op, ops.RemoveMembers))
        trail.push_event(
            session,
            app,
            mapping.id,
            "application.provision.group_push.push_memberships",
            f"Pushed memberships: {added} added, {removed} removed",
            debug={"added": added, "removed": removed},
        )
