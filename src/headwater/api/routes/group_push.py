"""Okta's Group Push Mapping API, plus Headwater's "push now" and push rules (extensions).

Routes parse, call one use-case of ``services.grouppush`` or ``services.push_rules`` in one
transaction, and render Okta's JSON; the engine does the downstream work from the keys the
use-cases enqueue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.listing import page_response
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.errors import InvalidRequest
from headwater.services import grouppush, push_rules
from headwater.services.grouppush import MappingFilter, MappingSpec
from headwater.services.push_rules import RuleSpec

__all__ = ["mapping_json", "router"]

router = APIRouter(tags=["GroupPushMapping"], route_class=AuthenticatedRoute)
EXTENSION = "Headwater extension"
MAPPINGS = "/apps/{app_id}/group-push/mappings"
RULES = "/apps/{app_id}/group-push/rules"
#: (default, maximum) page sizes, as Okta's mapping list.
PAGE_SIZES = (100, 1000)


# --- Request bodies ---------------------------------------------------------------------------


class MappingCreateBody(BaseModel):
    """Okta's create request; ``appConfig`` (Active Directory only) is accepted and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    source_group_id: StrictStr = Field(alias="sourceGroupId")
    target_group_name: StrictStr | None = Field(default=None, alias="targetGroupName")
    target_group_id: StrictStr | None = Field(default=None, alias="targetGroupId")
    status: Literal["ACTIVE", "INACTIVE"] = "ACTIVE"
    app_config: dict[str, Any] | None = Field(default=None, alias="appConfig")

    def spec(self) -> MappingSpec:
        return MappingSpec(
            self.source_group_id, self.target_group_name, self.target_group_id, self.status
        )


class MappingUpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["ACTIVE", "INACTIVE"]


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StrictStr
    match: Literal["STARTS_WITH", "CONTAINS"]
    value: StrictStr
    status: Literal["ACTIVE", "INACTIVE"] = "ACTIVE"

    def spec(self) -> RuleSpec:
        return RuleSpec(self.name, self.match, self.value, self.status)


# --- Rendering --------------------------------------------------------------------------------


def _href(url: str) -> dict[str, str]:
    return {"href": url}


def mapping_json(mapping: t.PushMapping, base: str) -> dict[str, Any]:
    """Okta's GroupPushMapping; ``appConfig`` is omitted (never ``{}``), links only for ids
    that exist. ``skippedMembers`` and ``pushRuleId`` are Headwater extras."""
    api = f"{base}/api/v1"
    links = {"app": _href(f"{api}/apps/{mapping.app_id}")}
    if mapping.source_group_id:
        links["sourceGroup"] = _href(f"{api}/groups/{mapping.source_group_id}")
    if mapping.target_group_id:
        links["targetGroup"] = _href(f"{api}/groups/{mapping.target_group_id}")
    return {
        "id": mapping.id,
        "sourceGroupId": mapping.source_group_id,
        "targetGroupId": mapping.target_group_id,
        "status": mapping.status,
        "errorSummary": mapping.error_summary,
        "lastPush": clock.format_okta(mapping.last_push),
        "created": clock.format_okta(mapping.created),
        "lastUpdated": clock.format_okta(mapping.last_updated),
        "skippedMembers": mapping.skipped_count,
        "pushRuleId": mapping.rule_id,
        "_links": links,
    }


def rule_json(rule: t.PushRule, base: str) -> dict[str, Any]:
    app_url = f"{base}/api/v1/apps/{rule.app_id}"
    return {
        "id": rule.id,
        "name": rule.name,
        "match": rule.match,
        "value": rule.value,
        "status": rule.status,
        "created": clock.format_okta(rule.created),
        "lastUpdated": clock.format_okta(rule.last_updated),
        "_links": {
            "self": _href(f"{app_url}/group-push/rules/{rule.id}"),
            "app": _href(app_url),
            "mappings": _href(f"{app_url}/group-push/mappings"),
        },
    }


def _since(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        return clock.parse_okta(text)
    except ValueError as exc:
        cause = "lastUpdated: must be a timestamp like 2024-01-01T00:00:00Z"
        raise InvalidRequest("Api validation failed: " + cause, [cause]) from exc


# --- Mappings ---------------------------------------------------------------------------------


@router.post(
    MAPPINGS,
    status_code=201,
    openapi_extra=openapi_body(MappingCreateBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def create_mapping(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str
) -> JSONResponse:
    spec = parse(MappingCreateBody, body).spec()
    with db.transaction() as session:
        mapping = grouppush.create_mapping(session, actor, app_id, spec)
        result = mapping_json(mapping, base_url(request))
    return JSONResponse(result, status_code=201)


@router.get(MAPPINGS, dependencies=[allow(P.APPS_READ, "app_id")])
def list_mappings(
    request: Request,
    db: DbDep,
    app_id: str,
    after: str | None = None,
    limit: int | None = None,
    last_updated: str | None = Query(default=None, alias="lastUpdated"),
    source_group_id: str | None = Query(default=None, alias="sourceGroupId"),
    status: str | None = None,
) -> JSONResponse:
    filters = MappingFilter(source_group_id, status, _since(last_updated))
    base = base_url(request)
    with db.read() as session:
        query = grouppush.mappings_query(session, app_id, filters)
        return page_response(
            request,
            session,
            query,
            t.PushMapping.id,
            lambda row: mapping_json(row, base),
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.get(MAPPINGS + "/{mapping_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_mapping(request: Request, db: DbDep, app_id: str, mapping_id: str) -> dict[str, Any]:
    with db.read() as session:
        return mapping_json(grouppush.get_mapping(session, app_id, mapping_id), base_url(request))


@router.patch(
    MAPPINGS + "/{mapping_id}",
    openapi_extra=openapi_body(MappingUpdateBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def update_mapping(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, mapping_id: str
) -> dict[str, Any]:
    """``ACTIVE`` replaces the whole downstream membership next; ``INACTIVE`` pauses."""
    status = parse(MappingUpdateBody, body).status
    with db.transaction() as session:
        mapping = grouppush.set_status(session, actor, app_id, mapping_id, status)
        return mapping_json(mapping, base_url(request))


@router.delete(
    MAPPINGS + "/{mapping_id}", status_code=204, dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def delete_mapping(
    db: DbDep,
    actor: ActorDep,
    app_id: str,
    mapping_id: str,
    delete_target_group: bool = Query(default=False, alias="deleteTargetGroup"),
) -> Response:
    """Only an INACTIVE mapping; ``deleteTargetGroup=true`` also deletes the downstream group."""
    with db.transaction() as session:
        grouppush.delete_mapping(
            session, actor, app_id, mapping_id, delete_target=delete_target_group
        )
    return Response(status_code=204)


@router.post(
    MAPPINGS + "/{mapping_id}/push",
    status_code=202,
    tags=[EXTENSION],
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def push_mapping_now(
    request: Request, db: DbDep, actor: ActorDep, app_id: str, mapping_id: str
) -> JSONResponse:
    """Push now: the next reconcile replaces the whole downstream membership (Headwater
    extension; Okta's console button)."""
    with db.transaction() as session:
        mapping = grouppush.push_now(session, actor, app_id, mapping_id)
        result = mapping_json(mapping, base_url(request))
    return JSONResponse(result, status_code=202)


# --- Push rules (Headwater extension) ---------------------------------------------------------


@router.post(
    RULES,
    status_code=201,
    tags=[EXTENSION],
    openapi_extra=openapi_body(RuleBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def create_rule(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str
) -> JSONResponse:
    """Push every group whose name matches, now and as groups are created or renamed."""
    spec = parse(RuleBody, body).spec()
    with db.transaction() as session:
        rule = push_rules.create_rule(session, actor, app_id, spec)
        result = rule_json(rule, base_url(request))
    return JSONResponse(result, status_code=201)


@router.get(RULES, tags=[EXTENSION], dependencies=[allow(P.APPS_READ, "app_id")])
def list_rules(
    request: Request, db: DbDep, app_id: str, after: str | None = None, limit: int | None = None
) -> JSONResponse:
    base = base_url(request)
    with db.read() as session:
        query = push_rules.rules_query(session, app_id)
        return page_response(
            request,
            session,
            query,
            t.PushRule.id,
            lambda row: rule_json(row, base),
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.get(RULES + "/{rule_id}", tags=[EXTENSION], dependencies=[allow(P.APPS_READ, "app_id")])
def get_rule(request: Request, db: DbDep, app_id: str, rule_id: str) -> dict[str, Any]:
    with db.read() as session:
        return rule_json(push_rules.get_rule(session, app_id, rule_id), base_url(request))


@router.delete(
    RULES + "/{rule_id}",
    status_code=204,
    tags=[EXTENSION],
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def delete_rule(
    db: DbDep,
    actor: ActorDep,
    app_id: str,
    rule_id: str,
    delete_mappings: bool = Query(default=False, alias="deleteMappings"),
) -> Response:
    """``deleteMappings=true`` deactivates the rule's mappings and deletes them with their
    downstream groups; otherwise they stay, unlinked from the rule."""
    with db.transaction() as session:
        push_rules.delete_rule(session, actor, app_id, rule_id, delete_mappings=delete_mappings)
    return Response(status_code=204)
