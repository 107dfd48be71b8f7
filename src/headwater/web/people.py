"""People: list and search, create, edit the profile, lifecycle, groups, apps and accounts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select, union
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import DetachedInstanceError

from headwater.db import tables as t
from headwater.db.paging import checked_cursor, fetch_page
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.domain.lifecycle import Action, Status, allowed_actions
from headwater.engine import preview
from headwater.errors import HeadwaterError, NotFound
from headwater.services import app_users, apps, directory
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    Form,
    FormDep,
    SignedIn,
    allow,
    db_of,
    error_message,
    is_htmx,
    reading,
    render,
    runtime_of,
    see_other,
    session_of,
)

__all__ = ["PROFILE_FIELDS", "router"]

router = APIRouter(route_class=ConsoleRoute)

PAGE = 50
#: (attribute, label, required) edited in the console; other attributes are kept as they are.
PROFILE_FIELDS = (
    ("firstName", "First name", True),
    ("lastName", "Last name", True),
    ("login", "Username (login)", True),
    ("email", "Email", True),
    ("title", "Title", False),
    ("department", "Department", False),
    ("mobilePhone", "Mobile phone", False),
)
#: Status filter choices ("" lists everyone but deactivated people, as Okta's list does).
STATUS_CHOICES = (
    "",
    Status.STAGED,
    Status.PROVISIONED,
    Status.ACTIVE,
    Status.SUSPENDED,
    Status.DEPROVISIONED,
)


def _profile_from(form: Form) -> dict[str, Any]:
    """Required attributes as typed; an emptied optional attribute is removed (``None``)."""
    return {name: (form.get(name) or None) for name, _, _ in PROFILE_FIELDS}


@router.get("/people", dependencies=[allow(P.USERS_READ)])
def people(
    request: Request, admin: AdminDep, q: str = "", status: str = "", after: str | None = None
) -> Response:
    """Search as you type: htmx asks for the rows only (``HX-Request``)."""
    status = status if status in STATUS_CHOICES else ""
    filter_ = f'status eq "{status}"' if status else None
    with reading(request) as session:
        query = directory.users_query(filter=filter_, q=q or None)
        page = fetch_page(session, query, t.User.id, limit=PAGE, after=checked_cursor(after))
    context: dict[str, Any] = {
        "section": "people",
        "users": list(page),
        "next_cursor": page.next_cursor,
        "q": q,
        "status": status,
        "statuses": STATUS_CHOICES,
    }
    if is_htmx(request) and request.headers.get("hx-target") == "people-rows":
        return render(request, "partial/people_rows.html", context)
    return render(request, "people/list.html", context)


@router.get("/people/new", dependencies=[allow(P.USERS_READ)])
def new_person(request: Request, admin: AdminDep) -> Response:
    context: dict[str, Any] = {"section": "people", "values": {}, "fields": PROFILE_FIELDS}
    context["error"] = None
    return render(request, "people/new.html", context)


@router.post("/people", dependencies=[allow(P.USERS_WRITE)])
def create_person(request: Request, admin: AdminDep, form: FormDep) -> Response:
    profile = {k: v for k, v in _profile_from(form).items() if v is not None}
    password = form.raw("password") or None
    try:
        with db_of(request).transaction() as session:
            user = directory.create_user(
                session, admin.actor, profile, password=password, activate=form.checked("activate")
            )
            user_id, login = user.id, user.login
    except HeadwaterError as exc:
        context = {
            "section": "people",
            "values": profile,
            "fields": PROFILE_FIELDS,
            "error": error_message(exc),
            "activate": form.checked("activate"),
        }
        return render(request, "people/new.html", context, exc.status)
    session_of(request).flash("ok", f"Created {login}.")
    return see_other(f"{PREFIX}/people/{user_id}")


@dataclass(frozen=True)
class AppAccount:
    """One app of a person: why they have it and what the downstream account looks like."""

    app: t.App
    view: app_users.AppUserView | None
    link: t.AppUserLink | None
    reasons: list[str]


def _app_ids(session: Session, user_id: str) -> list[str]:
    """Apps assigned to the user (directly or by group) plus apps holding an account link."""
    direct = select(t.AppUserAssignment.app_id.label("app_id")).where(
        t.AppUserAssignment.user_id == user_id
    )
    grouped = (
        select(t.AppGroupAssignment.app_id.label("app_id"))
        .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
        .where(t.Membership.user_id == user_id)
    )
    linked = select(t.AppUserLink.app_id.label("app_id")).where(t.AppUserLink.user_id == user_id)
    return sorted(set(session.execute(union(direct, grouped, linked)).scalars()))


def _reasons(request: Request, app_id: str, user_id: str) -> list[str]:
    """The engine's own explanation; best effort, as the page is useful without it."""
    try:
        return list(preview.explain_user(runtime_of(request).database, app_id, user_id)["reasons"])
    except (NotFound, DetachedInstanceError):
        return []


def _accounts(
    request: Request, session: Session, user_id: str, only: frozenset[str] | None
) -> list[AppAccount]:
    accounts = []
    for app_id in _app_ids(session, user_id):
        if only is not None and app_id not in only:
            continue
        app = apps.get_app(session, app_id)
        try:
            view: app_users.AppUserView | None = app_users.app_user(session, app_id, user_id)
        except NotFound:
            view = None
        link = session.get(t.AppUserLink, (app_id, user_id))
        accounts.append(AppAccount(app, view, link, _reasons(request, app_id, user_id)))
    return sorted(accounts, key=lambda a: a.app.label.lower())


def person_context(
    request: Request, session: Session, user: t.User, admin: SignedIn
) -> dict[str, Any]:
    """The person, with only the groups and apps the admin may see."""
    query = directory.user_groups_query(session, user.id).order_by(t.Group.name_lower)
    shown = admin.visible(Kind.GROUP)
    if shown is not None:
        query = query.where(t.Group.id.in_(sorted(shown)))
    groups = list(session.execute(query).scalars().all())
    return {
        "section": "people",
        "user": user,
        "fields": PROFILE_FIELDS,
        "actions": [a.value for a in allowed_actions(user.status)],
        "groups": groups,
        "accounts": _accounts(request, session, user.id, admin.visible(Kind.APP)),
    }


@router.get("/people/{user_id}", dependencies=[allow(P.USERS_READ)])
def person(request: Request, admin: AdminDep, user_id: str) -> Response:
    with reading(request) as session:
        user = directory.find_user(session, user_id)
        context = person_context(request, session, user, admin)
    return render(request, "people/detail.html", context)


@router.post("/people/{user_id}", dependencies=[allow(P.USERS_WRITE)])
def update_person(request: Request, admin: AdminDep, form: FormDep, user_id: str) -> Response:
    with db_of(request).transaction() as session:
        directory.update_user(session, admin.actor, user_id, _profile_from(form), replace=False)
    session_of(request).flash("ok", "Profile saved.")
    return see_other(f"{PREFIX}/people/{user_id}")


@router.post("/people/{user_id}/lifecycle/{action}", dependencies=[allow(P.USERS_WRITE)])
def lifecycle(
    request: Request, admin: AdminDep, form: FormDep, user_id: str, action: str
) -> Response:
    try:
        chosen = Action(action)
    except ValueError:
        raise NotFound() from None
    with db_of(request).transaction() as session:
        user = directory.change_status(session, admin.actor, user_id, chosen)
        status = user.status
    session_of(request).flash("ok", f"Done: {chosen.value}. Status is now {status}.")
    return see_other(f"{PREFIX}/people/{user_id}")


@router.post("/people/{user_id}/delete", dependencies=[allow(P.USERS_WRITE)])
def delete_person(request: Request, admin: AdminDep, form: FormDep, user_id: str) -> Response:
    """Okta's rule: only a DEPROVISIONED person is deleted (others are deactivated first)."""
    with db_of(request).transaction() as session:
        user = directory.find_user(session, user_id)
        deleting = user.status == Status.DEPROVISIONED
        login = user.login
        directory.delete_user(session, admin.actor, user_id)
    if not deleting:
        session_of(request).flash("ok", f"{login} was deactivated; delete again to remove them.")
        return see_other(f"{PREFIX}/people/{user_id}")
    session_of(request).flash("ok", f"Deleted {login}.")
    return see_other(f"{PREFIX}/people")
