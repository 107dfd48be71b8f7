"""What every console page shares: the session, sign-in and CSRF checks, templates, errors.

Pages are plain HTML forms (everything works without JavaScript); htmx only enhances them, and
a request it sends (``HX-Request``) gets a fragment instead of a page where that helps. Service
errors become a message on the page the admin came from, never Okta's JSON error object.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from headwater import clock
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import Actor
from headwater.errors import HeadwaterError
from headwater.runtime import Runtime
from headwater.web.session import COOKIE, ConsoleSession, SessionCodec

__all__ = [
    "AdminDep",
    "ConsoleRoute",
    "Form",
    "FormDep",
    "SignedIn",
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
    """The signed-in admin; every console write is attributed to ``actor``."""

    admin_id: str
    username: str

    @property
    def actor(self) -> Actor:
        return Actor(
            id=self.admin_id, type="User", alternate_id=self.username, display_name=self.username
        )


def signed_in(request: Request) -> SignedIn:
    session = session_of(request)
    if session.admin_id is None or session.username is None:
        raise LoginRequired()
    with db_of(request).read() as db:
        if db.get(t.Admin, session.admin_id) is None:
            session.sign_out()
            raise LoginRequired()
    return SignedIn(session.admin_id, session.username)


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


async def checked_form(request: Request) -> Form:
    """The POST body, refused unless it (or the htmx header) carries the session's token."""
    data = await request.form(max_files=0, max_fields=200)
    expected = session_of(request).csrf
    given = data.get(CSRF_FIELD)
    sent = given if isinstance(given, str) else request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRejected()
    return Form(data)


AdminDep = Annotated[SignedIn, Depends(signed_in)]
FormDep = Annotated[Form, Depends(checked_form)]


# --- Responses -----------------------------------------------------------------------------------


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(
    request: Request, template: str, context: Mapping[str, Any], status: int = 200
) -> HTMLResponse:
    """A page (or, for templates under ``partial/``, a fragment) with the shared context."""
    session = session_of(request)
    flashes = [] if template.startswith("partial/") else session.take_flashes()
    html = _env.get_template(template).render(
        **context,
        request=request,
        csrf=session.csrf,
        username=session.username,
        flashes=flashes,
    )
    return HTMLResponse(html, status_code=status)
