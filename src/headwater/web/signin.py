"""Sign-in and sign-out. Failed attempts are counted (and locked out) by ``services.admins``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from headwater.services import admins
from headwater.web.core import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    db_of,
    render,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


def _safe_next(value: str) -> str:
    """Only console paths: a sign-in link must not send the admin to another site."""
    if value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


@router.get("/")
def home(request: Request) -> Response:
    session = session_of(request)
    return see_other(f"{PREFIX}/people" if session.admin_id else f"{PREFIX}/login")


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    if session_of(request).admin_id:
        return see_other(_safe_next(next))
    context = {"next": _safe_next(next), "failed": False, "username_value": ""}
    return render(request, "login.html", context)


def _authenticate(request: Request, username: str, password: str) -> tuple[str, str] | None:
    with db_of(request).transaction() as session:
        admin = admins.authenticate(session, username, password)
        return (admin.id, admin.username) if admin is not None else None


@router.post("/login")
async def login(request: Request, form: FormDep) -> Response:
    """Argon2 verification is slow on purpose: it runs in the thread pool."""
    username = form.get("username")[:255]
    found = await run_in_threadpool(_authenticate, request, username, form.raw("password"))
    if found is None:
        context = {"next": _safe_next(form.get("next")), "failed": True, "username_value": username}
        return render(request, "login.html", context, 401)
    session_of(request).sign_in(*found)
    return see_other(_safe_next(form.get("next")))


@router.post("/logout")
def logout(request: Request, form: FormDep) -> Response:
    session_of(request).sign_out()
    return see_other(f"{PREFIX}/login")
