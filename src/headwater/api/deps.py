"""FastAPI dependencies: the runtime, the database, the authenticated actor, the JSON body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from headwater.api.body import json_body
from headwater.db.engine import Database
from headwater.db.events import Actor
from headwater.errors import Unauthenticated
from headwater.services import tokens

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = ["ActorDep", "BodyDep", "DbDep", "RuntimeDep", "base_url"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_db(request: Request) -> Database:
    return get_runtime(request).database


def _token_from_header(value: str | None) -> str | None:
    """Accept ``SSWS <token>`` and the SDK's ``SSWS<token>``."""
    if not value:
        return None
    value = value.strip()
    if value[:4].upper() != "SSWS":
        return None
    token = value[4:].strip()
    return token or None


def get_actor(request: Request) -> Actor:
    """Authenticate the request's API token; every /api/v1 route depends on this."""
    token = _token_from_header(request.headers.get("authorization"))
    if token is None:
        raise Unauthenticated()
    database = get_db(request)
    # A read: on SQLite a write transaction here would queue every GET behind the worker's
    # writes. ``last_used`` is written at most once a minute, in its own short transaction.
    with database.read() as session:
        row = tokens.authenticate(session, token, refresh=False)
        actor = Actor(id=row.id, type="Token", alternate_id=row.name, display_name=row.name)
        stale = tokens.needs_touch(row)
    if stale:
        with database.transaction() as session:
            tokens.touch(session, actor.id)
    request.state.actor = actor
    return actor


def base_url(request: Request) -> str:
    """Base for ``_links``: the configured public URL, else the request's own."""
    configured = get_runtime(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
DbDep = Annotated[Database, Depends(get_db)]
ActorDep = Annotated[Actor, Depends(get_actor)]
BodyDep = Annotated[Any, Depends(json_body)]
