"""FastAPI dependencies: the runtime, the database, the authenticated caller and what it may
do, the JSON body.

Authorization is declared once per route: ``dependencies=[allow(Permission.X, "app_id")]``
(or a ``Caller`` parameter from ``requires(...)`` where a listing needs the caller's scope).
The decision itself is the domain's ``allows``; a refusal answers 403 ``E0000006`` and is
recorded in the system log. ``tests/api/test_permissions.py`` fails for a route without one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from headwater.api.body import decode
from headwater.db.engine import Database
from headwater.db.events import Actor
from headwater.domain.access import Grant, Kind, Permission, allows, visible
from headwater.domain.storable import check_text, refuse
from headwater.errors import Forbidden, HeadwaterError, Unauthenticated
from headwater.services import access, tokens

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = [
    "ActorDep",
    "AuthenticatedRoute",
    "BodyDep",
    "Caller",
    "DbDep",
    "RuntimeDep",
    "allow",
    "base_url",
    "requires",
    "settle_first",
    "settles_first",
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


# Authentication is owed, not done, while a request's dependencies run on the event loop: the
# token and the route's permissions are checked in the thread that then runs the handler, so
# a request hops to the thread pool once instead of twice. Every error raised before the
# handler settles what is owed first (``settle_first``), so a bad token still answers 401,
# and a refused permission 403 (logged), before any complaint about the URL or the body, in
# the same order as when each dependency checked at once.


class _Owed:
    """What a request owes before its handler runs: its token, then each permission in the
    order its dependencies asked for them, then its JSON body's decoding. Settled at most
    once, in a worker thread."""

    __slots__ = (
        "body",
        "checked",
        "checks",
        "database",
        "decoded",
        "error",
        "raw",
        "request",
        "settled",
        "token",
    )

    def __init__(self, request: Request, token: str) -> None:
        self.request = request
        self.database = get_db(request)
        self.token = token
        self.checks: list[tuple[Permission, str | None]] = []
        self.checked = 0
        self.settled: Caller | None = None
        self.raw: bytes | None = None
        self.decoded = False
        self.body: Any = None
        self.error: HeadwaterError | None = None

    def settle(self) -> Caller:
        """Check the token, every permission asked for so far, then decode the body, if one
        was read (blocking: a worker thread's job)."""
        if self.error is not None:
            raise self.error
        try:
            caller = self.settled or _authenticate(self.request, self.database, self.token)
            self.settled = caller
            while self.checked < len(self.checks):
                permission, resource = self.checks[self.checked]
                self.checked += 1
                if not allows(caller.grant, permission, resource):
                    where = f"{self.request.method} {self.request.url.path}"
                    raise _deny(self.database, caller, permission, resource, where)
            if self.raw is not None and not self.decoded:
                self.body = decode(self.raw)
                self.decoded = True
        except HeadwaterError as exc:
            self.error = exc
            raise
        return caller

    @property
    def done(self) -> bool:
        return (
            self.settled is not None
            and self.checked == len(self.checks)
            and (self.raw is None or self.decoded)
        )


#: The request's owed authentication, for its handler's thread (contexts are copied there).
_OWED: ContextVar[_Owed | None] = ContextVar("headwater_owed_authentication", default=None)

# What an owed ``Actor``, ``Caller`` or body parameter holds until the handler's thread
# settles it.
_OWED_ACTOR: Any = object()
_OWED_CALLER: Any = object()
_OWED_BODY: Any = object()


def _authenticate(request: Request, database: Database, token: str) -> Caller:
    """The token's caller (blocking). Not cached: a revoked token fails at its next request."""
    # A read outside any transaction (decision 54): on SQLite a write transaction here would
    # queue every GET behind the worker's writes. ``last_used`` is written at most once a
    # minute, in its own short transaction.
    row = tokens.authenticate_row(database.engine, token)
    actor = Actor(id=row.id, type="Token", alternate_id=row.name, display_name=row.name)
    caller = Caller(actor, access.grant_of(row))
    if tokens.needs_touch(row):
        with database.transaction() as session:
            tokens.touch(session, actor.id)
    request.state.actor = actor
    request.state.caller = caller
    return caller


def _owed(request: Request) -> _Owed:
    """The request's owed authentication (made by its first dependency that needs it)."""
    owed = getattr(request.state, "owed", None)
    if isinstance(owed, _Owed):
        return owed
    token = _token_from_header(request.headers.get("authorization"))
    if token is None:
        raise Unauthenticated()
    owed = _Owed(request, token)
    request.state.owed = owed
    _OWED.set(owed)
    return owed


async def settle_first(request: Request) -> None:
    """Before an error raised ahead of the handler is answered: what the request owes, so that
    an unknown token or a refused permission is what the caller hears (one thread hop, and
    only for a request that fails before its handler)."""
    owed = getattr(request.state, "owed", None)
    if not isinstance(owed, _Owed):
        return
    if owed.error is not None:
        raise owed.error
    if not owed.done:
        await run_in_threadpool(owed.settle)


async def get_actor(request: Request) -> Actor:
    """The authenticated token as the system log's actor; every /api/v1 route depends on this
    (settled in the handler's thread: see ``settles_first``)."""
    _owed(request)
    return cast(Actor, _OWED_ACTOR)


@functools.cache
def requires(
    permission: Permission, param: str | None = None
) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that lets the call through only if the caller holds ``permission`` on the
    resource named by the path parameter ``param`` (none: the collection or the org)."""

    async def check(request: Request) -> Caller:
        resource = request.path_params.get(param) if param else None
        _owed(request).checks.append((permission, resource))
        return cast(Caller, _OWED_CALLER)

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


def _paid(arguments: dict[str, Any], owed: _Owed, caller: Caller) -> dict[str, Any]:
    """The handler's arguments with the owed actor, caller and body filled in."""
    for name, value in arguments.items():
        if value is _OWED_ACTOR:
            arguments[name] = caller.actor
        elif value is _OWED_CALLER:
            arguments[name] = caller
        elif value is _OWED_BODY:
            arguments[name] = owed.body
    return arguments


async def _json_body(request: Request) -> Any:
    """The JSON body, read here and decoded once the request's authentication is settled
    (so an unauthenticated caller's body is never parsed)."""
    try:
        raw = await request.body()
    except Exception:
        await settle_first(request)  # a bad token is answered before a body that is too large
        raise
    owed = getattr(request.state, "owed", None)
    if not isinstance(owed, _Owed):
        return decode(raw)
    owed.raw = raw
    return _OWED_BODY


def settles_first(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` preceded by the settling of what its request owes: in the same worker
    thread for a plain ``def`` handler, one hop before it for an ``async`` one."""
    if getattr(endpoint, "settles_first", False):
        return endpoint
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            owed = _OWED.get()
            if owed is None:
                raise Unauthenticated()
            caller = await run_in_threadpool(owed.settle)
            return await endpoint(*args, **_paid(kwargs, owed, caller))

        run_async.settles_first = True  # type: ignore[attr-defined]
        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        owed = _OWED.get()
        if owed is None:
            raise Unauthenticated()
        return endpoint(*args, **_paid(kwargs, owed, owed.settle()))

    run.settles_first = True  # type: ignore[attr-defined]
    return run


class AuthenticatedRoute(APIRoute):
    """The route class of every /api/v1 router: its handler runs once the request's token
    and permissions are settled (``create_api`` refuses a route without it)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, settles_first(endpoint), **kwargs)


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
BodyDep = Annotated[Any, Depends(_json_body)]
