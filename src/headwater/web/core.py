"""What every console page shares: the session, sign-in, permission and CSRF checks,
templates, errors.

Each page declares the permission it needs once, in its route: ``dependencies=[allow(P.X,
"app_id")]``, the same rules (``headwater.domain.access``) as the API's.

Pages are plain HTML forms (everything works without JavaScript); htmx only enhances them, and
a request it sends (``HX-Request``) gets a fragment instead of a page where that helps. Service
errors become a message on the page the admin came from, never Okta's JSON error object.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from headwater import clock
from headwater.db.engine import Database
from headwater.db.events import Actor
from headwater.domain.access import Grant, Kind, Permission, allows, visible
from headwater.errors import HeadwaterError
from headwater.runtime import Runtime
from headwater.services import access, admins
from headwater.web.session import COOKIE, ConsoleSession, SessionCodec

__all__ = [
    "AdminDep",
    "ConsoleRoute",
    "Form",
    "FormDep",
    "SignedIn",
    "UploadDep",
    "allow",
    "db_of",
    "error_message",
    "is_htmx",
    "reading",
    "render",
    "runtime_of",
    "see_other",
]

PREFIX = "/console"
TEMPLATES = Path(__file__).parent / "templates"
#: Console pages hold directory data: never cached, never framed, scripts only from here.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
    ),
    # The same URL answers a page or, to htmx, a fragment.
    "Vary": "HX-Request, HX-Target",
}
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No signed-in admin: the page redirects to the sign-in form."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token: refused with 403, nothing changes."""


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return clock.as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dot_breaks(text: str) -> Markup:
    """Dotted names (event types) may wrap after each dot, not mid-word."""
    return Markup(".<wbr>").join(text.split("."))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["dot_breaks"] = _dot_breaks
    env.globals["prefix"] = PREFIX
    return env


_env = _environment()


# --- Session -------------------------------------------------------------------------------------


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.console_codec
    return codec


def session_of(request: Request) -> ConsoleSession:
    """The request's session, read from the cookie once (a new anonymous one if absent)."""
    current = getattr(request.state, "console", None)
    if isinstance(current, ConsoleSession):
        return current
    loaded = _codec(request).loads(request.cookies.get(COOKIE))
    session = loaded or ConsoleSession(dirty=True)
    request.state.console = session
    return session


def _save_session(request: Request, response: Response) -> None:
    session = getattr(request.state, "console", None)
    if not isinstance(session, ConsoleSession) or not session.dirty:
        return
    response.set_cookie(
        COOKIE,
        _codec(request).dumps(session),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# --- Route class: errors, sign-in redirects, the cookie ------------------------------------------


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def error_message(exc: HeadwaterError) -> str:
    causes = [cause for cause in exc.causes if cause not in exc.summary]
    return exc.summary + (f" ({'; '.join(causes)})" if causes else "")


def _back(request: Request) -> str:
    """Where to return after a refused action: the referring console page, else the home."""
    referer = urlsplit(request.headers.get("referer", ""))
    same_host = not referer.netloc or referer.netloc == request.url.netloc
    if same_host and referer.path.startswith(PREFIX + "/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return PREFIX + "/"


def _refused(request: Request, exc: HeadwaterError) -> Response:
    message = error_message(exc)
    if request.method == "GET":
        return render(request, "error.html", {"status": exc.status, "message": message}, exc.status)
    if is_htmx(request):
        html = _env.get_template("partial/messages.html").render(flashes=[("error", message)])
        headers = {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
        return HTMLResponse(html, headers=headers)
    session_of(request).flash("error", message)
    return see_other(_back(request))


class ConsoleRoute(APIRoute):
    """Wraps every console endpoint (dependencies included) with the console's error pages
    and writes the session cookie back when it changed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            session_of(request)
            try:
                response = await inner(request)
            except LoginRequired:
                target = request.url.path
                if request.method == "GET" and request.url.query:
                    target += "?" + request.url.query
                response = see_other(f"{PREFIX}/login?next={quote(target, safe='')}")
                if is_htmx(request):
                    response.headers["HX-Redirect"] = f"{PREFIX}/login"
            except CsrfRejected:
                message = (
                    "The form expired or did not come from this console. "
                    "Reload the page and try again."
                )
                response = render(request, "error.html", {"status": 403, "message": message}, 403)
            except HeadwaterError as exc:
                response = _refused(request, exc)
            _save_session(request, response)
            response.headers.update(SECURITY_HEADERS)
            return response

        return handler


# --- Dependencies --------------------------------------------------------------------------------


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def db_of(request: Request) -> Database:
    return runtime_of(request).database


@contextmanager
def reading(request: Request) -> Iterator[Session]:
    """A read session whose loaded rows outlive it: they are detached before the closing
    rollback (which would expire them), so a template can render them afterwards."""
    with db_of(request).read() as session:
        yield session
        session.expunge_all()


@dataclass(frozen=True)
class SignedIn:
    """The signed-in admin and their role; every console write is attributed to ``actor``."""

    admin_id: str
    username: str
    grant: Grant

    @property
    def actor(self) -> Actor:
        return admins.actor_of(self.admin_id, self.username)

    def visible(self, kind: Kind) -> frozenset[str] | None:
        """Ids of apps or groups a page may list (None: all)."""
        return visible(self.grant, kind)


def idle_timeout(request: Request) -> timedelta:
    return timedelta(minutes=runtime_of(request).settings.console_idle_minutes)


def session_lifetime(request: Request) -> timedelta:
    return timedelta(hours=runtime_of(request).settings.console_session_hours)


def signed_in(request: Request) -> SignedIn:
    """The admin of the request's server-side session (once per request); a session that
    has ended, idled out or outlived its lifetime sends the admin to the sign-in page."""
    current = getattr(request.state, "admin", None)
    if isinstance(current, SignedIn):
        return current
    session = session_of(request)
    if session.secret is None:
        raise LoginRequired()
    with db_of(request).read() as db:
        found = admins.resume_session(db, session.secret, idle=idle_timeout(request))
    if found is None:
        session.sign_out()
        raise LoginRequired()
    info, stale = found
    if stale:
        with db_of(request).transaction() as db:
            admins.touch_session(db, session.secret)
    admin = SignedIn(info.admin_id, info.username, info.grant)
    request.state.admin = admin
    return admin


@functools.cache
def requires(permission: Permission, param: str | None = None) -> Callable[[Request], SignedIn]:
    """A dependency: the signed-in admin, if their role holds ``permission`` on the app or
    group named by the path parameter ``param``; otherwise 403, recorded in the system log."""

    def check(request: Request) -> SignedIn:
        admin = signed_in(request)
        resource = request.path_params.get(param) if param else None
        if allows(admin.grant, permission, resource):
            return admin
        where = f"{request.method} {request.url.path}"
        with db_of(request).transaction() as db:
            refused = access.deny(db, admin.actor, permission, resource, where)
        raise refused

    check.permission = permission  # type: ignore[attr-defined]
    check.param = param  # type: ignore[attr-defined]
    check.__name__ = f"console_requires_{permission.value.replace('.', '_')}"
    return check


def allow(permission: Permission, param: str | None = None) -> Any:
    """``dependencies=[allow(...)]``: the page's permission, declared in its route."""
    return Depends(requires(permission, param))


def _sections(admin: SignedIn | None) -> list[tuple[str, str, str]]:
    """The main navigation: the sections this admin may open."""
    if admin is None:
        return []
    grant = admin.grant
    shown = [
        ("people", "People", "/people", allows(grant, Permission.USERS_READ)),
        ("import", "Import", "/import", allows(grant, Permission.USERS_WRITE)),
        ("groups", "Groups", "/groups", allows(grant, Permission.GROUPS_READ)),
        ("rules", "Group Rules", "/rules", allows(grant, Permission.RULES_READ)),
        ("apps", "Applications", "/apps", allows(grant, Permission.APPS_READ)),
        ("logs", "System Log", "/logs", allows(grant, Permission.LOGS_READ)),
        ("health", "Health", "/health", allows(grant, Permission.APPS_READ)),
    ]
    return [(key, label, href) for key, label, href, ok in shown if ok]


class Form:
    """A submitted form whose CSRF token has been checked; values come back stripped."""

    def __init__(self, data: FormData) -> None:
        self._data = data

    def get(self, name: str, default: str = "") -> str:
        value = self._data.get(name)
        return value.strip() if isinstance(value, str) else default

    def raw(self, name: str) -> str:
        """The value as typed (passwords and tokens are not stripped)."""
        value = self._data.get(name)
        return value if isinstance(value, str) else ""

    def checked(self, name: str) -> bool:
        return self.get(name) in ("on", "true", "1")

    def values(self, name: str) -> list[str]:
        return [v.strip() for v in self._data.getlist(name) if isinstance(v, str) and v.strip()]

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def file(self, name: str) -> UploadFile | None:
        value = self._data.get(name)
        return value if isinstance(value, UploadFile) else None


async def checked_form(request: Request) -> Form:
    """The POST body, refused unless it (or the htmx header) carries the session's token."""
    return _checked(request, await request.form(max_files=0, max_fields=200))


async def checked_upload(request: Request) -> Form:
    """A form with one file (``multipart/form-data``; the body's size is bounded by the
    server's limit), refused unless it carries the session's token."""
    data = await request.form(max_files=1, max_fields=20)
    try:
        return _checked(request, data)
    except CsrfRejected:
        await data.close()  # the spooled upload is not read: close it now
        raise


def _checked(request: Request, data: FormData) -> Form:
    expected = session_of(request).csrf
    given = data.get(CSRF_FIELD)
    sent = given if isinstance(given, str) else request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRejected()
    return Form(data)


AdminDep = Annotated[SignedIn, Depends(signed_in)]
FormDep = Annotated[Form, Depends(checked_form)]
UploadDep = Annotated[Form, Depends(checked_upload)]


# --- Responses -----------------------------------------------------------------------------------


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(
    request: Request, template: str, context: Mapping[str, Any], status: int = 200
) -> HTMLResponse:
    """A page (or, for templates under ``partial/``, a fragment) with the shared context."""
    session = session_of(request)
    flashes = [] if template.startswith("partial/") else session.take_flashes()
    admin = getattr(request.state, "admin", None)
    admin = admin if isinstance(admin, SignedIn) and session.secret is not None else None
    html = _env.get_template(template).render(
        **context,
        request=request,
        csrf=session.csrf,
        username=admin.username if admin else None,
        sections=_sections(admin),
        flashes=flashes,
    )
    return HTMLResponse(html, status_code=status)
