"""Mass-change guard (Headwater extension): held deprovisions, approve or reject them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.errors import NotFound
from headwater.services import held_operations

router = APIRouter(tags=["Headwater extension"], route_class=AuthenticatedRoute)


class Decision(BaseModel):
    """Decide for these users only; all held operations when omitted."""

    userIds: list[str] | None = Field(default=None, max_length=10_000)


@router.get("/apps/{app_id}/held-operations", dependencies=[allow(P.APPS_READ, "app_id")])
def list_held(app_id: str, db: DbDep) -> list[dict[str, Any]]:
    """Deprovisions held by the mass-change guard, with the decision taken so far."""
    with db.read() as session:
        if session.get(t.App, app_id) is None:
            raise NotFound()
        return [
            {
                "userId": row.user_id,
                "operation": row.operation,
                "decision": row.decision,
                "created": clock.format_okta(row.created),
            }
            for row in held_operations.held(session, app_id)
        ]


def _decide(app_id: str, approve: bool, body: Any, db: DbDep, actor: ActorDep) -> dict[str, int]:
    decision = parse(Decision, body, required=False)
    with db.transaction() as session:
        count = held_operations.decide(session, app_id, approve, actor, decision.userIds)
    return {"decided": count}


@router.post(
    "/apps/{app_id}/held-operations/approve",
    openapi_extra=openapi_body(Decision, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def approve(app_id: str, body: BodyDep, db: DbDep, actor: ActorDep) -> dict[str, int]:
    """Let the held deprovisions run."""
    return _decide(app_id, True, body, db, actor)


@router.post(
    "/apps/{app_id}/held-operations/reject",
    openapi_extra=openapi_body(Decision, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def reject(app_id: str, body: BodyDep, db: DbDep, actor: ActorDep) -> dict[str, int]:
    """Keep the accounts: the held deprovisions are dropped."""
    return _decide(app_id, False, body, db, actor)
