"""Leases on reconcile keys: claim a batch, extend it while working, finish or retry later.

Claiming leases rows to one worker (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has a single
writer). Finishing deletes the row only if nobody re-enqueued it meanwhile (same generation);
otherwise the lease is dropped and the key is claimed again. A worker that dies simply stops
extending its leases, and whoever is alive claims its keys when they run out.

Live workers also sign in here (a heartbeat row), so per-app limits can be shared among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.engine import SHRUNK_ROWS
from headwater.db.rowsets import any_of, rows_in
from headwater.domain.states import KeyKind

__all__ = [
    "ClaimedKey",
    "beat",
    "claim",
    "extend",
    "finish",
    "finish_many",
    "forget_workers",
    "next_due",
    "retry_later",
    "sign_off",
    "workers",
]


@dataclass(frozen=True)
class ClaimedKey:
    """A key leased to this worker, as it stood when claimed."""

    app_id: str
    kind: KeyKind
    subject_id: str
    generation: int
    attempts: int
    observe: bool
    #: When the key was last enqueued (a read of the downstream made since then answers an
    #: observing key); None for keys made up outside the outbox (previews).
    enqueued_at: datetime | None = None


def _due(now: datetime) -> ColumnElement[bool]:
    """Due now, and not held by a live worker: a lease ends when it runs out, or at once when
    the worker holding it no longer beats (its heartbeat row is stale or gone)."""
    holder_alive = exists().where(
        t.WorkerHeartbeat.id == t.ReconcileKey.claimed_by,
        t.WorkerHeartbeat.last_seen >= now - timedelta(seconds=LIVE_SECONDS),
    )
    return and_(
        t.ReconcileKey.not_before <= now,
        or_(
            t.ReconcileKey.lease_until.is_(None),
            t.ReconcileKey.lease_until < now,
            ~holder_alive,
        ),
    )


def claim(
    session: Session,
    worker_id: str,
    *,
    limit: int,
    lease_seconds: float,
    app_ids: list[str] | None = None,
    exclude_app_ids: list[str] | None = None,
    share: int = 1,
) -> list[ClaimedKey]:
    """Lease up to ``limit`` due keys to ``worker_id`` and return them.

    User keys come before push keys of the same age, so accounts exist before memberships are
    pushed. On PostgreSQL, rows locked by another claimer are skipped, never waited for. With
    ``share`` live workers, a worker takes at most its share of what is due, so a small burst
    is spread over every worker instead of landing on whichever woke first.
    """
    now = clock.utcnow()
    if share > 1:
        due = select(t.ReconcileKey.app_id).where(_due(now)).limit(limit * share).subquery()
        waiting = int(session.execute(select(func.count()).select_from(due)).scalar_one())
        limit = min(limit, max(1, -(-waiting // share)))
    query = (
        select(
            t.ReconcileKey.app_id,
            t.ReconcileKey.kind,
            t.ReconcileKey.subject_id,
            t.ReconcileKey.generation,
            t.ReconcileKey.attempts,
            t.ReconcileKey.observe,
            t.ReconcileKey.enqueued_at,
        )
        .where(_due(now))
        .order_by(t.ReconcileKey.not_before, t.ReconcileKey.kind.desc())
        .limit(limit)
    )
    if app_ids is not None:
        query = query.where(any_of(t.ReconcileKey.app_id, app_ids))
    if exclude_app_ids:
        query = query.where(~any_of(t.ReconcileKey.app_id, exclude_app_ids))
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
            rows_in(
                (key.app_id, key.kind, key.subject_id),
                [(row.app_id, row.kind, row.subject_id) for row in rows],
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
        ClaimedKey(
            row.app_id,
            KeyKind(row.kind),
            row.subject_id,
            row.generation,
            row.attempts,
            row.observe,
            clock.as_utc(row.enqueued_at),
        )
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


def finish_many(session: Session, keys: Sequence[ClaimedKey]) -> None:
    """``finish`` for a batch: one DELETE and one UPDATE per 500 keys."""
    key = t.ReconcileKey
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        deleted = session.execute(
            delete(key)
            .where(
                rows_in(
                    (key.app_id, key.kind, key.generation, key.subject_id),
                    [(k.app_id, k.kind.value, k.generation, k.subject_id) for k in chunk],
                )
            )
            .execution_options(synchronize_session=False)
        )
        # Counted towards vacuuming the queue after commit (PostgreSQL; decision 51).
        gone = max(0, getattr(deleted, "rowcount", 0) or 0)
        session.info[SHRUNK_ROWS] = session.info.get(SHRUNK_ROWS, 0) + gone
        # Keys enqueued again while we worked stay, unleased, for the next claim.
        session.execute(
            update(key)
            .where(
                rows_in(
                    (key.app_id, key.kind, key.subject_id),
                    [(k.app_id, k.kind.value, k.subject_id) for k in chunk],
                )
            )
            .values(claimed_by=None, claimed_generation=None, lease_until=None)
            .execution_options(synchronize_session=False)
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


def next_due(
    session: Session, exclude_app_ids: Sequence[str] = (), worker_id: str | None = None
) -> datetime | None:
    """When the earliest key becomes due (for the worker's sleep), leaving out apps the worker
    is busy with and, given ``worker_id``, the keys that worker holds a running lease on (its
    own batches in flight are not due: counting them would wake it at once, again and again,
    while an app has fewer batches in flight than it may)."""
    key = t.ReconcileKey
    query = select(func.min(key.not_before))
    if exclude_app_ids:
        query = query.where(~any_of(key.app_id, exclude_app_ids))
    if worker_id is not None:
        now = clock.utcnow()
        query = query.where(
            or_(key.claimed_by.is_(None), key.claimed_by != worker_id, key.lease_until < now)
        )
    value = session.execute(query).scalar_one_or_none()
    return clock.as_utc(value) if value is not None else None


def extend(
    session: Session, worker_id: str, keys: Sequence[ClaimedKey], lease_seconds: float
) -> None:
    """Keep the leases of a batch that is still being worked on."""
    until = clock.utcnow() + timedelta(seconds=lease_seconds)
    key = t.ReconcileKey
    session.execute(
        update(key)
        .where(
            rows_in(
                (key.app_id, key.kind, key.subject_id),
                [(k.app_id, k.kind.value, k.subject_id) for k in keys],
            ),
            key.claimed_by == worker_id,
        )
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )


#: A worker that has not beaten for this long no longer counts as live.
LIVE_SECONDS = 30
#: Heartbeat rows older than this are deleted.
FORGET_SECONDS = 600


def beat(session: Session, worker_id: str) -> int:
    """Record that ``worker_id`` is alive; returns how many workers are."""
    now = clock.utcnow()
    row = session.get(t.WorkerHeartbeat, worker_id)
    if row is None:
        session.add(t.WorkerHeartbeat(id=worker_id, started=now, last_seen=now))
    else:
        row.last_seen = now
    session.execute(
        delete(t.WorkerHeartbeat).where(
            t.WorkerHeartbeat.last_seen < now - timedelta(seconds=FORGET_SECONDS)
        )
    )
    live = session.execute(
        select(func.count()).where(
            t.WorkerHeartbeat.last_seen >= now - timedelta(seconds=LIVE_SECONDS)
        )
    ).scalar_one()
    return max(1, int(live))


def sign_off(session: Session, worker_id: str) -> None:
    """A worker stops: its row goes, and any lease it still holds ends now."""
    forget_workers(session, [worker_id])


def workers(session: Session) -> list[tuple[str, datetime]]:
    """Every worker that signed in, with when it last beat."""
    rows = session.execute(select(t.WorkerHeartbeat.id, t.WorkerHeartbeat.last_seen))
    return [(row.id, clock.as_utc(row.last_seen)) for row in rows]


def forget_workers(session: Session, worker_ids: Sequence[str]) -> None:
    """Workers known to be dead: their rows go, so their leases end at once (see ``_due``)."""
    if worker_ids:
        session.execute(delete(t.WorkerHeartbeat).where(any_of(t.WorkerHeartbeat.id, worker_ids)))
