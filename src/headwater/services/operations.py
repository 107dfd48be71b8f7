"""Operator use-cases around the engine: tasks (retry, dismiss), orphans (list, remove) and the
full reconcile trigger.

Retrying a task deletes it and enqueues its key again, so the engine re-plans from the current
state instead of replaying a stale operation. Removing orphans is the one place that calls a
downstream from a request: it is an explicit admin action on members Headwater does not manage,
which the engine never removes on its own (unless the app's policy says so). No database
transaction is open during that call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select, tuple_, update
from sqlalchemy.orm import Session

from headwater.connectors.errors import DownstreamError
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.operations import RemoveMembers
from headwater.engine import snapshot
from headwater.engine.connectors import ConnectionInfo
from headwater.engine.executor import execute
from headwater.errors import InvalidRequest, NotFound
from headwater.services.grouppush import get_app, get_mapping, plausible_id

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = [
    "OrphanBatch",
    "decode_orphan_cursor",
    "dismiss_task",
    "encode_orphan_cursor",
    "orphans_query",
    "reconcile_app",
    "remove_orphans",
    "retry_all_tasks",
    "retry_task",
    "tasks_query",
]


def _app_target(app_id: str) -> Target:
    return Target(app_id, "AppInstance")


def _log(session: Session, actor: Actor, event_type: str, message: str, app_id: str) -> None:
    events.record(session, event_type, message, actor=actor, targets=[_app_target(app_id)])


# --- Full reconcile ----------------------------------------------------------------------------


def reconcile_app(session: Session, actor: Actor, app_id: str) -> int:
    """Enqueue every key of the app, reading the downstream back; returns the keys queued."""
    get_app(session, app_id)
    outbox.enqueue_app(session, app_id, observe=True)
    _log(session, actor, "app.headwater.reconcile.requested", "Full reconcile requested", app_id)
    return outbox.pending_count(session, app_id)


# --- Tasks -------------------------------------------------------------------------------------


def tasks_query(session: Session, app_id: str) -> Select[t.Task]:
    get_app(session, app_id)
    return select(t.Task).where(t.Task.app_id == app_id)


def _task(session: Session, app_id: str, task_id: str) -> t.Task:
    task = session.get(t.Task, task_id) if plausible_id(task_id) else None
    if task is None or task.app_id != app_id:
        raise NotFound(f"Not found: Resource not found: {task_id} (Task)")
    return task


def _retry(session: Session, tasks: list[t.Task]) -> int:
    """Drop the tasks and enqueue their keys; a push is retried as a full push, as Okta's
    "Retry All Groups" pushes each failing group again."""
    if not tasks:
        return 0
    pushes = [task.subject_id for task in tasks if task.kind == outbox.PUSH]
    if pushes:
        session.execute(
            update(t.PushMapping)
            .where(t.PushMapping.id.in_(pushes))
            .values(full_push=True)
            .execution_options(synchronize_session=False)
        )
    outbox.enqueue_keys(session, [(task.app_id, task.kind, task.subject_id) for task in tasks])
    session.execute(delete(t.Task).where(t.Task.id.in_([task.id for task in tasks])))
    return len(tasks)


def retry_task(session: Session, actor: Actor, app_id: str, task_id: str) -> int:
    task = _task(session, app_id, task_id)
    _log(session, actor, "app.headwater.task.retry", f"Task {task.operation} retried", app_id)
    return _retry(session, [task])


def retry_all_tasks(session: Session, actor: Actor, app_id: str) -> int:
    tasks = list(session.execute(tasks_query(session, app_id)).scalars())
    if tasks:
        _log(session, actor, "app.headwater.task.retry", f"{len(tasks)} task(s) retried", app_id)
    return _retry(session, tasks)


def dismiss_task(session: Session, actor: Actor, app_id: str, task_id: str) -> None:
    """Forget the failure; nothing is retried (the key was finished when the task opened)."""
    task = _task(session, app_id, task_id)
    _log(session, actor, "app.headwater.task.dismiss", f"Task {task.operation} dismissed", app_id)
    session.delete(task)


# --- Orphans -----------------------------------------------------------------------------------


def encode_orphan_cursor(orphan: t.Orphan) -> str:
    raw = json.dumps([orphan.mapping_id, orphan.external_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_orphan_cursor(cursor: str) -> tuple[str, str]:
    """An opaque cursor back to (mapping id, external id); anything malformed is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("Api validation failed: after", ["after: not a valid cursor"]) from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidRequest("Api validation failed: after", ["after: not a valid cursor"])
    return value[0], value[1]


def _after(cursor: tuple[str, str]) -> ColumnElement[bool]:
    mapping_id, external_id = cursor
    return or_(
        t.Orphan.mapping_id > mapping_id,
        and_(t.Orphan.mapping_id == mapping_id, t.Orphan.external_id > external_id),
    )


def orphans_query(
    session: Session, app_id: str, mapping_id: str | None, after: str | None
) -> Select[t.Orphan]:
    """Recorded orphans of the app (or one mapping), in cursor order."""
    get_app(session, app_id)
    query = select(t.Orphan).where(t.Orphan.app_id == app_id)
    if mapping_id is not None:
        query = query.where(t.Orphan.mapping_id == mapping_id)
    if after:
        query = query.where(_after(decode_orphan_cursor(after)))
    return query.order_by(t.Orphan.mapping_id, t.Orphan.external_id)


@dataclass(frozen=True)
class OrphanBatch:
    """Orphans of one pushed group, to remove with one membership change."""

    mapping_id: str
    group_external_id: str
    external_ids: tuple[str, ...]


def _orphan_batches(
    session: Session, app_id: str, mapping_id: str | None, external_ids: list[str] | None
) -> list[OrphanBatch]:
    """Recorded orphans still unknown (an account linked since then is never removed)."""
    if mapping_id is not None:
        get_mapping(session, app_id, mapping_id)
    linked = select(t.AppUserLink.external_id).where(
        t.AppUserLink.app_id == app_id, t.AppUserLink.external_id.is_not(None)
    )
    query = (
        select(t.Orphan.mapping_id, t.Group.external_id, t.Orphan.external_id.label("member"))
        .join(t.PushMapping, t.PushMapping.id == t.Orphan.mapping_id)
        .join(t.Group, t.Group.id == t.PushMapping.target_group_id)
        .where(
            t.Orphan.app_id == app_id,
            t.Group.external_id.is_not(None),
            t.Orphan.external_id.not_in(linked),
        )
        .order_by(t.Orphan.mapping_id, t.Orphan.external_id)
    )
    if mapping_id is not None:
        query = query.where(t.Orphan.mapping_id == mapping_id)
    if external_ids is not None:
        query = query.where(t.Orphan.external_id.in_(external_ids))
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in session.execute(query):
        grouped[(row.mapping_id, row.external_id)].append(row.member)
    return [OrphanBatch(m, g, tuple(members)) for (m, g), members in grouped.items()]


def _prepare_removal(
    runtime: Runtime, app_id: str, mapping_id: str | None, external_ids: list[str] | None
) -> tuple[snapshot.AppSnapshot, list[OrphanBatch]]:
    with runtime.database.read() as session:
        app = snapshot.load_app(session, app_id)
        if app is None:
            raise NotFound(f"Not found: Resource not found: {app_id} (AppInstance)")
        if not app.connection_enabled or not app.base_url:
            cause = "the app has no enabled provisioning connection"
            raise InvalidRequest("Api validation failed: " + cause, [cause])
        return app, _orphan_batches(session, app_id, mapping_id, external_ids)


def _forget_orphans(runtime: Runtime, actor: Actor, app_id: str, done: list[OrphanBatch]) -> None:
    if not done:
        return
    keys = [(b.mapping_id, e) for b in done for e in b.external_ids]
    with runtime.database.transaction() as session:
        session.execute(
            delete(t.Orphan).where(tuple_(t.Orphan.mapping_id, t.Orphan.external_id).in_(keys))
        )
        message = f"{len(keys)} unknown member(s) removed from pushed groups"
        events.record(
            session,
            "app.headwater.grouppush.orphans.removed",
            message,
            actor=actor,
            targets=[_app_target(app_id)],
            debug={"removed": len(keys)},
        )


async def _send_removals(
    runtime: Runtime, app: snapshot.AppSnapshot, batches: list[OrphanBatch]
) -> tuple[list[OrphanBatch], list[dict[str, Any]]]:
    info = ConnectionInfo(
        app.id, app.base_url or "", app.auth_scheme or "NONE", app.secret_encrypted
    )
    connector = runtime.connectors.build(info, app.settings)
    done: list[OrphanBatch] = []
    errors: list[dict[str, Any]] = []
    try:
        for batch in batches:
            members = tuple((None, external_id) for external_id in batch.external_ids)
            operation = RemoveMembers(batch.mapping_id, batch.group_external_id, members)
            try:
                await execute(operation, connector, app.settings)
            except DownstreamError as exc:
                errors.append({"mappingId": batch.mapping_id, "errorSummary": exc.message})
                continue
            done.append(batch)
    finally:
        await connector.aclose()
    return done, errors


async def remove_orphans(
    runtime: Runtime,
    actor: Actor,
    app_id: str,
    *,
    mapping_id: str | None = None,
    external_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Remove recorded orphans downstream (all of the app's, one mapping's, or the listed
    ones), then forget them; failures are reported per mapping and the orphans are kept."""
    app, batches = await asyncio.to_thread(
        _prepare_removal, runtime, app_id, mapping_id, external_ids
    )
    done, errors = await _send_removals(runtime, app, batches)
    await asyncio.to_thread(_forget_orphans, runtime, actor, app_id, done)
    return {"removed": sum(len(b.external_ids) for b in done), "errors": errors}
