"""Housekeeping on a timer: periodic full reconciles (with a survey of unmanaged accounts), and
purging deleted users once nothing downstream refers to them any more. Any worker may run them;
PostgreSQL's ``SKIP LOCKED`` keeps two workers from starting the same app's full reconcile."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, exists, or_, select

from headwater import clock
from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.domain.lifecycle import DELETED
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import AppStatus, KeyKind, LinkState

__all__ = ["purge_deleted_users", "start_full_reconciles"]


def start_full_reconciles(database: Database) -> int:
    """Enqueue an observing reconcile of every app whose interval has passed."""
    now = clock.utcnow()
    started = 0
    with database.transaction() as session:
        query = select(t.App).where(
            t.App.status == AppStatus.ACTIVE,
            or_(t.App.last_full_reconcile.is_(None), t.App.last_full_reconcile < now),
        )
        if database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for app in session.execute(query).scalars():
            interval = ProvisioningSettings.from_json(app.provisioning).full_reconcile_interval
            if interval <= 0:
                continue
            last = app.last_full_reconcile
            if last is not None and clock.as_utc(last) + timedelta(seconds=interval) > now:
                continue
            if last is not None:
                outbox.enqueue_app(session, app.id, observe=True)
                # A survey of the app's accounts keeps its unmanaged accounts current (run
                # only when its connector can list them, see ``imports``).
                outbox.enqueue_keys(session, [(app.id, KeyKind.IMPORT, app.id)])
                started += 1
            app.last_full_reconcile = now
    return started


def purge_deleted_users(database: Database) -> int:
    """Remove deleted users once no account, pushed membership or key refers to them."""
    with database.transaction() as session:
        busy_link = exists().where(
            t.AppUserLink.user_id == t.User.id,
            t.AppUserLink.state.in_([LinkState.ACTIVE, LinkState.DEPROVISIONING]),
        )
        pushed = exists().where(t.PushMember.user_id == t.User.id)
        queued = exists().where(
            t.ReconcileKey.kind == KeyKind.USER, t.ReconcileKey.subject_id == t.User.id
        )
        result = session.execute(
            delete(t.User).where(t.User.status == DELETED, ~busy_link, ~pushed, ~queued)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
