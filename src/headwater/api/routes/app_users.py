"""Okta's app users: direct assignments (scope USER) and the effective assignment of each user.

``GET`` lists everyone who holds the app, directly or through a group; writes touch only the
direct assignment, as in Okta (group grants are managed on ``/apps/{id}/groups``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.domain.access import Permission as P
from headwater.services import app_users, assignments

__all__ = ["app_user_json", "router"]

router = APIRouter(tags=["ApplicationUsers"], route_class=AuthenticatedRoute)


class CredentialsBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_name: StrictStr | None = Field(default=None, alias="userName")


class AppUserUpdateBody(BaseModel):
    """Okta's app user: ``credentials.userName`` and ``profile`` may be set."""

    model_config = ConfigDict(extra="ignore")

    credentials: CredentialsBody | None = None
    profile: dict[str, Any] | None = None

    def spec(self) -> assignments.UserAssignmentSpec:
        user_name = self.credentials.user_name if self.credentials else None
        return assignments.UserAssignmentSpec(self.profile, user_name)


class AppUserAssignBody(AppUserUpdateBody):
    id: StrictStr
    scope: StrictStr | None = None


def app_user_json(view: app_users.AppUserView, base: str) -> dict[str, Any]:
    """Okta's app user; the group link names the group whose profile won."""
    links: dict[str, Any] = {
        "app": {"href": f"{base}/api/v1/apps/{view.app_id}"},
        "user": {"href": f"{base}/api/v1/users/{view.user.id}"},
    }
    winner = view.winning_group
    if view.scope == "GROUP" and winner is not None:
        links["group"] = {
            "name": winner.group_name,
            "href": f"{base}/api/v1/groups/{winner.group_id}",
        }
    return {
        "id": view.user.id,
        "externalId": view.link.external_id if view.link is not None else None,
        "created": clock.format_okta(view.created),
        "lastUpdated": clock.format_okta(view.last_updated),
        "scope": view.scope,
        "status": view.status,
        "statusChanged": clock.format_okta(view.status_changed),
        "passwordChanged": None,
        "syncState": view.sync_state,
        "lastSync": clock.format_okta(view.last_sync),
        "credentials": {"userName": view.user_name},
        "profile": view.profile,
        "_links": links,
    }


@router.post(
    "/apps/{app_id}/users",
    openapi_extra=openapi_body(AppUserAssignBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def assign_user(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str
) -> dict[str, Any]:
    parsed = parse(AppUserAssignBody, body)
    with db.transaction() as session:
        view = assignments.assign_user(session, actor, app_id, parsed.id, parsed.spec())
        return app_user_json(view, base_url(request))


@router.get("/apps/{app_id}/users", dependencies=[allow(P.APPS_READ, "app_id")])
def list_app_users(
    request: Request,
    response: Response,
    db: DbDep,
    app_id: str,
    limit: int | None = None,
    after: str | None = None,
    q: str | None = None,
) -> list[dict[str, Any]]:
    size = clamp_limit(limit, 50, 500)
    base = base_url(request)
    with db.read() as session:
        page = app_users.list_app_users(session, app_id, limit=size, after=after, q=q)
        body = [app_user_json(view, base) for view in page]
    set_link_headers(request, response, page.next_cursor, size)
    return body


@router.get("/apps/{app_id}/users/{user_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_app_user(request: Request, db: DbDep, app_id: str, user_id: str) -> dict[str, Any]:
    with db.read() as session:
        return app_user_json(app_users.app_user(session, app_id, user_id), base_url(request))


@router.post(
    "/apps/{app_id}/users/{user_id}",
    openapi_extra=openapi_body(AppUserUpdateBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def update_app_user(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, user_id: str
) -> dict[str, Any]:
    spec = parse(AppUserUpdateBody, body).spec()
    with db.transaction() as session:
        view = assignments.update_app_user(session, actor, app_id, user_id, spec)
        return app_user_json(view, base_url(request))


@router.delete(
    "/apps/{app_id}/users/{user_id}", status_code=204, dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def unassign_user(db: DbDep, actor: ActorDep, app_id: str, user_id: str) -> Response:
    with db.transaction() as session:
        assignments.unassign_user(session, actor, app_id, user_id)
    return Response(status_code=204)
