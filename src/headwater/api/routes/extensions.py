"""Headwater extensions to Okta's API: full reconcile, plan (dry run), explain, orphans, tasks.

None of these exist in Okta; all are tagged "Headwater extension" in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import (
    ActorDep,
    AuthenticatedRoute,
    BodyDep,
    DbDep,
    RuntimeDep,
    allow,
    base_url,
)
from headwater.api.listing import page_response
from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.states import KeyKind
from headwater.engine import orphans, preview
from headwater.services import tasks

__all__ = ["router"]

router = APIRouter(tags=["Headwater extension"], route_class=AuthenticatedRoute)
APP = "/apps/{app_id}"
#: (default, maximum) page sizes for tasks and orphans.
PAGE_SIZES = (100, 1000)


class OrphanRemovalBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    mapping_id: StrictStr | None = Field(default=None, alias="mappingId")
    external_ids: list[StrictStr] | None = Field(
        default=None, alias="externalIds", max_length=10000
    )


# --- Rendering --------------------------------------------------------------------------------


def _subject_href(task: t.Task, base: str) -> str:
    app_url = f"{base}/api/v1/apps/{task.app_id}"
    if task.kind == KeyKind.PUSH:
        return f"{app_url}/group-push/mappings/{task.subject_id}"
    return f"{app_url}/users/{task.subject_id}"


def task_json(task: t.Task, base: str) -> dict[str, Any]:
    return {
        "id": task.id,
        "operation": task.operation,
        "target": {"kind": task.kind, "id": task.subject_id, "href": _subject_href(task, base)},
        "httpStatus": task.http_status,
        "message": task.message,
        "attempts": task.attempts,
        "firstAttempt": clock.format_okta(task.first_attempt),
        "lastAttempt": clock.format_okta(task.last_attempt),
    }


def orphan_json(orphan: t.Orphan) -> dict[str, Any]:
    return {
        "mappingId": orphan.mapping_id,
        "externalId": orphan.external_id,
        "seen": clock.format_okta(orphan.seen),
    }


# --- Reconcile, plan, explain -----------------------------------------------------------------


@router.post(APP + "/reconcile", status_code=202, dependencies=[allow(P.APPS_WRITE, "app_id")])
def reconcile(db: DbDep, actor: ActorDep, app_id: str) -> JSONResponse:
    """Reconcile every user and pushed group of the app, reading the downstream back (drift)."""
    with db.transaction() as session:
        count = tasks.reconcile_app(session, actor, app_id)
    return JSONResponse({"enqueued": count}, status_code=202)


@router.get(APP + "/plan", dependencies=[allow(P.APPS_READ, "app_id")])
async def plan(runtime: RuntimeDep, app_id: str, observe: bool = False) -> dict[str, Any]:
    """The operations a reconcile would send now, in order; nothing is sent. ``observe=true``
    reads the downstream first (what a full reconcile would repair)."""
    return await preview.plan_app(runtime.database, runtime.connectors, app_id, observe=observe)


@router.get(APP + "/users/{user_id}/explain", dependencies=[allow(P.APPS_READ, "app_id")])
def explain(runtime: RuntimeDep, app_id: str, user_id: str) -> dict[str, Any]:
    """Why the user has (or lacks) an account in the app, and each pushed membership."""
    return preview.explain_user(runtime.database, app_id, user_id)


# --- Orphans ----------------------------------------------------------------------------------


@router.get(APP + "/orphans", dependencies=[allow(P.APPS_READ, "app_id")])
def list_orphans(
    request: Request,
    response: Response,
    db: DbDep,
    app_id: str,
    mapping_id: str | None = Query(default=None, alias="mappingId"),
    after: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Members of pushed groups, seen downstream, that belong to no account Headwater links."""
    size = clamp_limit(limit, *PAGE_SIZES)
    with db.read() as session:
        query = tasks.orphans_query(session, app_id, mapping_id, after)
        rows = list(session.execute(query.limit(size + 1)).scalars())
        following = tasks.encode_orphan_cursor(rows[size - 1]) if len(rows) > size else None
        body = [orphan_json(row) for row in rows[:size]]
    set_link_headers(request, response, following, size)
    return body


@router.post(
    APP + "/orphans/remove",
    openapi_extra=openapi_body(OrphanRemovalBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
async def remove_orphans(
    runtime: RuntimeDep, actor: ActorDep, body: BodyDep, app_id: str
) -> dict[str, Any]:
    """Remove recorded orphans from their downstream groups (all, one mapping's, or the listed
    external ids); returns how many were removed and any per-mapping errors."""
    parsed = parse(OrphanRemovalBody, body, required=False)
    return await orphans.remove_orphans(
        runtime.database,
        runtime.connectors,
        actor,
        app_id,
        mapping_id=parsed.mapping_id,
        external_ids=parsed.external_ids,
    )


# --- Tasks ------------------------------------------------------------------------------------


@router.get(APP + "/tasks", dependencies=[allow(P.APPS_READ, "app_id")])
def list_tasks(
    request: Request, db: DbDep, app_id: str, after: str | None = None, limit: int | None = None
) -> JSONResponse:
    """Downstream operations that failed for good and wait for an admin."""
    base = base_url(request)
    with db.read() as session:
        return page_response(
            request,
            session,
            tasks.tasks_query(session, app_id),
            t.Task.id,
            lambda row: task_json(row, base),
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.post(APP + "/tasks/retry", status_code=202, dependencies=[allow(P.APPS_WRITE, "app_id")])
def retry_all_tasks(db: DbDep, actor: ActorDep, app_id: str) -> JSONResponse:
    with db.transaction() as session:
        count = tasks.retry_all_tasks(session, actor, app_id)
    return JSONResponse({"enqueued": count}, status_code=202)


@router.post(
    APP + "/tasks/{task_id}/retry", status_code=202, dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def retry_task(db: DbDep, actor: ActorDep, app_id: str, task_id: str) -> JSONResponse:
    with db.transaction() as session:
        count = tasks.retry_task(session, actor, app_id, task_id)
    return JSONResponse({"enqueued": count}, status_code=202)


@router.delete(
    APP + "/tasks/{task_id}", status_code=204, dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def dismiss_task(db: DbDep, actor: ActorDep, app_id: str, task_id: str) -> Response:
    with db.transaction() as session:
        tasks.dismiss_task(session, actor, app_id, task_id)
    return Response(status_code=204)
