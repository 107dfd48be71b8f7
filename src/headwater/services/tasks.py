"""Operator use-cases around the engine: tasks (retry, dismiss), recorded orphans (list) and the
full reconcile trigger.

Retrying a task deletes it and enqueues its key again, so the engine re-plans from the current
state instead of replaying a stale operation. Removing orphans downstream is the engine's job
(``engine.orphans``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.db.rowsets import any_of
from headwater.domain.states import KeyKind
from headwater.errors import InvalidRequest, NotFound
from headwater.services.apps import get_app
from headwater.services.validation import plausible_id

if TYPE_CHECKING:
    pass

__all__ = [
    "decode_orphan_cursor",
    "dismiss_task",
    "encode_orphan_cursor",
    "orphans_query",
    "reconcile_app",
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
    pushes = [task.subject_id for task in tasks if task.kind == KeyKind.PUSH]
    if pushes:
        session.execute(
            update(t.PushMapping)
            .where(any_of(t.PushMapping.id, pushes))
            .values(full_push=True)
            .execution_options(synchronize_session=False)
        )
    outbox.enqueue_keys(session, [(task.app_id, task.kind, task.subject_id) for task in tasks])
    session.execute(delete(t.Task).where(any_of(t.Task.id, [task.id for task in tasks])))
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
