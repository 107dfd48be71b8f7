"""``/api/v1/users``: Okta's Users and User Lifecycle endpoints."""

from __future__ import annotations

from typing import Any, Literal

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
from headwater.domain.lifecycle import Action
from headwater.errors import InvalidRequest
from headwater.services import directory

__all__ = ["router"]

router = APIRouter(tags=["User"], route_class=AuthenticatedRoute)

USERS_LIMIT = (200, 200)
USER_GROUPS_LIMIT = (200, 10000)


class PasswordIn(BaseModel):
    """``{}`` (as a fetched user shows a set password) leaves the password unchanged."""

    model_config = ConfigDict(extra="forbid")
    value: str | None = None


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["OKTA"] = "OKTA"
    name: str | None = None


class CredentialsIn(BaseModel):
    """Only an Okta password can be set; hashes, hooks and recovery questions are refused."""

    model_config = ConfigDict(extra="forbid")
    password: PasswordIn | None = None
    provider: ProviderIn | None = None


class CreateUserIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    profile: dict[str, Any]
    credentials: CredentialsIn | None = None
    groupIds: list[str] | None = None


class UpdateUserIn(BaseModel):
    """POST (partial) and PUT (replace) bodies; unknown top-level fields such as ``_links``
    are ignored so a fetched user can be sent back as is."""

    model_config = ConfigDict(extra="ignore")
    profile: dict[str, Any] | None = None
    credentials: CredentialsIn | None = None


def _documented(model: type[BaseModel], *, complete: bool) -> dict[str, Any]:
    """``openapi_extra`` for a user body, its profile described by the domain's rules."""
    extra = openapi_body(model)
    schema = extra["requestBody"]["content"]["application/json"]["schema"]
    schema["properties"]["profile"] = profiles.json_schema(
        profiles.USER_STANDARD, complete=complete
    )
    if complete:
        schema["required"] = sorted({*schema.get("required", []), "profile"})
    return extra


def _password(credentials: CredentialsIn | None) -> str | None:
    if credentials is None or credentials.password is None:
        return None
    return credentials.password.value


# --- Users ------------------------------------------------------------------------------------


@router.post(
    "/users",
    openapi_extra=_documented(CreateUserIn, complete=True),
    dependencies=[allow(P.USERS_WRITE)],
)
def create_user(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, activate: bool = True
) -> JSONResponse:
    """Create a user: STAGED (``activate=false``), ACTIVE (with a password) or PROVISIONED."""
    data = parse(CreateUserIn, body)
    with db.transaction() as session:
        user = directory.create_user(
            session,
            actor,
            data.profile,
            password=_password(data.credentials),
            activate=activate,
            group_ids=data.groupIds or (),
        )
        return JSONResponse(user_json(user, base_url(request)))


@router.get("/users", dependencies=[allow(P.USERS_READ)])
def list_users(
    request: Request,
    db: DbDep,
    limit: int | None = None,
    after: After = None,
    filter: str | None = None,
    search: str | None = None,
    q: str | None = None,
) -> JSONResponse:
    """Users in creation order; DEPROVISIONED ones only with ``filter`` or ``search``."""
    base = base_url(request)
    with db.read() as session:
        query = directory.users_query(filter=filter, search=search, q=q)
        return page_response(
            request,
            session,
            query,
            t.User.id,
            lambda user: user_json(user, base, full=False),
            limit=limit,
            after=after,
            sizes=USERS_LIMIT,
        )


@router.get("/users/{user_id}", dependencies=[allow(P.USERS_READ)])
def get_user(request: Request, db: DbDep, user_id: str) -> JSONResponse:
    """A user by id or login."""
    with db.read() as session:
        user = directory.find_user(session, user_id)
        return JSONResponse(user_json(user, base_url(request)))


def _update(
    request: Request, db: DbDep, actor: ActorDep, body: Any, user_id: str, *, replace: bool
) -> JSONResponse:
    data = parse(UpdateUserIn, body)
    if replace and data.profile is None:
        raise InvalidRequest("Api validation failed: profile", ["profile: Field required"])
    with db.transaction() as session:
        user = directory.update_user(
            session,
            actor,
            user_id,
            data.profile,
            replace=replace,
            password=_password(data.credentials),
        )
        return JSONResponse(user_json(user, base_url(request)))


@router.post(
    "/users/{user_id}",
    openapi_extra=_documented(UpdateUserIn, complete=False),
    dependencies=[allow(P.USERS_WRITE)],
)
def update_user(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, user_id: str
) -> JSONResponse:
    """Partial update: the given profile attributes replace, the others are kept."""
    return _update(request, db, actor, body, user_id, replace=False)


@router.put(
    "/users/{user_id}",
    openapi_extra=_documented(UpdateUserIn, complete=True),
    dependencies=[allow(P.USERS_WRITE)],
)
def replace_user(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, user_id: str
) -> JSONResponse:
    """Full update: the profile is replaced (attributes left out are removed)."""
    return _update(request, db, actor, body, user_id, replace=True)


@router.delete("/users/{user_id}", status_code=204, dependencies=[allow(P.USERS_WRITE)])
def delete_user(db: DbDep, actor: ActorDep, user_id: str) -> Response:
    """Deactivates a user who is not DEPROVISIONED; deletes one who is."""
    with db.transaction() as session:
        directory.delete_user(session, actor, user_id)
    return Response(status_code=204)


@router.get("/users/{user_id}/groups")
def list_user_groups(
    request: Request,
    db: DbDep,
    user_id: str,
    caller: Caller = Depends(requires(P.GROUPS_READ)),
    limit: int | None = None,
    after: After = None,
) -> JSONResponse:
    """The groups a user belongs to."""
    base = base_url(request)
    with db.read() as session:
        query = directory.user_groups_query(session, user_id)
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
            sizes=USER_GROUPS_LIMIT,
        )


# --- Lifecycle --------------------------------------------------------------------------------


def _lifecycle_route(action: Action) -> None:
    def run(db: DbDep, actor: ActorDep, user_id: str) -> JSONResponse:
        with db.transaction() as session:
            directory.change_status(session, actor, user_id, action)
        return JSONResponse({})

    run.__name__ = f"{action.value}_user"
    run.__doc__ = f"Lifecycle: {action.value} (Okta's rules; the body is ignored)."
    router.add_api_route(
        f"/users/{{user_id}}/lifecycle/{action.value}",
        run,
        methods=["POST"],
        dependencies=[allow(P.USERS_WRITE)],
    )


for _action in Action:
    _lifecycle_route(_action)
