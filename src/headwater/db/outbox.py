"""The reconcile outbox: enqueue keys with set-based SQL, claim them in batches, finish them.

Keys, not deltas: a row says "(app, kind, subject) may be out of date", nothing more. Every
enqueue is one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` in the caller's transaction, so
assigning a 100k-member group writes its keys in one statement, atomically with the change.

Claiming leases rows to one worker (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has a single
writer). Finishing deletes the row only if nobody re-enqueued it meanwhile (same generation);
otherwise the lease is dropped and the key is claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t

__all__ = [
    "PUSH",
    "USER",
    "ClaimedKey",
    "claim",
    "enqueue_app",
    "enqueue_group_members_for_app",
    "enqueue_keys",
    "enqueue_membership_change",
    "enqueue_push_for_app_users",
    "enqueue_push_for_group",
    "enqueue_push_for_users",
    "enqueue_user",
    "enqueue_users_for_apps",
    "enqueue_users_of_app_group",
    "finish",
    "notify",
    "pending_count",
    "retry_later",
]

USER = "user"
PUSH = "push"
CHANNEL = "headwater_keys"


@dataclass(frozen=True)
class ClaimedKey:
    app_id: str
    kind: str
    subject_id: str
    generation: int
    attempts: int
    observe: bool


def _upsert(
    session: Session,
    rows: Select[Any, Any, Any] | list[tuple[str, str, str]],
    *,
    observe: bool,
    delay: float = 0.0,
) -> None:
    """Insert keys (a SELECT of app_id, kind, subject_id, or explicit tuples); keys already
    queued get a new generation, become due now (unless ``delay``) and keep ``observe``."""
    now = clock.utcnow()
    due = now + timedelta(seconds=delay)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = [
        "app_id",
        "kind",
        "subject_id",
        "generation",
        "enqueued_at",
        "not_before",
        "attempts",
        "observe",
    ]
    if isinstance(rows, list):
        stmt = insert(t.ReconcileKey).values(
            [dict(zip(columns, (*key, 1, now, due, 0, observe), strict=True)) for key in rows]
        )
    else:
        sub = rows.subquery()
        source = select(
            sub.c.app_id,
            sub.c.kind,
            sub.c.subject_id,
            literal(1).label("generation"),
            literal(now, t.Timestamp).label("enqueued_at"),
            literal(due, t.Timestamp).label("not_before"),
            literal(0).label("attempts"),
            literal(observe).label("observe"),
        )
        # SQLite needs a WHERE clause to parse INSERT ... SELECT ... ON CONFLICT unambiguously.
        source = source.where(true()).distinct()
        stmt = insert(t.ReconcileKey).from_select(columns, source)
    excluded = stmt.excluded
    earliest = func.min if dialect == "sqlite" else func.least
    stmt = stmt.on_conflict_do_update(
        index_elements=["app_id", "kind", "subject_id"],
        set_={
            "generation": t.ReconcileKey.generation + 1,
            "enqueued_at": excluded.enqueued_at,
            "not_before": earliest(t.ReconcileKey.not_before, excluded.not_before),
            "attempts": 0,
            "observe": or_(t.ReconcileKey.observe, excluded.observe),
        },
    )
    session.execute(stmt)
    notify(session)


def _keys(app_id: Any, kind: str, subject_id: Any) -> Select[Any, Any, Any]:
    return select(
        app_id.label("app_id"), literal(kind).label("kind"), subject_id.label("subject_id")
    )


def enqueue_keys(
    session: Session, keys: list[tuple[str, str, str]], *, observe: bool = False, delay: float = 0.0
) -> None:
    """Enqueue explicit keys (small sets: one user, one mapping)."""
    if not keys:
        return
    _upsert(session, sorted(set(keys)), observe=observe, delay=delay)


def enqueue_user(session: Session, user_id: str) -> None:
    """Every app where the user is assigned or has a recorded account, and every push mapping
    whose source group holds the user: all that a change to this user can affect."""
    direct = select(t.AppUserAssignment.app_id.label("app_id")).where(
        t.AppUserAssignment.user_id == user_id
    )
    via_group = (
        select(t.AppGroupAssignment.app_id.label("app_id"))
        .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
        .where(t.Membership.user_id == user_id)
    )
    linked = select(t.AppUserLink.app_id.label("app_id")).where(t.AppUserLink.user_id == user_id)
    apps = direct.union(via_group, linked).subquery()
    _upsert(session, _keys(apps.c.app_id, USER, literal(user_id)), observe=False)
    enqueue_push_for_users(session, [user_id])


def enqueue_users_for_apps(session: Session, app_id: str, user_ids: list[str]) -> None:
    """Keys for some users of one app (direct assignment changes, explicit requests)."""
    enqueue_keys(session, [(app_id, USER, uid) for uid in user_ids])


def enqueue_users_of_app_group(session: Session, group_id: str, app_id: str | None = None) -> None:
    """Keys for every member of ``group_id`` in every app the group is assigned to (or one app).

    One statement whatever the group's size.
    """
    query = (
        select(
            t.AppGroupAssignment.app_id.label("app_id"),
            literal(USER).label("kind"),
            t.Membership.user_id.label("subject_id"),
        )
        .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
        .where(t.AppGroupAssignment.group_id == group_id)
    )
    if app_id is not None:
        query = query.where(t.AppGroupAssignment.app_id == app_id)
    _upsert(session, query, observe=False)


def enqueue_group_members_for_app(session: Session, group_id: str, app_id: str) -> None:
    """Keys (app, member) for every member of a group, whether or not the group is assigned
    (used right after an unassignment, when the assignment row is already gone)."""
    query = select(
        literal(app_id).label("app_id"),
        literal(USER).label("kind"),
        t.Membership.user_id.label("subject_id"),
    ).where(t.Membership.group_id == group_id)
    _upsert(session, query, observe=False)


def enqueue_push_for_group(session: Session, group_id: str) -> None:
    """Every push mapping whose source group is ``group_id``."""
    query = select(
        t.PushMapping.app_id.label("app_id"),
        literal(PUSH).label("kind"),
        t.PushMapping.id.label("subject_id"),
    ).where(t.PushMapping.source_group_id == group_id)
    _upsert(session, query, observe=False)


def enqueue_push_for_users(session: Session, user_ids: list[str]) -> None:
    """Every push mapping that holds (or should hold) one of these users."""
    in_source = (
        select(
            t.PushMapping.app_id.label("app_id"),
            literal(PUSH).label("kind"),
            t.PushMapping.id.label("subject_id"),
        )
        .join(t.Membership, t.Membership.group_id == t.PushMapping.source_group_id)
        .where(t.Membership.user_id.in_(user_ids))
    )
    pushed = (
        select(
            t.PushMapping.app_id.label("app_id"),
            literal(PUSH).label("kind"),
            t.PushMapping.id.label("subject_id"),
        )
        .join(t.PushMember, t.PushMember.mapping_id == t.PushMapping.id)
        .where(t.PushMember.user_id.in_(user_ids))
    )
    both = in_source.union(pushed).subquery()
    _upsert(session, select(both.c.app_id, both.c.kind, both.c.subject_id), observe=False)


def enqueue_push_for_app_users(session: Session, app_id: str, user_ids: list[str] | None) -> None:
    """Push mappings of one app that involve these users (or all the app's mappings)."""
    query = select(
        t.PushMapping.app_id.label("app_id"),
        literal(PUSH).label("kind"),
        t.PushMapping.id.label("subject_id"),
    ).where(t.PushMapping.app_id == app_id)
    if user_ids is not None:
        query = query.where(
            or_(
                exists().where(
                    t.Membership.group_id == t.PushMapping.source_group_id,
                    t.Membership.user_id.in_(user_ids),
                ),
                exists().where(
                    t.PushMember.mapping_id == t.PushMapping.id, t.PushMember.user_id.in_(user_ids)
                ),
            )
        )
    _upsert(session, query, observe=False)


def enqueue_app(session: Session, app_id: str, *, observe: bool = False) -> None:
    """Every key of one app: assigned users (direct or by group), linked users, push mappings.

    ``observe`` asks the reconciler to read the downstream state back (full reconcile).
    """
    direct = select(t.AppUserAssignment.user_id.label("subject_id")).where(
        t.AppUserAssignment.app_id == app_id
    )
    via_group = (
        select(t.Membership.user_id.label("subject_id"))
        .join(t.AppGroupAssignment, t.AppGroupAssignment.group_id == t.Membership.group_id)
        .where(t.AppGroupAssignment.app_id == app_id)
    )
    linked = select(t.AppUserLink.user_id.label("subject_id")).where(t.AppUserLink.app_id == app_id)
    users = direct.union(via_group, linked).subquery()
    _upsert(session, _keys(literal(app_id), USER, users.c.subject_id), observe=observe)
    mappings = select(t.PushMapping.id.label("subject_id")).where(t.PushMapping.app_id == app_id)
    sub = mappings.subquery()
    _upsert(session, _keys(literal(app_id), PUSH, sub.c.subject_id), observe=observe)


# --- Workers ---------------------------------------------------------------------------------


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        t.ReconcileKey.not_before <= now,
        or_(t.ReconcileKey.lease_until.is_(None), t.ReconcileKey.lease_until < now),
    )


def claim(
    session: Session,
    worker_id: str,
    *,
    limit: int,
    lease_seconds: float,
    app_ids: list[str] | None = None,
    exclude_app_ids: list[str] | None = None,
) -> list[ClaimedKey]:
    """Lease up to ``limit`` due keys to ``worker_id`` and return them.

    User keys come before push keys of the same age, so accounts exist before memberships are
    pushed. On PostgreSQL, rows locked by another claimer are skipped, never waited for.
    """
    now = clock.utcnow()
    query = (
        select(
            t.ReconcileKey.app_id,
            t.ReconcileKey.kind,
            t.ReconcileKey.subject_id,
            t.ReconcileKey.generation,
            t.ReconcileKey.attempts,
            t.ReconcileKey.observe,
        )
        .where(_due(now))
        .order_by(t.ReconcileKey.not_before, t.ReconcileKey.kind.desc())
        .limit(limit)
    )
    if app_ids is not None:
        query = query.where(t.ReconcileKey.app_id.in_(app_ids))
    if exclude_app_ids:
        query = query.where(t.ReconcileKey.app_id.not_in(exclude_app_ids))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return []
    # One UPDATE for the batch. The rows are ours until commit (locked FOR UPDATE on
    # PostgreSQL; SQLite has one writer), so the generation read above is the current one.
    key = t.ReconcileKey
    session.execute(
        update(key)
        .where(
            tuple_(key.app_id, key.kind, key.subject_id).in_(
                [(row.app_id, row.kind, row.subject_id) for row in rows]
            )
        )
        .values(
            claimed_by=worker_id,
            claimed_generation=key.generation,
            lease_until=now + timedelta(seconds=lease_seconds),
            observe=false(),
        )
        .execution_options(synchronize_session=False)
    )
    return [
        ClaimedKey(row.app_id, row.kind, row.subject_id, row.generation, row.attempts, row.observe)
        for row in rows
    ]


def finish(session: Session, key: ClaimedKey) -> None:
    """The key is reconciled: drop it, unless it was enqueued again while we worked."""
    session.execute(
        delete(t.ReconcileKey).where(
            t.ReconcileKey.app_id == key.app_id,
            t.ReconcileKey.kind == key.kind,
            t.ReconcileKey.subject_id == key.subject_id,
            t.ReconcileKey.generation == key.generation,
        )
    )
    session.execute(
        update(t.ReconcileKey)
        .where(
            t.ReconcileKey.app_id == key.app_id,
            t.ReconcileKey.kind == key.kind,
            t.ReconcileKey.subject_id == key.subject_id,
        )
        .values(claimed_by=None, claimed_generation=None, lease_until=None)
    )


def retry_later(
    session: Session, key: ClaimedKey, delay: float, *, count_attempt: bool = True
) -> None:
    """Release the key, due again after ``delay`` seconds (backoff, rate limits, quarantine)."""
    due = clock.utcnow() + timedelta(seconds=delay)
    values: dict[str, Any] = {
        "claimed_by": None,
        "claimed_generation": None,
        "lease_until": None,
        "not_before": due,
    }
    if count_attempt:
        values["attempts"] = t.ReconcileKey.attempts + 1
    session.execute(
        update(t.ReconcileKey)
        .where(
            t.ReconcileKey.app_id == key.app_id,
            t.ReconcileKey.kind == key.kind,
            t.ReconcileKey.subject_id == key.subject_id,
        )
        .values(**values)
    )


def pending_count(session: Session, app_id: str | None = None) -> int:
    query = select(func.count()).select_from(t.ReconcileKey)
    if app_id is not None:
        query = query.where(t.ReconcileKey.app_id == app_id)
    return int(session.execute(query).scalar_one())


def next_due(session: Session) -> datetime | None:
    """When the earliest key becomes due (for the worker's sleep)."""
    value = session.execute(select(func.min(t.ReconcileKey.not_before))).scalar_one_or_none()
    return clock.as_utc(value) if value is not None else None


def notify(session: Session) -> None:
    """Wake idle workers when this transaction commits (PostgreSQL LISTEN/NOTIFY)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, "")))


def enqueue_membership_change(session: Session, group_id: str, user_ids: list[str]) -> None:
    """A membership of ``group_id`` changed for ``user_ids``: their account in every app the group
    assigns, and every push mapping sourced by the group, may be out of date."""
    if not user_ids:
        return
    apps = (
        select(
            t.AppGroupAssignment.app_id.label("app_id"),
            literal(USER).label("kind"),
            t.User.id.label("subject_id"),
        )
        .join(t.User, t.User.id.in_(user_ids))
        .where(t.AppGroupAssignment.group_id == group_id)
    )
    _upsert(session, apps, observe=False)
    enqueue_push_for_group(session, group_id)
