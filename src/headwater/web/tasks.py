"""The Tasks tab: downstream operations that failed for good (retry or dismiss them) and
deprovisions held by the mass-change guard (approve or reject them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.states import HoldDecision
from headwater.services import apps, held_operations, tasks
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    allow,
    db_of,
    reading,
    render,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

SHOWN = 200


@router.get("/apps/{app_id}/tasks", dependencies=[allow(P.APPS_READ, "app_id")])
def tasks_page(request: Request, admin: AdminDep, app_id: str) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        query = tasks.tasks_query(session, app_id).order_by(t.Task.last_attempt.desc())
        rows = list(session.execute(query.limit(SHOWN)).scalars())
        held = [h for h in held_operations.held(session, app_id) if h.decision == HoldDecision.HELD]
        context = {"section": "apps", "tab": "tasks", "app": app, "tasks": rows, "held": held}
    return render(request, "apps/tasks.html", context)


def _back(app_id: str) -> Response:
    return see_other(f"{PREFIX}/apps/{app_id}/tasks")


@router.post("/apps/{app_id}/tasks/retry-all", dependencies=[allow(P.APPS_WRITE, "app_id")])
def retry_all(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    with db_of(request).transaction() as session:
        count = tasks.retry_all_tasks(session, admin.actor, app_id)
    session_of(request).flash("ok", f"{count} task(s) queued again.")
    return _back(app_id)


@router.post("/apps/{app_id}/tasks/{task_id}/retry", dependencies=[allow(P.APPS_WRITE, "app_id")])
def retry(request: Request, admin: AdminDep, form: FormDep, app_id: str, task_id: str) -> Response:
    with db_of(request).transaction() as session:
        tasks.retry_task(session, admin.actor, app_id, task_id)
    session_of(request).flash("ok", "Task queued again.")
    return _back(app_id)


@router.post("/apps/{app_id}/tasks/{task_id}/dismiss", dependencies=[allow(P.APPS_WRITE, "app_id")])
def dismiss(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, task_id: str
) -> Response:
    with db_of(request).transaction() as session:
        tasks.dismiss_task(session, admin.actor, app_id, task_id)
    session_of(request).flash("ok", "Task dismissed.")
    return _back(app_id)


@router.post("/apps/{app_id}/held", dependencies=[allow(P.APPS_WRITE, "app_id")])
def decide_held(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    approve = form.get("decision") == "approve"
    with db_of(request).transaction() as session:
        count = held_operations.decide(session, app_id, approve, admin.actor)
    verb = "approved" if approve else "rejected"
    session_of(request).flash("ok", f"{count} held deprovision(s) {verb}.")
    return _back(app_id)
