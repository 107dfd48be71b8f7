"""Sign-in and sign-out.

Sign-in reads the account (a read, no lock), checks the password in the sign-in's own bounded
pool with no transaction open, then writes the session; rate limits per client address and
per username come first (``web.throttle``). Sign-out deletes the server-side session, so the
cookie it leaves behind (or a copy of it) no longer signs anyone in.
"""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from headwater.services import admins
from headwater.web.core import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    LoginRequired,
    db_of,
    idle_timeout,
    render,
    see_other,
    session_lifetime,
    session_of,
    signed_in,
)
from headwater.web.throttle import Busy, SignInGuard

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)
#: One sign-in in this many also forgets sessions that can no longer be resumed.
PURGE_ONE_IN = 50


def _safe_next(value: str) -> str:
    """Only console paths: a sign-in link must not send the admin to another site."""
    if value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def _signed_in(request: Request) -> bool:
    try:
        signed_in(request)
    except LoginRequired:
        return False
    return True


@router.get("/")
def home(request: Request) -> Response:
    return see_other(f"{PREFIX}/people" if _signed_in(request) else f"{PREFIX}/login")


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    if _signed_in(request):
        return see_other(_safe_next(next))
    return _form(request, next, "", None)


def _form(
    request: Request, next: str, username: str, problem: str | None, status: int = 200
) -> Response:
    context = {"next": _safe_next(next), "problem": problem, "username_value": username}
    return render(request, "login.html", context, status)


def guard_of(request: Request) -> SignInGuard:
    guard: SignInGuard = request.app.state.console_signin
    return guard


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


FAILED = (
    "Sign-in failed: wrong username or password, or too many failed attempts for this "
    "username; wait a minute and try again."
)


@router.post("/login")
async def login(request: Request, form: FormDep) -> Response:
    username = form.get("username")[:255]
    password = form.raw("password")
    next = form.get("next")
    guard = guard_of(request)
    verdict = guard.admit(_client(request), username)
    if verdict.retry_after:
        problem = (
            "Too many sign-in attempts from your address. "
            f"Try again in {verdict.retry_after} seconds."
        )
        await asyncio.sleep(guard.refusal_pause)
        response = _form(request, next, username, problem, 429)
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response

    def read() -> admins.Candidate | None:
        with db_of(request).read() as session:
            return admins.candidate(session, username)

    found = await run_in_threadpool(read)
    stored = found.password_hash if found is not None and not verdict.locked else None
    try:
        matched = await guard.hashing.run(admins.verify, stored, password)
    except Busy:
        await asyncio.sleep(guard.refusal_pause)
        problem = "Sign-in is busy. Try again in a moment."
        response = _form(request, next, username, problem, 503)
        response.headers["Retry-After"] = "1"
        return response
    if not matched or found is None:
        guard.failed(username)
        reason = "throttled" if verdict.locked else "wrong username or password"
        await run_in_threadpool(_record_failure, request, username, found, reason)
        return _form(request, next, username, FAILED, 401)
    secret = await run_in_threadpool(_start, request, found)
    session_of(request).sign_in(secret, session_lifetime(request).total_seconds())
    return see_other(_safe_next(next))


def _record_failure(
    request: Request, username: str, found: admins.Candidate | None, reason: str
) -> None:
    with db_of(request).transaction() as session:
        admin_id = found.admin_id if found is not None else None
        admins.record_sign_in(session, username, admin_id, success=False, reason=reason)


def _start(request: Request, found: admins.Candidate) -> str:
    with db_of(request).transaction() as session:
        secret = admins.start_session(session, found.admin_id, lifetime=session_lifetime(request))
        admins.record_sign_in(session, found.username, found.admin_id, success=True)
        if secrets.randbelow(PURGE_ONE_IN) == 0:
            admins.purge_sessions(session, idle=idle_timeout(request))
    return secret


@router.post("/logout")
def logout(request: Request, form: FormDep) -> Response:
    session = session_of(request)
    if session.secret is not None:
        with db_of(request).transaction() as db:
            admins.end_session(db, session.secret)
    session.sign_out()
    return see_other(f"{PREFIX}/login")
