"""Failures: how a connector error bears on a key, and what a failed key leaves behind (the
link or mapping marked, a Task for an admin, in-flight adds settled, a lost id forgotten).

Every function runs inside the recorder's transaction; nothing here talks to a downstream.
Messages are scrubbed once more before they are stored (the connector scrubbed them already):
no credential-shaped text reaches a Task, an app user or a mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.connectors.errors import (
    AppUnavailableError,
    DownstreamError,
    NotFoundError,
    TransientError,
)
from headwater.connectors.scrub import scrub_text
from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.leases import ClaimedKey
from headwater.db.rowsets import any_of, rows_in
from headwater.domain import operations as ops
from headwater.domain.fate import ErrorClass
from headwater.domain.mapping import MappingError
from headwater.domain.states import KeyKind, LinkState, MappingStatus, SyncState
from headwater.engine import trail
from headwater.engine.links import Links
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import Outcome

__all__ = [
    "classify",
    "clear_tasks",
    "forget_lost",
    "mark_error",
    "open_task",
    "record_refused_members",
    "record_stale",
    "settle_pending",
]

#: Operations that address an existing account or group by its downstream id: a 404 means the
#: downstream lost it.
_ADDRESSED_BY_ID = (
    ops.UpdateAccount,
    ops.SetActive,
    ops.DeleteAccount,
    ops.RenameGroup,
    ops.AddMembers,
    ops.ReplaceMembers,
    ops.DeleteGroup,
)
MAX_MESSAGE = 2000
#: Seconds before a mapping retries removing a member left stale by an offboarding.
STALE_RETRY = 5.0


def _safe(message: str) -> str:
    return scrub_text(message, limit=MAX_MESSAGE)


def classify(error: Exception, failed: ops.Operation | None) -> ErrorClass:
    """The error class of what stopped a key (see ``domain.fate``)."""
    if isinstance(error, AppUnavailableError):
        return ErrorClass.UNAVAILABLE
    if isinstance(error, TransientError):
        return ErrorClass.TRANSIENT
    if isinstance(error, NotFoundError) and isinstance(failed, _ADDRESSED_BY_ID):
        return ErrorClass.LOST
    return ErrorClass.PERMANENT


def retry_after(error: Exception | None) -> float | None:
    return error.retry_after if isinstance(error, TransientError) else None


def forget_lost(session: Session, links: Links, failed: ops.Operation | None) -> None:
    """The downstream lost an account or group we addressed by id: forget the id, so the next
    plan recreates what is still wanted (or finds nothing to do)."""
    match failed:
        case ops.UpdateAccount() | ops.SetActive() | ops.DeleteAccount():
            gone = isinstance(failed, ops.DeleteAccount) or (
                isinstance(failed, ops.SetActive) and not failed.active
            )
            links.upsert(
                failed.user_id,
                external_id=None,
                state=LinkState.DELETED if gone else LinkState.NONE,
                last_pushed=None,
            )
        case ops.RenameGroup() | ops.AddMembers() | ops.ReplaceMembers() | ops.DeleteGroup():
            mapping = session.get(t.PushMapping, failed.mapping_id)
            if mapping is not None and mapping.target_group_id:
                group = session.get(t.Group, mapping.target_group_id)
                if group is not None:
                    group.external_id = None
                mapping.full_push = True
                session.execute(
                    delete(t.PushMember).where(t.PushMember.mapping_id == failed.mapping_id)
                )


def mark_error(
    session: Session, links: Links, key: ClaimedKey, message: str, *, final: bool
) -> None:
    """Show the failure on the app user (OUT_OF_SYNC while retrying, ERROR when final) or on
    the push mapping (ERROR when final)."""
    message = _safe(message)
    if key.kind is KeyKind.USER:
        links.upsert(
            key.subject_id,
            sync_state=SyncState.ERROR if final else SyncState.OUT_OF_SYNC,
            last_error=message,
        )
        return
    mapping = session.get(t.PushMapping, key.subject_id)
    if mapping is not None and mapping.status != MappingStatus.INACTIVE:
        if final:
            mapping.status = MappingStatus.ERROR
        mapping.error_summary = message
        mapping.last_updated = clock.utcnow()


def open_task(session: Session, app: AppSnapshot, outcome: Outcome, message: str) -> None:
    """A Task for the key's final failure (one open Task per key)."""
    error = outcome.error
    status = error.status if isinstance(error, DownstreamError) else None
    if outcome.failed is not None:
        operation = type(outcome.failed).__name__
    else:
        operation = "MapAttributes" if isinstance(error, MappingError) else "Reconcile"
    key = outcome.key
    _upsert_task(session, app.id, key, operation, key.subject_id, status, message)


def _upsert_task(
    session: Session,
    app_id: str,
    key: ClaimedKey,
    operation: str,
    target: str,
    status: int | None,
    message: str,
) -> None:
    """One open Task per key: a new failure updates it rather than piling up duplicates."""
    message = _safe(message)
    now = clock.utcnow()
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
                message=message,
                attempts=key.attempts + 1,
                first_attempt=now,
                last_attempt=now,
            )
        )
        return
    task.operation, task.http_status, task.message = operation, status, message
    task.attempts += 1
    task.last_attempt = now


def clear_tasks(session: Session, app_id: str, keys: Sequence[ClaimedKey]) -> None:
    """The keys went through: their open Tasks are settled (one statement per 500 keys)."""
    pairs = sorted({(key.kind.value, key.subject_id) for key in keys})
    for start in range(0, len(pairs), 500):
        session.execute(
            delete(t.Task)
            .where(
                t.Task.app_id == app_id,
                rows_in((t.Task.kind, t.Task.subject_id), pairs[start : start + 500]),
            )
            .execution_options(synchronize_session=False)
        )


def settle_pending(session: Session, mapping_id: str) -> None:
    """Adds whose outcome is unknown after a final failure count as sent: a deprovision then
    removes them first (removing a non-member is harmless) instead of waiting for an answer
    that will never come. The retry of the Task pushes the whole membership again."""
    session.execute(
        update(t.PushMember)
        .where(t.PushMember.mapping_id == mapping_id, t.PushMember.pending.is_(True))
        .values(pending=False)
    )


def record_refused_members(
    session: Session,
    app: AppSnapshot,
    mapping_id: str,
    refused: tuple[tuple[str, str, str], ...],
    now: datetime,
) -> None:
    """Members the downstream refused one by one: forget their pending rows, raise a Task,
    flag the mapping; the rest of the batch went through."""
    session.execute(
        delete(t.PushMember).where(
            t.PushMember.mapping_id == mapping_id,
            any_of(t.PushMember.user_id, [user_id for user_id, _, _ in refused]),
        )
    )
    summary = "; ".join(f"{external_id}: {message}" for _, external_id, message in refused)
    message = _safe(f"{len(refused)} member(s) refused by {app.label}: {summary}")
    mapping = session.get(t.PushMapping, mapping_id)
    if mapping is not None:
        mapping.status, mapping.error_summary, mapping.last_updated = (
            MappingStatus.ERROR,
            message,
            now,
        )
    key = ClaimedKey(app.id, KeyKind.PUSH, mapping_id, 0, 0, False)
    _upsert_task(session, app.id, key, "AddMembers", mapping_id, 400, message)
    trail.push_event(
        session,
        app,
        mapping_id,
        "application.provision.group_membership.add",
        message,
        outcome="FAILURE",
        reason=message,
    )


def record_stale(
    session: Session, app: AppSnapshot, outcome: Outcome, labels: trail.UserLabels
) -> None:
    """Memberships a leaving account could not be removed from (offboarding went ahead):
    marked stale on the pushed group, a Task on its mapping, and the mapping's key queued to
    retry the removal on its own schedule."""
    now = clock.utcnow()
    user_id = outcome.key.subject_id
    for operation, error in outcome.stale:
        message = _safe(str(error) or type(error).__name__)
        session.execute(
            update(t.PushMember)
            .where(
                t.PushMember.mapping_id == operation.mapping_id,
                t.PushMember.user_id == user_id,
            )
            .values(
                stale_since=func.coalesce(t.PushMember.stale_since, now),
                stale_error=message,
            )
        )
        login = labels.get(user_id, (user_id, user_id))[0]
        text = (
            f"{login} could not be removed from pushed group {operation.group_external_id} "
            f"before the account was deactivated (deactivated anyway; the removal is retried): "
            f"{message}"
        )
        key = ClaimedKey(app.id, KeyKind.PUSH, operation.mapping_id, 0, 0, False)
        status = error.status if isinstance(error, DownstreamError) else None
        _upsert_task(
            session, app.id, key, "RemoveMembers", operation.mapping_id, status, text[:MAX_MESSAGE]
        )
        trail.account_event(
            session,
            app,
            user_id,
            labels,
            "application.provision.group_membership.remove",
            text,
            outcome="FAILURE",
            reason=message[:1000],
        )
        outbox.enqueue_keys(
            session, [(app.id, KeyKind.PUSH, operation.mapping_id)], delay=STALE_RETRY
        )
