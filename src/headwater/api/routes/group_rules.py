"""``/api/v1/groups/rules``: Okta's group rules.

Registered before ``/groups/{group_id}`` so ``rules`` is never read as a group id. Activation
answers once the rule has been evaluated over the whole directory (batch by batch, each batch
committed with its memberships and downstream keys).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.listing import After, page_response
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.group_rules import EXPRESSION_TYPE, invalid
from headwater.services import group_rules
from headwater.services.group_rules import RuleSpec

__all__ = ["router", "rule_json"]

router = APIRouter(tags=["GroupRule"], route_class=AuthenticatedRoute)

RULES_LIMIT = (50, 200)


class _Exclude(BaseModel):
    model_config = ConfigDict(extra="ignore")
    exclude: list[str] = Field(default_factory=list, max_length=1000)


class _People(BaseModel):
    model_config = ConfigDict(extra="ignore")
    users: _Exclude | None = None
    groups: _Exclude | None = None


class _Expression(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = EXPRESSION_TYPE
    value: str = Field(max_length=8192)


class _Conditions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    expression: _Expression
    people: _People | None = None


class _Assign(BaseModel):
    model_config = ConfigDict(extra="ignore")
    groupIds: list[str] = Field(default_factory=list, max_length=1000)


class _Actions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    assignUserToGroups: _Assign


class GroupRuleIn(BaseModel):
    """Okta's GroupRule; ``id``, ``status`` and the dates are ignored when written."""

    model_config = ConfigDict(extra="ignore")
    type: str = "group_rule"
    name: str = Field(max_length=1000)
    conditions: _Conditions
    actions: _Actions


def _spec(body: Any) -> RuleSpec:
    data = parse(GroupRuleIn, body)
    if data.type != "group_rule":
        raise invalid("type: must be group_rule")
    if data.conditions.expression.type != EXPRESSION_TYPE:
        raise invalid(f"conditions.expression.type: must be {EXPRESSION_TYPE}")
    people = data.conditions.people or _People()
    return RuleSpec(
        name=data.name,
        expression=data.conditions.expression.value,
        group_ids=data.actions.assignUserToGroups.groupIds,
        exclude_user_ids=people.users.exclude if people.users else [],
        exclude_group_ids=people.groups.exclude if people.groups else [],
    )


def rule_json(rule: t.GroupRule, base: str) -> dict[str, Any]:
    """Okta's GroupRule object."""
    body: dict[str, Any] = {
        "type": "group_rule",
        "id": rule.id,
        "status": rule.status,
        "name": rule.name,
        "created": clock.format_okta(rule.created),
        "lastUpdated": clock.format_okta(rule.last_updated),
        "conditions": {
            "people": {
                "users": {"exclude": list(rule.exclude_user_ids)},
                "groups": {"exclude": list(rule.exclude_group_ids)},
            },
            "expression": {"value": rule.expression, "type": EXPRESSION_TYPE},
        },
        "actions": {"assignUserToGroups": {"groupIds": list(rule.group_ids)}},
        "_links": {"self": {"href": f"{base}/api/v1/groups/rules/{rule.id}"}},
    }
    if rule.invalid_reason:
        body["invalidReason"] = rule.invalid_reason
    return body


_DOCUMENTED = openapi_body(GroupRuleIn)


@router.post("/groups/rules", openapi_extra=_DOCUMENTED, dependencies=[allow(P.RULES_MANAGE)])
def create_rule(request: Request, db: DbDep, actor: ActorDep, body: BodyDep) -> JSONResponse:
    """Create a rule, INACTIVE; the expression and groups are checked now."""
    spec = _spec(body)
    with db.transaction() as session:
        rule = group_rules.create_rule(session, actor, spec)
        return JSONResponse(rule_json(rule, base_url(request)))


@router.get("/groups/rules", dependencies=[allow(P.RULES_READ)])
def list_rules(
    request: Request,
    db: DbDep,
    limit: int | None = None,
    after: After = None,
    search: str | None = None,
) -> JSONResponse:
    """Rules in creation order; ``search`` matches part of the name."""
    base = base_url(request)
    with db.read() as session:
        return page_response(
            request,
            session,
            group_rules.rules_query(search),
            t.GroupRule.id,
            lambda rule: rule_json(rule, base),
            limit=limit,
            after=after,
            sizes=RULES_LIMIT,
        )


@router.get("/groups/rules/{rule_id}", dependencies=[allow(P.RULES_READ)])
def get_rule(request: Request, db: DbDep, rule_id: str) -> JSONResponse:
    with db.read() as session:
        return JSONResponse(rule_json(group_rules.get_rule(session, rule_id), base_url(request)))


@router.put(
    "/groups/rules/{rule_id}", openapi_extra=_DOCUMENTED, dependencies=[allow(P.RULES_MANAGE)]
)
def replace_rule(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, rule_id: str
) -> JSONResponse:
    """Replace an inactive rule."""
    spec = _spec(body)
    with db.transaction() as session:
        rule = group_rules.replace_rule(session, actor, rule_id, spec)
        return JSONResponse(rule_json(rule, base_url(request)))


@router.post(
    "/groups/rules/{rule_id}/lifecycle/activate",
    status_code=204,
    dependencies=[allow(P.RULES_MANAGE)],
)
def activate_rule(db: DbDep, actor: ActorDep, rule_id: str) -> Response:
    """Activate, then evaluate over the directory in batches before answering."""
    with db.transaction() as session:
        rule = group_rules.activate_rule(session, actor, rule_id)
        rule_id = rule.id
    group_rules.run_sweep(db, rule_id, actor)
    return Response(status_code=204)


@router.post(
    "/groups/rules/{rule_id}/lifecycle/deactivate",
    status_code=204,
    dependencies=[allow(P.RULES_MANAGE)],
)
def deactivate_rule(
    db: DbDep, actor: ActorDep, rule_id: str, removeUsers: bool = False
) -> Response:
    """Deactivate; the memberships the rule holds stay unless ``removeUsers=true`` (a
    Headwater extension)."""
    with db.transaction() as session:
        group_rules.deactivate_rule(session, actor, rule_id, remove_users=removeUsers)
    return Response(status_code=204)


@router.delete("/groups/rules/{rule_id}", status_code=202, dependencies=[allow(P.RULES_MANAGE)])
def delete_rule(db: DbDep, actor: ActorDep, rule_id: str, removeUsers: bool = False) -> Response:
    """Delete an inactive rule; ``removeUsers=true`` takes back the memberships only it holds."""
    with db.transaction() as session:
        group_rules.delete_rule(session, actor, rule_id, remove_users=removeUsers)
    return Response(status_code=202)
