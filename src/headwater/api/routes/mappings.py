"""Okta's Profile Mappings API (directory user → app user) and the app user schema.

Each app has one mapping from the directory profile; its id is the app's id, so the app's
permissions (an APP_ADMIN of the app may change it) apply as they are. Only PUSH and DONT_PUSH
exist in Okta; Headwater also takes CREATE (sent when the account is created, never updated).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from headwater.api.deps import (
    ActorDep,
    AuthenticatedRoute,
    BodyDep,
    Caller,
    DbDep,
    allow,
    base_url,
    requires,
)
from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.api.representations import DEFAULT_USER_TYPE_ID
from headwater.db import tables as t
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.domain.profile_mapping import AppMapping, AppSchema, targets
from headwater.engine import preview
from headwater.errors import InvalidRequest
from headwater.services import mappings

__all__ = ["router"]

router = APIRouter(tags=["Profile Mappings"], route_class=AuthenticatedRoute)
ONE = "/mappings/{app_id}"
SCHEMA = "/meta/schemas/apps/{app_id}/default"
#: (default, maximum) page size of the mapping list, as Okta's.
PAGE_SIZES = (20, 200)


def _summary(app: t.App, base: str) -> dict[str, Any]:
    return {
        "id": app.id,
        "source": {
            "id": DEFAULT_USER_TYPE_ID,
            "name": "user",
            "type": "user",
            "_links": {"self": {"href": f"{base}/api/v1/meta/types/user/{DEFAULT_USER_TYPE_ID}"}},
        },
        "target": {
            "id": app.id,
            "name": app.name,
            "type": "appuser",
            "_links": {"self": {"href": f"{base}/api/v1/apps/{app.id}"}},
        },
        "_links": {"self": {"href": f"{base}/api/v1/mappings/{app.id}"}},
    }


def _properties(mapping: AppMapping) -> dict[str, Any]:
    return {
        name: {"expression": text, "pushStatus": status.value}
        for name, (text, status) in sorted(mapping.effective().items())
    }


def _mapping_json(
    app: t.App, mapping: AppMapping, base: str, pending: AppMapping | None = None
) -> dict[str, Any]:
    body = _summary(app, base)
    body["properties"] = _properties(mapping)
    if pending is not None:
        body["_embedded"] = {"held": {"properties": _properties(pending)}}
    return body


@router.get("/mappings")
def list_mappings(
    request: Request,
    response: Response,
    db: DbDep,
    caller: Caller = Depends(requires(P.APPS_READ)),
    sourceId: str | None = Query(default=None, max_length=64),
    targetId: str | None = Query(default=None, max_length=64),
    after: str | None = Query(default=None, max_length=64),
    limit: int | None = Query(default=None, ge=-(2**31), le=2**31),
) -> list[dict[str, Any]]:
    """Mappings from the directory user to each app the caller may read."""
    size = clamp_limit(limit, *PAGE_SIZES)
    if sourceId not in (None, DEFAULT_USER_TYPE_ID):
        return []  # app → directory mappings (imports) do not exist here
    query = select(t.App).order_by(t.App.id).limit(size + 1)
    if after:
        query = query.where(t.App.id > after)
    if targetId:
        query = query.where(t.App.id == targetId)
    visible = caller.visible(Kind.APP)
    if visible is not None:
        query = query.where(t.App.id.in_(visible))
    base = base_url(request)
    with db.read() as session:
        apps = list(session.execute(query).scalars())
        more = len(apps) > size
        listed = [_summary(app, base) for app in apps[:size]]
    set_link_headers(request, response, listed[-1]["id"] if more else None, size)
    return listed


@router.get(ONE, dependencies=[allow(P.APPS_READ, "app_id")])
def get_mapping(request: Request, db: DbDep, app_id: str) -> dict[str, Any]:
    """Every mapped attribute: expression and push status (built-in ones included)."""
    with db.read() as session:
        app, mapping, pending = mappings.load(session, app_id)
        return _mapping_json(app, mapping, base_url(request), pending)


@router.post(ONE, dependencies=[allow(P.APPS_WRITE, "app_id")], response_model=None)
def update_mapping(
    request: Request, db: DbDep, app_id: str, body: BodyDep, actor: ActorDep
) -> dict[str, Any] | JSONResponse:
    """Change properties: ``{"properties": {"title": {"expression": "...", "pushStatus":
    "PUSH"}}}`` (``null`` resets one to the built-in mapping). 202 with the change under
    ``_embedded.held`` when the mass-change guard holds it."""
    if not isinstance(body, dict) or "properties" not in body:
        raise InvalidRequest("Api validation failed: properties", ["properties: is required"])
    with db.transaction() as session:
        saved = mappings.update(session, app_id, body["properties"], actor, preview.mapping_impact)
        app = mappings.load(session, app_id)[0]
        result = _mapping_json(app, saved.mapping, base_url(request), saved.pending)
    if saved.held:
        return JSONResponse(result, status_code=202)
    return result


def _decide(request: Request, db: DbDep, app_id: str, approve: bool, actor: Any) -> Any:
    with db.transaction() as session:
        saved = mappings.decide(session, app_id, approve, actor, preview.mapping_impact)
        app = mappings.load(session, app_id)[0]
        return _mapping_json(app, saved.mapping, base_url(request))


@router.post(ONE + "/lifecycle/approve", dependencies=[allow(P.APPS_WRITE, "app_id")])
def approve_mapping(request: Request, db: DbDep, app_id: str, actor: ActorDep) -> Any:
    """Headwater extension: apply a mapping change held by the mass-change guard."""
    return _decide(request, db, app_id, True, actor)


@router.post(ONE + "/lifecycle/reject", dependencies=[allow(P.APPS_WRITE, "app_id")])
def reject_mapping(request: Request, db: DbDep, app_id: str, actor: ActorDep) -> Any:
    """Headwater extension: drop a mapping change held by the mass-change guard."""
    return _decide(request, db, app_id, False, actor)


def _schema_json(app: t.App, schema: AppSchema, base: str) -> dict[str, Any]:
    core = {
        name: {"title": target.title, "type": "string", "scope": "NONE"}
        for name, target in targets(AppSchema()).items()
    }
    custom = {
        a.name: {
            "title": a.title,
            "type": a.type,
            "scope": "NONE",
            "externalName": a.name,
            "externalNamespace": a.namespace,
            **({"items": {"type": "string"}} if a.type == "array" else {}),
        }
        for a in schema.custom
    }
    return {
        "id": f"{base}/api/v1/meta/schemas/apps/{app.id}/default",
        "$schema": "http://json-schema.org/draft-04/schema#",
        "name": app.name,
        "title": f"{app.label} User",
        "type": "object",
        "definitions": {
            "base": {"id": "#base", "type": "object", "properties": core, "required": ["userName"]},
            "custom": {"id": "#custom", "type": "object", "properties": custom, "required": []},
        },
        "properties": {
            "profile": {"allOf": [{"$ref": "#/definitions/custom"}, {"$ref": "#/definitions/base"}]}
        },
    }


@router.get(SCHEMA, dependencies=[allow(P.APPS_READ, "app_id")])
def get_app_schema(request: Request, db: DbDep, app_id: str) -> dict[str, Any]:
    """The app user schema: SCIM core and enterprise attributes, then custom ones."""
    with db.read() as session:
        app, mapping, _ = mappings.load(session, app_id)
        return _schema_json(app, mapping.schema, base_url(request))


@router.post(SCHEMA, dependencies=[allow(P.APPS_WRITE, "app_id")])
def update_app_schema(
    request: Request, db: DbDep, app_id: str, body: BodyDep, actor: ActorDep
) -> dict[str, Any]:
    """Add, change or (with ``null``) remove custom attributes."""
    with db.transaction() as session:
        schema = mappings.update_schema(session, app_id, body, actor)
        app = mappings.load(session, app_id)[0]
        return _schema_json(app, schema, base_url(request))
