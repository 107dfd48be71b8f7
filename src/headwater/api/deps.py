"""FastAPI dependencies: the runtime, the database, the authenticated caller and what it may
do, the JSON body.

Authorization is declared once per route: ``dependencies=[allow(Permission.X, "app_id")]``
(or a ``Caller`` parameter from ``requires(...)`` where a listing needs the caller's scope).
The decision itself is the domain's ``allows``; a refusal answers 403 ``E0000006`` and is
recorded in the system log. ``tests/api/test_permissions.py`` fails for a route without one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from headwater.api.body import json_body
from headwater.db.engine import Database
from headwater.db.events import Actor
from headwater.domain.access import Grant, Kind, Permission, allows, visible
from headwater.domain.storable import check_text, refuse
from headwater.errors import Forbidden, Unauthenticated
from headwater.services import access, tokens

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = [
    "ActorDep",
    "BodyDep",
    "Caller",
    "DbDep",
    "RuntimeDep",
    "allow",
    "base_url",
    "requires",
    "storable_url",
    "storable_url_dep",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_db(request: Request) -> Database:
    return get_runtime(request).database


# The dependencies below are ``async`` where they do no I/O: FastAPI runs a plain ``def``
# dependency in the thread pool, and each such hop (a thread hand-off and back, for a dictionary
# look-up) cost more than the work itself. Those that read the database hop once, explicitly.


async def _runtime_dep(request: Request) -> Runtime:
    return get_runtime(request)


async def _db_dep(request: Request) -> Database:
    return get_db(request)


def _token_from_header(value: str | None) -> str | None:
    """Accept ``SSWS <token>`` and the SDK's ``SSWS<token>``."""
    if not value:
        return None
    value = value.strip()
    if value[:4].upper() != "SSWS":
        return None
    token = value[4:].strip()
    return token or None


@dataclass(frozen=True)
class Caller:
    """The authenticated token: who (for the system log) and what it may do."""

    actor: Actor
    grant: Grant

    def visible(self, kind: Kind) -> frozenset[str] | None:
        """Ids of apps or groups a listing may show (None: all)."""
        return visible(self.grant, kind)


def get_caller(request: Request) -> Caller:
    """Authenticate the request's API token (once per request)."""
    current = getattr(request.state, "caller", None)
    if isinstance(current, Caller):
        return current
    token = _token_from_header(request.headers.get("authorization"))
    if token is None:
        raise Unauthenticated()
    database = get_db(request)
    # A read: on SQLite a write transaction here would queue every GET behind the worker's
    # writes. ``last_used`` is written at most once a minute, in its own short transaction.
    with database.read() as session:
        row = tokens.authenticate(session, token, refresh=False)
        actor = Actor(id=row.id, type="Token", alternate_id=row.name, display_name=row.name)
        caller = Caller(actor, access.grant_of(row))
        stale = tokens.needs_touch(row)
    if stale:
        with database.transaction() as session:
            tokens.touch(session, actor.id)
    request.state.actor = actor
    request.state.caller = caller
    return caller


async def _caller(request: Request) -> Caller:
    """``get_caller`` with its database read in the thread pool (none once the request's
    caller is known)."""
    current = getattr(request.state, "caller", None)
    if isinstance(current, Caller):
        return current
    return await run_in_threadpool(get_caller, request)


async def get_actor(request: Request) -> Actor:
    """The authenticated token as the system log's actor; every /api/v1 route depends on this."""
    return (await _caller(request)).actor


@functools.cache
def requires(
    permission: Permission, param: str | None = None
) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that lets the call through only if the caller holds ``permission`` on the
    resource named by the path parameter ``param`` (none: the collection or the org)."""

    async def check(request: Request) -> Caller:
        caller = await _caller(request)
        resource = request.path_params.get(param) if param else None
        if allows(caller.grant, permission, resource):
            return caller
        where = f"{request.method} {request.url.path}"
        raise await run_in_threadpool(_deny, get_db(request), caller, permission, resource, where)

    check.permission = permission  # type: ignore[attr-defined]
    check.param = param  # type: ignore[attr-defined]
    check.__name__ = f"requires_{permission.value.replace('.', '_')}"
    return check


def _deny(
    database: Database,
    caller: Caller,
    permission: Permission,
    resource: str | None,
    where: str,
) -> Forbidden:
    """Record the refusal in the system log (its own transaction); the error to raise."""
    with database.transaction() as session:
        return access.deny(session, caller.actor, permission, resource, where)


def allow(permission: Permission, param: str | None = None) -> Any:
    """``dependencies=[allow(...)]`` for a route that needs no ``Caller`` parameter."""
    return Depends(requires(permission, param))


async def storable_url_dep(request: Request) -> None:
    """``storable_url`` as a dependency (no I/O: run on the event loop)."""
    storable_url(request)


def storable_url(request: Request) -> None:
    """Path and query strings reach SQL, the system log and error messages: text no database
    stores (a NUL, a lone surrogate) is refused up front, naming the parameter."""
    for name, value in request.path_params.items():
        problem = check_text(str(value))
        if problem:
            raise refuse(name, problem)
    for name, value in request.query_params.multi_items():
        problem = check_text(name)
        if problem:
            raise refuse("query", f"parameter names {problem}")
        problem = check_text(value)
        if problem:
            raise refuse(name, problem)


def base_url(request: Request) -> str:
    """Base for ``_links``: the configured public URL, else the request's own."""
    configured = get_runtime(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


RuntimeDep = Annotated["Runtime", Depends(_runtime_dep)]
DbDep = Annotated[Database, Depends(_db_dep)]
ActorDep = Annotated[Actor, Depends(get_actor)]
BodyDep = Annotated[Any, Depends(json_body)]
