"""``/api/v1/groups``: Okta's Groups and group membership endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from headwater.api.body import openapi_body, parse
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
from headwater.api.listing import After, page_response
from headwater.api.representations import group_json, user_json
from headwater.db import tables as t
from headwater.domain import profiles
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.services import directory

__all__ = ["router"]

router = APIRouter(tags=["Group"], route_class=AuthenticatedRoute)

GROUPS_LIMIT = (200, 10000)
MEMBERS_LIMIT = (1000, 1000)


class GroupIn(BaseModel):
    """Unknown top-level fields (``id``, ``_links``...) are ignored, as Okta does."""

    model_config = ConfigDict(extra="ignore")
    profile: dict[str, Any]


def _documented() -> dict[str, Any]:
    extra = openapi_body(GroupIn)
    schema = extra["requestBody"]["content"]["application/json"]["schema"]
    schema["properties"]["profile"] = profiles.json_schema(profiles.GROUP_TEXT, complete=True)
    return extra


@router.post("/groups", openapi_extra=_documented(), dependencies=[allow(P.GROUPS_WRITE)])
def create_group(request: Request, db: DbDep, actor: ActorDep, body: BodyDep) -> JSONResponse:
    """Create an OKTA_GROUP; names are unique, case-insensitively."""
    data = parse(GroupIn, body)
    with db.transaction() as session:
        group = directory.create_group(session, actor, data.profile)
        return JSONResponse(group_json(group, base_url(request)))


@router.get("/groups")
def list_groups(
    request: Request,
    db: DbDep,
    caller: Caller = Depends(requires(P.GROUPS_READ)),
    limit: int | None = None,
    after: After = None,
    q: str | None = None,
    filter: str | None = None,
    search: str | None = None,
) -> JSONResponse:
    """Groups in creation order; ``q`` matches the start of the name."""
    base = base_url(request)
    with db.read() as session:
        query = directory.groups_query(filter=filter, search=search, q=q)
        only = caller.visible(Kind.GROUP)
        if only is not None:
            query = query.where(t.Group.id.in_(sorted(only)))
        return page_response(
            request,
            session,
            query,
            t.Group.id,
            lambda group: group_json(group, base),
            limit=limit,
            after=after,
            sizes=GROUPS_LIMIT,
        )


@router.get("/groups/{group_id}", dependencies=[allow(P.GROUPS_READ, "group_id")])
def get_group(request: Request, db: DbDep, group_id: str) -> JSONResponse:
    with db.read() as session:
        group = directory.find_group(session, group_id)
        return JSONResponse(group_json(group, base_url(request)))


@router.put("/groups/{group_id}", openapi_extra=_documented(), dependencies=[allow(P.GROUPS_WRITE)])
def replace_group(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, group_id: str
) -> JSONResponse:
    """Replace an OKTA_GROUP's profile (a rename also renames pushed groups downstream)."""
    data = parse(GroupIn, body)
    with db.transaction() as session:
        group = directory.replace_group(session, actor, group_id, data.profile)
        return JSONResponse(group_json(group, base_url(request)))


@router.delete("/groups/{group_id}", status_code=204, dependencies=[allow(P.GROUPS_WRITE)])
def delete_group(db: DbDep, actor: ActorDep, group_id: str) -> Response:
    with db.transaction() as session:
        directory.delete_group(session, actor, group_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/users", dependencies=[allow(P.GROUPS_READ, "group_id")])
def list_group_users(
    request: Request,
    db: DbDep,
    group_id: str,
    limit: int | None = None,
    after: After = None,
) -> JSONResponse:
    """Members in user-id order (the cursor is a user id)."""
    base = base_url(request)
    with db.read() as session:
        query = directory.group_members_query(session, group_id)
        return page_response(
            request,
            session,
            query,
            t.Membership.user_id,
            lambda user: user_json(user, base, full=False),
            limit=limit,
            after=after,
            sizes=MEMBERS_LIMIT,
        )


@router.put(
    "/groups/{group_id}/users/{user_id}",
    status_code=204,
    dependencies=[allow(P.MEMBERSHIPS_WRITE, "group_id")],
)
def add_member(db: DbDep, actor: ActorDep, group_id: str, user_id: str) -> Response:
    """Add a user to an OKTA_GROUP (idempotent; the body, if any, is ignored)."""
    with db.transaction() as session:
        directory.add_member(session, actor, group_id, user_id)
    return Response(status_code=204)


@router.delete(
    "/groups/{group_id}/users/{user_id}",
    status_code=204,
    dependencies=[allow(P.MEMBERSHIPS_WRITE, "group_id")],
)
def remove_member(db: DbDep, actor: ActorDep, group_id: str, user_id: str) -> Response:
    with db.transaction() as session:
        directory.remove_member(session, actor, group_id, user_id)
    return Response(status_code=204)
