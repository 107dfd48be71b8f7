"""Who is assigned to an app: groups (with a priority and an app profile) and users directly.

Each change enqueues the keys it can affect in the same transaction: the members' accounts
and the app's pushed groups.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.db.paging import Page, fetch_page
from headwater.domain.lifecycle import DELETED, Status
from headwater.domain.storable import PROFILE, check_document, check_text
from headwater.errors import AlreadyAssigned, HeadwaterError, NotFound
from headwater.services.app_users import AppUserView, app_user
from headwater.services.apps import app_target, get_app
from headwater.services.validation import (
    insert_or_conflict,
    plausible_id,
    prefix_pattern,
    require,
)


class InactiveUser(HeadwaterError):
    """Cannot assign an application to an inactive user"""

    status = 400
    code = "E0000117"


MIN_PRIORITY, MAX_PRIORITY = 0, 100


@dataclass(frozen=True)
class GroupAssignmentSpec:
    """``None`` keeps the current value (or picks the default for a new assignment)."""

    priority: int | None = None
    profile: dict[str, Any] | None = None


def _group(session: Session, group_id: str) -> t.Group:
    group = session.get(t.Group, group_id) if plausible_id(group_id) else None
    if group is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (UserGroup)")
    return group


def _group_target(group: t.Group) -> Target:
    return Target(group.id, "UserGroup", group.name, group.name)


def _next_priority(session: Session, app_id: str) -> int:
    highest = session.execute(
        select(func.max(t.AppGroupAssignment.priority)).where(t.AppGroupAssignment.app_id == app_id)
    ).scalar_one_or_none()
    return 0 if highest is None else min(int(highest) + 1, MAX_PRIORITY)


def group_assignment(session: Session, app_id: str, group_id: str) -> t.AppGroupAssignment:
    get_app(session, app_id)
    row = session.get(t.AppGroupAssignment, (app_id, group_id))
    if row is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (ApplicationGroupAssignment)")
    return row


def _reconcile_group_grant(session: Session, app_id: str, group_id: str) -> None:
    """Members' accounts and the app's pushed groups may change with any group grant."""
    session.flush()
    outbox.enqueue_users_of_app_group(session, group_id, app_id)
    outbox.enqueue_push_for_app_users(session, app_id, None)


def assign_group(
    session: Session, actor: Actor, app_id: str, group_id: str, spec: GroupAssignmentSpec
) -> t.AppGroupAssignment:
    """Okta's idempotent PUT: assign the group, or update its priority and profile."""
    app = get_app(session, app_id)
    group = _group(session, group_id)
    priority = spec.priority
    require(
        priority is None or MIN_PRIORITY <= priority <= MAX_PRIORITY,
        "priority: must be between 0 and 100",
    )
    _check_profile(spec.profile)
    now = clock.utcnow()
    row = session.get(t.AppGroupAssignment, (app_id, group_id))
    verb = "update" if row is not None else "add"
    if row is None:
        row = t.AppGroupAssignment(
            app_id=app_id,
            group_id=group_id,
            priority=_next_priority(session, app_id) if priority is None else priority,
            profile=spec.profile or {},
            created=now,
            last_updated=now,
        )
        insert_or_conflict(session, row)
    else:
        row.priority = row.priority if priority is None else priority
        row.profile = row.profile if spec.profile is None else spec.profile
    row.last_updated = now
    events.record(
        session,
        f"group.application_assignment.{verb}",
        f"{'Add' if verb == 'add' else 'Update'} assigned application {app.label} "
        f"{'to' if verb == 'add' else 'in'} group {group.name}",
        actor=actor,
        targets=[app_target(app), _group_target(group)],
        debug={"priority": row.priority},
    )
    _reconcile_group_grant(session, app_id, group_id)
    return row


def unassign_group(session: Session, actor: Actor, app_id: str, group_id: str) -> None:
    row = group_assignment(session, app_id, group_id)
    app = get_app(session, app_id)
    group = _group(session, group_id)
    session.delete(row)
    session.flush()
    events.record(
        session,
        "group.application_assignment.remove",
        f"Remove assigned application {app.label} from group {group.name}",
        actor=actor,
        targets=[app_target(app), _group_target(group)],
    )
    outbox.enqueue_group_members_for_app(session, group_id, app_id)
    outbox.enqueue_push_for_app_users(session, app_id, None)


def _priority_cursor(text: str) -> tuple[int, str]:
    priority, _, group_id = text.partition(".")
    valid = priority.isdigit() and len(priority) <= 3 and int(priority) <= MAX_PRIORITY
    require(valid and bool(group_id), "after: invalid cursor")
    return int(priority), group_id


def list_group_assignments(
    session: Session, app_id: str, *, limit: int, after: str | None, q: str | None = None
) -> Page[t.AppGroupAssignment]:
    """Ordered by priority then group id; the cursor is ``<priority>.<group id>``."""
    get_app(session, app_id)
    aga = t.AppGroupAssignment
    query = select(aga).where(aga.app_id == app_id)
    if q:
        query = query.join(t.Group, t.Group.id == aga.group_id).where(
            t.Group.name_lower.like(prefix_pattern(q), escape="\\")
        )
    if after:
        priority, group_id = _priority_cursor(after)
        query = query.where(
            or_(
                aga.priority > priority,
                and_(aga.priority == priority, aga.group_id > group_id),
            )
        )
    rows = list(
        session.execute(query.order_by(aga.priority, aga.group_id).limit(limit + 1)).scalars()
    )
    page: Page[t.AppGroupAssignment] = Page(rows[:limit])
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = f"{last.priority}.{last.group_id}"
    return page


def apps_of_group(
    session: Session,
    group_id: str,
    *,
    limit: int,
    after: str | None,
    only: Collection[str] | None = None,
) -> Page[t.App]:
    """Apps the group is assigned to; ``only``: limited to these app ids."""
    _group(session, group_id)
    query = (
        select(t.App)
        .join(t.AppGroupAssignment, t.AppGroupAssignment.app_id == t.App.id)
        .where(t.AppGroupAssignment.group_id == group_id)
    )
    if only is not None:
        query = query.where(t.App.id.in_(sorted(only)))
    return fetch_page(session, query, t.App.id, limit=limit, after=after)


@dataclass(frozen=True)
class UserAssignmentSpec:
    """A direct assignment's app profile and username override (``None``: unchanged)."""

    profile: dict[str, Any] | None = None
    user_name: str | None = None


def _user(session: Session, user_id: str) -> t.User:
    user = session.get(t.User, user_id) if plausible_id(user_id) else None
    if user is None or user.status == DELETED:
        raise NotFound(f"Not found: Resource not found: {user_id} (User)")
    return user


def _user_target(user: t.User) -> Target:
    profile = user.profile or {}
    name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p)
    return Target(user.id, "User", user.login, name or user.login)


def _check_user_name(user_name: str | None) -> None:
    require(
        user_name is None or 0 < len(user_name) <= 100,
        "credentials.userName: must be 1 to 100 characters",
    )
    problem = check_text(user_name) if user_name is not None else None
    require(problem is None, f"credentials.userName: {problem}")


def _check_profile(profile: dict[str, Any] | None) -> None:
    """An app profile is stored as sent and read back on every listing: it must be storable
    JSON within bounds (``storable.PROFILE``)."""
    if profile is not None:
        require(isinstance(profile, dict), "profile: must be an object")
        check_document(profile, "profile", PROFILE)


def _record_membership(session: Session, actor: Actor, verb: str, app: t.App, user: t.User) -> None:
    messages = {
        "add": "Add user to application membership",
        "update": "Update user's application membership",
        "remove": "Remove user from application membership",
    }
    events.record(
        session,
        f"application.user_membership.{verb}",
        messages[verb],
        actor=actor,
        targets=[app_target(app), _user_target(user)],
    )


def _reconcile_user(session: Session, app_id: str, user_id: str) -> None:
    session.flush()
    outbox.enqueue_users_for_apps(session, app_id, [user_id])
    outbox.enqueue_push_for_app_users(session, app_id, [user_id])


def assign_user(
    session: Session, actor: Actor, app_id: str, user_id: str, spec: UserAssignmentSpec
) -> AppUserView:
    """A direct (scope USER) assignment; STAGED users may be assigned but get no account."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    if user.status == Status.DEPROVISIONED:
        raise InactiveUser(causes=[f"id: user {user_id} is deactivated"])
    if session.get(t.AppUserAssignment, (app_id, user_id)) is not None:
        raise AlreadyAssigned(causes=[f"id: user {user_id} is already assigned to the app"])
    _check_user_name(spec.user_name)
    _check_profile(spec.profile)
    now = clock.utcnow()
    row = t.AppUserAssignment(
        app_id=app_id,
        user_id=user_id,
        profile=spec.profile or {},
        user_name=spec.user_name,
        created=now,
        last_updated=now,
    )
    insert_or_conflict(
        session, row, AlreadyAssigned(causes=[f"id: user {user_id} is already assigned"])
    )
    _record_membership(session, actor, "add", app, user)
    _reconcile_user(session, app_id, user_id)
    return app_user(session, app_id, user_id)


def _merge_profile(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Partial update: given keys replace, ``null`` removes."""
    merged = {**current, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def update_app_user(
    session: Session, actor: Actor, app_id: str, user_id: str, spec: UserAssignmentSpec
) -> AppUserView:
    """Edit the direct assignment; a group-only user gets one (Okta's "override")."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    _check_user_name(spec.user_name)
    _check_profile(spec.profile)
    row = session.get(t.AppUserAssignment, (app_id, user_id))
    if row is None:
        app_user(session, app_id, user_id)  # 404 unless group-assigned
        now = clock.utcnow()
        row = t.AppUserAssignment(
            app_id=app_id,
            user_id=user_id,
            profile={},
            user_name=None,
            created=now,
            last_updated=now,
        )
        insert_or_conflict(session, row)
    merged = _merge_profile(row.profile or {}, spec.profile or {})
    _check_profile(merged)
    row.profile = merged
    row.user_name = spec.user_name if spec.user_name is not None else row.user_name
    row.last_updated = clock.utcnow()
    _record_membership(session, actor, "update", app, user)
    _reconcile_user(session, app_id, user_id)
    return app_user(session, app_id, user_id)


def unassign_user(session: Session, actor: Actor, app_id: str, user_id: str) -> None:
    """Remove the direct assignment; group grants, if any, keep the account."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    row = session.get(t.AppUserAssignment, (app_id, user_id))
    if row is None:
        raise NotFound(f"Not found: Resource not found: {user_id} (AppUser)")
    session.delete(row)
    _record_membership(session, actor, "remove", app, user)
    _reconcile_user(session, app_id, user_id)
