"""Groups: list and search, create, edit, members (added and removed in place with htmx),
the apps a group assigns and where it is pushed; deleting shows what it will do first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.db.paging import checked_cursor, fetch_page
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.errors import HeadwaterError
from headwater.services import directory
from headwater.web import impact
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    SignedIn,
    allow,
    db_of,
    error_message,
    is_htmx,
    reading,
    render,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

PAGE = 50
MEMBERS_SHOWN = 500


def _visible(query: Select[Any], admin: SignedIn) -> Select[Any]:
    only = admin.visible(Kind.GROUP)
    return query if only is None else query.where(t.Group.id.in_(sorted(only)))


@router.get("/groups", dependencies=[allow(P.GROUPS_READ)])
def groups(request: Request, admin: AdminDep, q: str = "", after: str | None = None) -> Response:
    with reading(request) as session:
        query = _visible(directory.groups_query(q=q or None), admin)
        page = fetch_page(session, query, t.Group.id, limit=PAGE, after=checked_cursor(after))
    context: dict[str, Any] = {
        "section": "groups",
        "groups": list(page),
        "next_cursor": page.next_cursor,
        "q": q,
        "error": None,
        "values": {},
    }
    if is_htmx(request) and request.headers.get("hx-target") == "group-rows":
        return render(request, "partial/group_rows.html", context)
    return render(request, "groups/list.html", context)


@router.post("/groups", dependencies=[allow(P.GROUPS_WRITE)])
def create_group(request: Request, admin: AdminDep, form: FormDep) -> Response:
    profile = {"name": form.get("name"), "description": form.get("description") or None}
    try:
        with db_of(request).transaction() as session:
            group = directory.create_group(session, admin.actor, profile)
            group_id, name = group.id, group.name
    except HeadwaterError as exc:
        with reading(request) as session:
            query = _visible(directory.groups_query(), admin)
            page = fetch_page(session, query, t.Group.id, limit=PAGE, after=None)
        context = {
            "section": "groups",
            "groups": list(page),
            "next_cursor": page.next_cursor,
            "q": "",
            "error": error_message(exc),
            "values": profile,
        }
        return render(request, "groups/list.html", context, exc.status)
    session_of(request).flash("ok", f"Created group {name}.")
    return see_other(f"{PREFIX}/groups/{group_id}")


def _members(session: Session, group_id: str) -> list[t.User]:
    query = directory.group_members_query(session, group_id).order_by(t.User.login_lower)
    return list(session.execute(query.limit(MEMBERS_SHOWN)).scalars())


def _apps_shown(admin: SignedIn) -> ColumnElement[bool]:
    """Only the apps the admin may see."""
    only = admin.visible(Kind.APP)
    return true() if only is None else t.App.id.in_(sorted(only))


def _group_context(session: Session, group: t.Group, admin: SignedIn) -> dict[str, Any]:
    assigned = session.execute(
        select(t.App, t.AppGroupAssignment.priority)
        .join(t.AppGroupAssignment, t.AppGroupAssignment.app_id == t.App.id)
        .where(t.AppGroupAssignment.group_id == group.id)
        .order_by(t.App.label)
        .where(_apps_shown(admin))
    ).all()
    pushed = session.execute(
        select(t.PushMapping, t.App)
        .join(t.App, t.App.id == t.PushMapping.app_id)
        .where(
            t.PushMapping.source_group_id == group.id,
            t.PushMapping.delete_requested == false(),
        )
        .order_by(t.App.label)
        .where(_apps_shown(admin))
    ).all()
    return {
        "section": "groups",
        "group": group,
        "members": _members(session, group.id),
        "assigned": [(app, priority) for app, priority in assigned],
        "pushed": [(mapping, app, impact.target_name(session, mapping)) for mapping, app in pushed],
        "member_error": None,
    }


@router.get("/groups/{group_id}", dependencies=[allow(P.GROUPS_READ, "group_id")])
def group(request: Request, admin: AdminDep, group_id: str) -> Response:
    with reading(request) as session:
        context = _group_context(session, directory.find_group(session, group_id), admin)
    return render(request, "groups/detail.html", context)


@router.post("/groups/{group_id}", dependencies=[allow(P.GROUPS_WRITE)])
def update_group(request: Request, admin: AdminDep, form: FormDep, group_id: str) -> Response:
    with db_of(request).transaction() as session:
        current = directory.find_group(session, group_id)
        profile = {
            **current.profile,
            "name": form.get("name"),
            "description": form.get("description") or None,
        }
        directory.replace_group(session, admin.actor, group_id, profile)
    session_of(request).flash("ok", "Group saved.")
    return see_other(f"{PREFIX}/groups/{group_id}")


def _members_response(request: Request, group_id: str, error: str | None) -> Response:
    """htmx gets the members section back in place; a plain form post goes back to the page."""
    if not is_htmx(request):
        if error:
            session_of(request).flash("error", error)
        return see_other(f"{PREFIX}/groups/{group_id}#members")
    with reading(request) as session:
        group = directory.find_group(session, group_id)
        context = {"group": group, "members": _members(session, group_id), "member_error": error}
    return render(request, "partial/members.html", context)


@router.post("/groups/{group_id}/members", dependencies=[allow(P.MEMBERSHIPS_WRITE, "group_id")])
def add_member(request: Request, admin: AdminDep, form: FormDep, group_id: str) -> Response:
    person = form.get("person")
    error = None
    try:
        with db_of(request).transaction() as session:
            directory.add_member(session, admin.actor, group_id, person)
    except HeadwaterError as exc:
        error = f"Could not add {person or 'nobody'}: " + (
            "no such person" if exc.status == 404 else error_message(exc)
        )
    return _members_response(request, group_id, error)


@router.post(
    "/groups/{group_id}/members/{user_id}/remove",
    dependencies=[allow(P.MEMBERSHIPS_WRITE, "group_id")],
)
def remove_member(
    request: Request, admin: AdminDep, form: FormDep, group_id: str, user_id: str
) -> Response:
    with db_of(request).transaction() as session:
        directory.remove_member(session, admin.actor, group_id, user_id)
    return _members_response(request, group_id, None)


@router.get("/groups/{group_id}/delete", dependencies=[allow(P.GROUPS_READ, "group_id")])
def confirm_delete(request: Request, admin: AdminDep, group_id: str) -> Response:
    """Deleting a group takes away every app it assigns: the impact per app, first."""
    with reading(request) as session:
        group = directory.find_group(session, group_id)
        apps = session.execute(
            select(t.App)
            .join(t.AppGroupAssignment, t.AppGroupAssignment.app_id == t.App.id)
            .where(t.AppGroupAssignment.group_id == group_id)
            .order_by(t.App.label)
            .where(_apps_shown(admin))
        ).scalars()
        impacts = [impact.group_removal(session, app, group_id) for app in apps]
    context = {"section": "groups", "group": group, "impacts": impacts}
    return render(request, "groups/delete.html", context)


@router.post("/groups/{group_id}/delete", dependencies=[allow(P.GROUPS_WRITE)])
def delete_group(request: Request, admin: AdminDep, form: FormDep, group_id: str) -> Response:
    with db_of(request).transaction() as session:
        name = directory.find_group(session, group_id).name
        directory.delete_group(session, admin.actor, group_id)
    session_of(request).flash("ok", f"Deleted group {name}.")
    return see_other(f"{PREFIX}/groups")
