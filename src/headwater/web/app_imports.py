"""The Import tab of an app: start an import of what the app already holds, read its verdicts,
confirm the matches, and act on the app's unmanaged accounts (ignore, link, deactivate through
the engine and its mass-change guard)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.paging import checked_cursor, fetch_page
from headwater.domain.access import Permission as P
from headwater.errors import HeadwaterError
from headwater.services import app_imports, apps, directory
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    allow,
    db_of,
    error_message,
    reading,
    render,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

#: Rows of each verdict shown on the page (the API lists them all).
SHOWN = 100
PAGE = 100


@router.get("/apps/{app_id}/imports", dependencies=[allow(P.APPS_READ, "app_id")])
def imports_page(request: Request, admin: AdminDep, app_id: str) -> Response:
    after = checked_cursor(request.query_params.get("after"))
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        latest = session.execute(
            select(t.AppImport)
            .where(t.AppImport.app_id == app_id)
            .order_by(t.AppImport.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        verdicts: dict[str, list[t.AppImportAccount]] = {}
        found_groups: list[t.AppImportGroup] = []
        if latest is not None:
            for outcome in ("MATCHED", "CONFLICT"):
                query = app_imports.accounts_query(session, app_id, latest.id, outcome)
                verdicts[outcome] = list(
                    session.execute(query.order_by(t.AppImportAccount.id).limit(SHOWN)).scalars()
                )
            found_groups = list(
                session.execute(
                    app_imports.groups_query(session, app_id, latest.id)
                    .order_by(t.AppImportGroup.display_name)
                    .limit(SHOWN)
                ).scalars()
            )
        unmanaged = fetch_page(
            session,
            app_imports.unmanaged_query(session, app_id),
            t.UnmanagedAccount.id,
            limit=PAGE,
            after=after,
        )
        held = sum(1 for row in unmanaged if row.decision == "HELD")
        context = {
            "section": "apps",
            "tab": "imports",
            "app": app,
            "latest": latest,
            "verdicts": verdicts,
            "found_groups": found_groups,
            "unmanaged": unmanaged,
            "held": held,
            "next_cursor": unmanaged.next_cursor,
            "working": latest is not None and latest.status in ("QUEUED", "RUNNING", "CONFIRMING"),
        }
    return render(request, "apps/imports.html", context)


def _back(app_id: str) -> Response:
    return see_other(f"{PREFIX}/apps/{app_id}/imports")


def _done(request: Request, app_id: str, message: str) -> Response:
    session_of(request).flash("ok", message)
    return _back(app_id)


def _failed(request: Request, app_id: str, exc: HeadwaterError) -> Response:
    session_of(request).flash("error", error_message(exc))
    return _back(app_id)


@router.post("/apps/{app_id}/imports", dependencies=[allow(P.APPS_WRITE, "app_id")])
def start(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    try:
        with db_of(request).transaction() as session:
            app_imports.start_import(session, admin.actor, app_id)
    except HeadwaterError as exc:
        return _failed(request, app_id, exc)
    return _done(request, app_id, "Import queued: the engine reads the app now.")


@router.post(
    "/apps/{app_id}/imports/{import_id}/confirm", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def confirm(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, import_id: str
) -> Response:
    chosen = form.values("account") or None
    try:
        with db_of(request).transaction() as session:
            count = app_imports.confirm(session, admin.actor, app_id, import_id, chosen)
    except HeadwaterError as exc:
        return _failed(request, app_id, exc)
    return _done(request, app_id, f"{count} account(s) to link; nothing is created downstream.")


@router.post("/apps/{app_id}/unmanaged", dependencies=[allow(P.APPS_WRITE, "app_id")])
def act(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """One form for every action on unmanaged accounts (``action`` says which)."""
    action = form.get("action")
    account = form.get("account")
    try:
        with db_of(request).transaction() as session:
            if action == "deactivate":
                count = app_imports.deactivate(
                    session, admin.actor, app_id, [account] if account else None
                )
                message = f"{count} account(s) to deactivate (the mass-change guard weighs them)."
            elif action in ("approve", "reject"):
                count = app_imports.decide_held(session, admin.actor, app_id, action == "approve")
                message = f"{count} held deactivation(s) {action}d."
            elif action in ("ignore", "unignore"):
                app_imports.ignore(
                    session, admin.actor, app_id, account, ignored=action == "ignore"
                )
                message = "Account ignored." if action == "ignore" else "Account no longer ignored."
            elif action == "link":
                user = directory.find_user(session, form.get("user"))
                app_imports.link_unmanaged(session, admin.actor, app_id, account, user.id)
                message = f"Account to be linked to {user.login}."
            else:
                message = ""
    except HeadwaterError as exc:
        return _failed(request, app_id, exc)
    if not message:
        session_of(request).flash("error", "Unknown action.")
        return _back(app_id)
    return _done(request, app_id, message)
