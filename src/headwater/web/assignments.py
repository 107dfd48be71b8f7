"""The Assignments tab: groups in priority order (moved with up/down buttons), people assigned
directly or through groups with their downstream status; unassigning shows its impact first."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.states import GroupType
from headwater.errors import InvalidRequest, NotFound
from headwater.services import app_users, apps, assignments, directory
from headwater.web import impact
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    allow,
    db_of,
    reading,
    render,
    see_other,
    session_of,
)

__all__ = ["find_okta_group", "router"]

router = APIRouter(route_class=ConsoleRoute)

GROUPS_SHOWN = 200
USERS_SHOWN = 200
SUGGESTIONS = 200


def find_okta_group(session: Session, name: str) -> t.Group:
    """A group by its exact name (any case), as an admin types it."""
    group = session.execute(
        select(t.Group).where(
            t.Group.name_lower == name.lower(), t.Group.type == GroupType.OKTA_GROUP
        )
    ).scalar_one_or_none()
    if group is None:
        cause = f"group: no group is named {name!r}"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    return group


def group_suggestions(session: Session) -> list[str]:
    query = (
        select(t.Group.name)
        .where(t.Group.type == GroupType.OKTA_GROUP)
        .order_by(t.Group.name_lower)
    )
    return list(session.execute(query.limit(SUGGESTIONS)).scalars())


def _assigned(session: Session, app_id: str) -> list[tuple[t.AppGroupAssignment, t.Group]]:
    page = assignments.list_group_assignments(session, app_id, limit=GROUPS_SHOWN, after=None)
    groups = {
        g.id: g
        for g in session.execute(
            select(t.Group).where(t.Group.id.in_([row.group_id for row in page]))
        ).scalars()
    }
    return [(row, groups[row.group_id]) for row in page if row.group_id in groups]


@router.get("/apps/{app_id}/assignments", dependencies=[allow(P.APPS_READ, "app_id")])
def assignments_page(request: Request, admin: AdminDep, app_id: str) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        users = app_users.list_app_users(session, app_id, limit=USERS_SHOWN, after=None)
        context = {
            "section": "apps",
            "tab": "assignments",
            "app": app,
            "assigned": _assigned(session, app_id),
            "users": sorted(users, key=lambda v: v.user.login_lower),
            "more_users": users.next_cursor is not None,
            "suggestions": group_suggestions(session),
        }
    return render(request, "apps/assignments.html", context)


@router.post("/apps/{app_id}/groups", dependencies=[allow(P.APPS_WRITE, "app_id")])
def assign_group(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    with db_of(request).transaction() as session:
        group = find_okta_group(session, form.get("group"))
        spec = assignments.GroupAssignmentSpec()
        assignments.assign_group(session, admin.actor, app_id, group.id, spec)
        name = group.name
    session_of(request).flash("ok", f"Assigned to {name}.")
    return see_other(f"{PREFIX}/apps/{app_id}/assignments")


def _new_priorities(rows: list[t.AppGroupAssignment], index: int, other: int) -> dict[str, int]:
    """Swap two neighbours' priorities; equal priorities are first spread out as 0, 1, 2..."""
    current = {row.group_id: row.priority for row in rows}
    if rows[index].priority == rows[other].priority:
        if len(rows) > assignments.MAX_PRIORITY + 1:
            cause = "priority: too many groups share a priority to reorder them"
            raise InvalidRequest("Api validation failed: " + cause, [cause])
        current = {row.group_id: position for position, row in enumerate(rows)}
    a, b = rows[index].group_id, rows[other].group_id
    current[a], current[b] = current[b], current[a]
    return {gid: p for gid, p in current.items() if p != _old(rows, gid)}


def _old(rows: list[t.AppGroupAssignment], group_id: str) -> int:
    return next(row.priority for row in rows if row.group_id == group_id)


@router.post("/apps/{app_id}/groups/{group_id}/move", dependencies=[allow(P.APPS_WRITE, "app_id")])
def move_group(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, group_id: str
) -> Response:
    """Up means a lower number (it wins); the service's own assignment update does the work."""
    step = -1 if form.get("direction") == "up" else 1
    with db_of(request).transaction() as session:
        rows = [row for row, _ in _assigned(session, app_id)]
        index = next((i for i, row in enumerate(rows) if row.group_id == group_id), None)
        if index is None:
            raise NotFound()
        other = index + step
        if 0 <= other < len(rows):
            for gid, priority in _new_priorities(rows, index, other).items():
                spec = assignments.GroupAssignmentSpec(priority=priority)
                assignments.assign_group(session, admin.actor, app_id, gid, spec)
    return see_other(f"{PREFIX}/apps/{app_id}/assignments#assigned-groups")


@router.get(
    "/apps/{app_id}/groups/{group_id}/unassign", dependencies=[allow(P.APPS_READ, "app_id")]
)
def confirm_unassign_group(
    request: Request, admin: AdminDep, app_id: str, group_id: str
) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        assignments.group_assignment(session, app_id, group_id)
        group = directory.find_group(session, group_id)
        context = {
            "section": "apps",
            "tab": "assignments",
            "app": app,
            "what": f"Unassign {app.label} from group {group.name}?",
            "impacts": [impact.group_removal(session, app, group_id)],
            "action": f"{PREFIX}/apps/{app_id}/groups/{group_id}/unassign",
            "confirm": f"Confirm: unassign {group.name}",
            "cancel": f"{PREFIX}/apps/{app_id}/assignments",
        }
    return render(request, "apps/confirm.html", context)


@router.post(
    "/apps/{app_id}/groups/{group_id}/unassign", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def unassign_group(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, group_id: str
) -> Response:
    with db_of(request).transaction() as session:
        assignments.unassign_group(session, admin.actor, app_id, group_id)
    session_of(request).flash("ok", "Group unassigned; the engine is applying the change.")
    return see_other(f"{PREFIX}/apps/{app_id}/assignments")


@router.post("/apps/{app_id}/users", dependencies=[allow(P.APPS_WRITE, "app_id")])
def assign_user(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    with db_of(request).transaction() as session:
        user = directory.find_user(session, form.get("person"))
        spec = assignments.UserAssignmentSpec()
        assignments.assign_user(session, admin.actor, app_id, user.id, spec)
        login = user.login
    session_of(request).flash("ok", f"Assigned {login} directly.")
    return see_other(f"{PREFIX}/apps/{app_id}/assignments")


@router.get("/apps/{app_id}/users/{user_id}/unassign", dependencies=[allow(P.APPS_READ, "app_id")])
def confirm_unassign_user(request: Request, admin: AdminDep, app_id: str, user_id: str) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        user = directory.find_user(session, user_id)
        context = {
            "section": "apps",
            "tab": "assignments",
            "app": app,
            "what": f"Remove the direct assignment of {user.login} to {app.label}?",
            "impacts": [impact.user_removal(session, app, user_id)],
            "action": f"{PREFIX}/apps/{app_id}/users/{user_id}/unassign",
            "confirm": f"Confirm: unassign {user.login}",
            "cancel": f"{PREFIX}/apps/{app_id}/assignments",
        }
    return render(request, "apps/confirm.html", context)


@router.post(
    "/apps/{app_id}/users/{user_id}/unassign", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def unassign_user(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, user_id: str
) -> Response:
    with db_of(request).transaction() as session:
        assignments.unassign_user(session, admin.actor, app_id, user_id)
    session_of(request).flash("ok", "Direct assignment removed.")
    return see_other(f"{PREFIX}/apps/{app_id}/assignments")
