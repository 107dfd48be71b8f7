"""Directory use-cases: users, their lifecycle, groups and memberships.

Each function works inside the caller's unit of work (``Session``) on behalf of an ``Actor``,
records the system log event Okta would, and enqueues the reconcile keys the change can affect
in the same transaction (the outbox), so a committed change is never left unreconciled.
Fan-out is set-based SQL; nothing here loops over a group's members.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from argon2 import PasswordHasher
from sqlalchemy import Select, Table, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from headwater import clock, ids
from headwater.db import core, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Pending, Target, record_many
from headwater.db.rowsets import any_of
from headwater.domain import lifecycle, profiles
from headwater.domain.lifecycle import DELETED, Action, Status
from headwater.domain.states import GroupType, MappingStatus
from headwater.domain.storable import check_text
from headwater.errors import Forbidden, InvalidRequest, NotFound
from headwater.services import push_rules, rule_evaluation, sources, user_schema
from headwater.services.filtering import (
    Attribute,
    ExactAttribute,
    TextAttribute,
    TimeAttribute,
    json_text,
    where,
)

__all__ = [
    "OKTA_GROUP",
    "ImportedUser",
    "add_member",
    "change_status",
    "create_group",
    "create_user",
    "delete_group",
    "delete_user",
    "find_group",
    "find_user",
    "group_members_query",
    "groups_query",
    "import_users",
    "remove_member",
    "replace_group",
    "update_user",
    "user_groups_query",
    "users_query",
]

OKTA_GROUP = GroupType.OKTA_GROUP
APP_GROUP = GroupType.APP_GROUP
BUILT_IN = GroupType.BUILT_IN
#: ``name_scope`` of OKTA_GROUPs: their names are unique across the whole directory.
OKTA_SCOPE = "okta"
MAX_GROUP_IDS = 20
MIN_PASSWORD = 8
MAX_PASSWORD = 256
LOGIN_TAKEN = "login: An object with this field already exists in the current organization"
NAME_TAKEN = "name: An object with this field already exists in the current organization"

_hasher = PasswordHasher()

_LIFECYCLE_MESSAGES = {
    Action.ACTIVATE: "Activate Okta user",
    Action.DEACTIVATE: "Deactivate Okta user",
    Action.SUSPEND: "Suspend Okta user",
    Action.UNSUSPEND: "Unsuspend Okta user",
    Action.REACTIVATE: "Reactivate Okta user",
}


# --- Shared helpers ---------------------------------------------------------------------------


class _Person(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def login(self) -> str: ...
    @property
    def profile(self) -> Mapping[str, Any]: ...


def _user_target(user: _Person) -> Target:
    name = f"{user.profile.get('firstName', '')} {user.profile.get('lastName', '')}".strip()
    return Target(user.id, "User", user.login, name or user.login)


def _group_target(group: t.Group) -> Target:
    return Target(group.id, "UserGroup", group.name, group.name)


def _log(
    session: Session,
    actor: Actor,
    event_type: str,
    message: str,
    *targets: Target,
    debug: dict[str, Any] | None = None,
) -> None:
    """A successful change's system log event, written as rows (``record_many``): as ORM
    objects it would cost the change a unit of work of its own at the next flush."""
    record_many(session, actor, [Pending(event_type, message, targets, debug)])


@contextmanager
def _unique(cause: str) -> Iterator[None]:
    """A unique-index violation inside becomes Okta's 400 naming the field (the caller's
    transaction is rolled back by the raise, so nothing half-done is kept)."""
    try:
        yield
    except IntegrityError as exc:
        raise InvalidRequest("Api validation failed: " + cause, [cause]) from exc


def _flush_unique(session: Session, cause: str) -> None:
    """Flush, under :func:`_unique`."""
    with _unique(cause):
        session.flush()


def _lookup_key(value: str) -> str | None:
    """A path id or login usable in SQL, or None for values no row can have."""
    if not value or len(value) > 255 or check_text(value):
        return None
    return value


def _text_param(name: str, value: str | None) -> str | None:
    if value is not None and check_text(value):
        raise InvalidRequest(f"Api validation failed: {name}", [f"{name}: invalid characters"])
    return value


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# --- Users ------------------------------------------------------------------------------------


def find_user(session: Session, key: str, *, lock: bool = False) -> t.User:
    """A user by id, else by login (case-insensitively); deleted users do not exist."""
    checked = _lookup_key(key)
    if checked is None:
        raise NotFound()
    user = session.get(t.User, checked, with_for_update=lock) if len(checked) <= 32 else None
    if user is None:
        query = select(t.User).where(t.User.login_lower == checked.lower())
        user = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if user is None or user.status == DELETED:
        raise NotFound()
    return user


def _check_password(password: str | None) -> None:
    if password is None:
        return
    problem = check_text(password)
    if problem is None and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problem = f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    if problem:
        cause = f"password: Password requirements were not met ({problem})"
        raise InvalidRequest("Api validation failed: password", [cause])


def _set_identity(user: t.User, profile: dict[str, Any]) -> None:
    user.profile = profile
    user.login = profile["login"]
    user.login_lower = profile["login"].lower()
    user.email_lower = profile["email"].lower()


def create_user(
    session: Session,
    actor: Actor,
    profile: Mapping[str, Any],
    *,
    password: str | None = None,
    activate: bool = True,
    group_ids: Sequence[str] = (),
) -> t.User:
    """Okta's create: STAGED, or activated (ACTIVE with a password, else PROVISIONED)."""
    clean = profiles.validate_user_profile(profile)
    user_schema.check_profile(session, clean, clean.keys(), complete=True)
    _check_password(password)
    groups = _groups_for_new_user(session, group_ids)
    now = clock.utcnow()
    status = lifecycle.initial_status(activate=activate, has_password=password is not None)
    user = t.User(
        id=ids.new_id("00u"),
        status=status,
        password_hash=_hasher.hash(password) if password is not None else None,
        created=now,
        activated=now if status == Status.ACTIVE else None,
        status_changed=now if activate else None,
        last_login=None,
        last_updated=now,
        password_changed=now if password is not None else None,
        source_id=None,
        source_document=None,
    )
    _set_identity(user, clean)
    _insert_new_user(session, user)
    # The events as rows, not ORM objects: the same rows as ``record`` without a unit of work
    # (and a second flush) for what is a create's most frequent write besides the user.
    target = (_user_target(user),)
    events = [Pending("user.lifecycle.create", "Create Okta user", target)]
    if activate:
        events.append(Pending("user.lifecycle.activate", "Activate Okta user", target))
    record_many(session, actor, events)
    for group in groups:
        _insert_membership(session, actor, group, user, now)
    if groups:
        # A new user reaches apps only through these groups (no assignment or account can
        # name an id that did not exist); memberships from rules enqueue their own keys.
        outbox.enqueue_user(session, user.id)
    rule_evaluation.evaluate_user(session, user, actor)
    return user


_USERS = Table("users", t.Base.metadata)
_MEMBERSHIPS = Table("memberships", t.Base.metadata)
#: A new user's row, every column given (see ``_insert_new_user``).
_INSERT_USER = insert(_USERS)
_USER_COLUMNS = tuple(column.key for column in _USERS.columns)


def _insert_new_user(session: Session, user: t.User) -> None:
    """``user`` (every column set) as one Core ``INSERT``, then in the session as if it had
    been read back: the ORM's flush of one new object cost twice the insert. A login already
    taken is Okta's 400."""
    values = {name: getattr(user, name) for name in _USER_COLUMNS}
    with _unique(LOGIN_TAKEN):
        core.execute(session, _INSERT_USER, values)
    make_transient_to_detached(user)
    session.add(user)


def _groups_for_new_user(session: Session, group_ids: Sequence[str]) -> list[t.Group]:
    unique = list(dict.fromkeys(group_ids))
    if len(unique) > MAX_GROUP_IDS:
        cause = f"groupIds: at most {MAX_GROUP_IDS} groups"
        raise InvalidRequest("Api validation failed: groupIds", [cause])
    groups = []
    for group_id in unique:
        try:
            groups.append(_editable_group(session, group_id))
        except NotFound as exc:
            cause = f"groupIds: group {group_id} does not exist"
            raise InvalidRequest("Api validation failed: groupIds", [cause]) from exc
    return groups


def update_user(
    session: Session,
    actor: Actor,
    key: str,
    profile: Mapping[str, Any] | None,
    *,
    replace: bool,
    password: str | None = None,
) -> t.User:
    """Okta's POST (partial, merged) or PUT (the profile replaced) on a user."""
    user = find_user(session, key, lock=True)
    _check_password(password)
    if profile is not None:
        _update_profile(session, actor, user, profile, replace=replace)
    if password is not None:
        _set_password(session, actor, user, password)
    return user


def _update_profile(
    session: Session, actor: Actor, user: t.User, changes: Mapping[str, Any], *, replace: bool
) -> None:
    new = profiles.validate_user_profile(
        changes if replace else profiles.merge(user.profile, changes)
    )
    old = user.profile
    changed = sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
    user_schema.check_profile(session, new, changed, complete=replace)
    if not changed:
        return
    sources.check_user_change(session, actor, user, changed)
    _set_identity(user, new)
    user.last_updated = clock.utcnow()
    _flush_unique(session, LOGIN_TAKEN)
    _log(
        session,
        actor,
        "user.account.update_profile",
        "Update user profile for Okta",
        _user_target(user),
        debug={"changedAttributes": ",".join(changed)},
    )
    outbox.enqueue_user(session, user.id)
    rule_evaluation.evaluate_user(session, user, actor)


def _set_password(session: Session, actor: Actor, user: t.User, password: str) -> None:
    now = clock.utcnow()
    user.password_hash = _hasher.hash(password)
    user.password_changed = now
    user.last_updated = now
    session.flush()
    _log(session, actor, "user.account.update_password", "Update password", _user_target(user))


def change_status(session: Session, actor: Actor, key: str, action: Action) -> t.User:
    """Run one lifecycle action, or raise the error Okta gives in the user's status."""
    user = find_user(session, key, lock=True)
    _apply_action(session, actor, user, action)
    return user


def _apply_action(session: Session, actor: Actor, user: t.User, action: Action) -> None:
    new = lifecycle.transition(user.status, action, has_password=user.password_hash is not None)
    now = clock.utcnow()
    user.status = new
    user.status_changed = now
    user.last_updated = now
    if action is Action.ACTIVATE:
        user.activated = now if new == Status.ACTIVE else None
    if action is Action.DEACTIVATE:
        user.activated = None
    session.flush()
    message = _LIFECYCLE_MESSAGES[action]
    _log(session, actor, f"user.lifecycle.{action.value}", message, _user_target(user))
    outbox.enqueue_user(session, user.id)
    rule_evaluation.evaluate_user(session, user, actor)
    if action is Action.DEACTIVATE:
        _remove_direct_assignments(session, actor, user)


def _remove_direct_assignments(session: Session, actor: Actor, user: t.User) -> None:
    """Okta drops every app assignment of a deactivated user (group memberships stay).

    Runs after ``enqueue_user``, so the keys already name these apps."""
    apps = session.execute(
        select(t.App.id, t.App.label)
        .join(t.AppUserAssignment, t.AppUserAssignment.app_id == t.App.id)
        .where(t.AppUserAssignment.user_id == user.id)
    ).all()
    session.execute(delete(t.AppUserAssignment).where(t.AppUserAssignment.user_id == user.id))
    for app_id, label in apps:
        _log(
            session,
            actor,
            "application.user_membership.remove",
            f"Remove user's application membership: {label}",
            _user_target(user),
            Target(app_id, "AppInstance", label, label),
            debug={"reason": "user deactivated"},
        )


def delete_user(session: Session, actor: Actor, key: str) -> None:
    """Okta's DELETE: deactivates a user who is not DEPROVISIONED, else deletes.

    Deleting frees the login at once and hides the user from every read; the row stays as
    DELETED until the engine has cleaned up downstream and purges it.
    """
    user = find_user(session, key, lock=True)
    if user.status != Status.DEPROVISIONED:
        _apply_action(session, actor, user, Action.DEACTIVATE)
        return
    now = clock.utcnow()
    user.status = DELETED
    user.login_lower = f"{user.id}:deleted"
    user.status_changed = now
    user.last_updated = now
    session.flush()
    target = _user_target(user)
    _log(session, actor, "user.lifecycle.delete.initiated", "Delete Okta user", target)
    # While memberships still exist, this names every app the user's groups assign and every
    # push mapping they source: the same keys as enqueue_membership_change for each group.
    outbox.enqueue_user(session, user.id)
    _drop_memberships(session, user.id, now)
    session.execute(delete(t.AppUserAssignment).where(t.AppUserAssignment.user_id == user.id))
    _log(session, actor, "user.lifecycle.delete.completed", "Delete Okta user", target)


def _drop_memberships(session: Session, user_id: str, now: datetime) -> None:
    groups_of_user = select(t.Membership.group_id).where(t.Membership.user_id == user_id)
    session.execute(
        update(t.Group)
        .where(t.Group.id.in_(groups_of_user))
        .values(last_membership_updated=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(t.Membership).where(t.Membership.user_id == user_id))
    rule_evaluation.forget_user(session, user_id)


def _user_attribute(name: str) -> Attribute | None:
    fixed: dict[str, Attribute] = {
        "id": ExactAttribute(t.User.id),
        "status": ExactAttribute(t.User.status, upper=True),
        "created": TimeAttribute(t.User.created),
        "activated": TimeAttribute(t.User.activated),
        "statusChanged": TimeAttribute(t.User.status_changed),
        "lastUpdated": TimeAttribute(t.User.last_updated),
        "passwordChanged": TimeAttribute(t.User.password_changed),
        "lastLogin": TimeAttribute(t.User.last_login),
        "profile.login": TextAttribute(t.User.login_lower, lowered=True),
        "profile.email": TextAttribute(t.User.email_lower, lowered=True),
    }
    if name in fixed:
        return fixed[name]
    prefix, _, attribute = name.partition(".")
    if prefix == "profile" and attribute and "." not in attribute:
        return TextAttribute(json_text(t.User.profile, attribute))
    return None


def users_query(
    *, filter: str | None = None, search: str | None = None, q: str | None = None
) -> Select[t.User]:
    """Users for ``GET /users``; DEPROVISIONED ones only when a filter or search asks."""
    query = select(t.User).where(t.User.status != DELETED)
    conditions = [
        condition
        for condition in (where(filter, _user_attribute), where(search, _user_attribute))
        if condition is not None
    ]
    if conditions:
        query = query.where(*conditions)
    else:
        query = query.where(t.User.status != Status.DEPROVISIONED)
    prefix = _text_param("q", q)
    if prefix:
        lowered = prefix.lower()
        query = query.where(
            or_(
                t.User.login_lower.startswith(lowered, autoescape=True),
                t.User.email_lower.startswith(lowered, autoescape=True),
                func.lower(json_text(t.User.profile, "firstName")).startswith(
                    lowered, autoescape=True
                ),
                func.lower(json_text(t.User.profile, "lastName")).startswith(
                    lowered, autoescape=True
                ),
            )
        )
    return query


def user_groups_query(session: Session, key: str) -> Select[t.Group]:
    user = find_user(session, key)
    return (
        select(t.Group)
        .join(t.Membership, t.Membership.group_id == t.Group.id)
        .where(t.Membership.user_id == user.id)
    )


# --- Groups -----------------------------------------------------------------------------------


def find_group(session: Session, group_id: str, *, lock: bool = False) -> t.Group:
    checked = _lookup_key(group_id)
    group = session.get(t.Group, checked, with_for_update=lock) if checked else None
    if group is None:
        raise NotFound()
    return group


def _editable_group(session: Session, group_id: str) -> t.Group:
    """Only OKTA_GROUP memberships belong to the directory; app groups belong to imports."""
    group = find_group(session, group_id)
    if group.type != OKTA_GROUP:
        cause = f"Group memberships of a {group.type} cannot be changed"
        raise InvalidRequest("Api validation failed: " + cause, [f"groupId: {cause}"])
    return group


def create_group(session: Session, actor: Actor, profile: Mapping[str, Any]) -> t.Group:
    """A new OKTA_GROUP; names are unique case-insensitively among OKTA_GROUPs."""
    clean = profiles.validate_group_profile(profile)
    now = clock.utcnow()
    group = t.Group(
        id=ids.new_id("00g"),
        type=OKTA_GROUP,
        name_scope=OKTA_SCOPE,
        app_id=None,
        external_id=None,
        created=now,
        last_updated=now,
        last_membership_updated=now,
    )
    _set_group_profile(group, clean)
    session.add(group)
    _flush_unique(session, NAME_TAKEN)
    _log(session, actor, "group.lifecycle.create", "Create okta group", _group_target(group))
    push_rules.apply_to_group(session, group.id)
    return group


def _set_group_profile(group: t.Group, profile: dict[str, Any]) -> None:
    group.profile = profile
    group.name = profile["name"]
    group.name_lower = profile["name"].lower()
    group.description = profile.get("description")


def replace_group(
    session: Session, actor: Actor, group_id: str, profile: Mapping[str, Any]
) -> t.Group:
    """Okta's PUT: the profile is replaced; a rename reaches push rules and pushed groups."""
    group = find_group(session, group_id, lock=True)
    if group.type != OKTA_GROUP:
        cause = f"profile: the profile of a {group.type} cannot be changed"
        raise InvalidRequest("Api validation failed: profile", [cause])
    clean = profiles.validate_group_profile(profile)
    if clean == group.profile:
        return group
    sources.check_group_change(session, actor, group, "profile")
    renamed = clean["name"] != group.name
    old_name = group.name
    _set_group_profile(group, clean)
    group.last_updated = clock.utcnow()
    _flush_unique(session, NAME_TAKEN)
    _log(session, actor, "group.profile.update", "Update group profile", _group_target(group))
    if renamed:
        outbox.enqueue_membership_readers(session, group.id, None, names=(old_name, group.name))
        rule_evaluation.group_renamed(session, group.id)
        push_rules.apply_to_group(session, group.id)
        outbox.enqueue_push_for_group(session, group.id)
    return group


def delete_group(session: Session, actor: Actor, group_id: str) -> None:
    """Delete a group: its members' accounts and its push mappings are re-examined, the
    mappings it sources are paused (INACTIVE), memberships go with it."""
    group = find_group(session, group_id, lock=True)
    if group.type == BUILT_IN:
        raise Forbidden("Built-in groups cannot be deleted")
    sources.check_group_change(session, actor, group, "group")
    if group.type == APP_GROUP and _is_push_target(session, group.id):
        cause = "This app group is the target of a group push mapping and cannot be deleted"
        raise InvalidRequest("Api validation failed: " + cause, [f"groupId: {cause}"])
    outbox.enqueue_users_of_app_group(session, group.id)
    outbox.enqueue_push_for_group(session, group.id)
    outbox.enqueue_membership_readers(session, group.id, None, names=(group.name,))
    session.execute(
        update(t.PushMapping)
        .where(t.PushMapping.source_group_id == group.id)
        .values(status=MappingStatus.INACTIVE, last_updated=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    _log(session, actor, "group.lifecycle.delete", "Delete okta group", _group_target(group))
    rule_evaluation.group_deleted(session, group.id, group.name)
    session.execute(delete(t.Group).where(t.Group.id == group.id))
    session.expunge(group)


def _is_push_target(session: Session, group_id: str) -> bool:
    query = select(exists().where(t.PushMapping.target_group_id == group_id))
    return bool(session.execute(query).scalar())


def _group_attribute(name: str) -> Attribute | None:
    fixed: dict[str, Attribute] = {
        "id": ExactAttribute(t.Group.id),
        "type": ExactAttribute(t.Group.type, upper=True),
        "created": TimeAttribute(t.Group.created),
        "lastUpdated": TimeAttribute(t.Group.last_updated),
        "lastMembershipUpdated": TimeAttribute(t.Group.last_membership_updated),
        "profile.name": TextAttribute(t.Group.name_lower, lowered=True),
        "profile.description": TextAttribute(t.Group.description),
    }
    if name in fixed:
        return fixed[name]
    prefix, _, attribute = name.partition(".")
    if prefix == "profile" and attribute and "." not in attribute:
        return TextAttribute(json_text(t.Group.profile, attribute))
    return None


def groups_query(
    *, filter: str | None = None, search: str | None = None, q: str | None = None
) -> Select[t.Group]:
    query = select(t.Group)
    for text in (filter, search):
        condition = where(text, _group_attribute)
        if condition is not None:
            query = query.where(condition)
    prefix = _text_param("q", q)
    if prefix:
        query = query.where(t.Group.name_lower.startswith(prefix.lower(), autoescape=True))
    return query


# --- Memberships ------------------------------------------------------------------------------


def _insert_membership(
    session: Session, actor: Actor, group: t.Group, user: t.User, now: datetime
) -> bool:
    """Insert one manual membership (idempotent, race-safe); True when it is new. A membership
    a rule holds becomes manual too, so it outlives the rule."""
    statement = (
        _insert(session)(t.Membership)
        .values(group_id=group.id, user_id=user.id, created=now, manual=True)
        .on_conflict_do_nothing()
        .returning(t.Membership.user_id)
    )
    if session.execute(statement).first() is None:
        session.execute(
            update(t.Membership)
            .where(
                t.Membership.group_id == group.id,
                t.Membership.user_id == user.id,
                t.Membership.manual.is_(False),
            )
            .values(manual=True)
            .execution_options(synchronize_session=False)
        )
        return False
    group.last_membership_updated = now
    targets = (_user_target(user), _group_target(group))
    _log(session, actor, "group.user_membership.add", "Add user to group membership", *targets)
    return True


def add_member(session: Session, actor: Actor, group_id: str, user_key: str) -> None:
    """Okta's PUT membership (idempotent): only a new membership is logged and enqueued."""
    group = _editable_group(session, group_id)
    sources.check_group_change(session, actor, group, "members")
    user = find_user(session, user_key)
    if _insert_membership(session, actor, group, user, clock.utcnow()):
        outbox.enqueue_membership_change(session, group.id, [user.id])  # flushes the group first
        rule_evaluation.evaluate_user(session, user, actor)


def remove_member(session: Session, actor: Actor, group_id: str, user_key: str) -> None:
    """Okta's DELETE membership; removing a non-member is a quiet success. Only the manual
    part goes: a membership a group rule holds stays (no longer manual)."""
    group = _editable_group(session, group_id)
    sources.check_group_change(session, actor, group, "members")
    user = find_user(session, user_key)
    pair = (t.Membership.group_id == group.id, t.Membership.user_id == user.id)
    held = exists().where(
        t.GroupRuleMember.group_id == t.Membership.group_id,
        t.GroupRuleMember.user_id == t.Membership.user_id,
    )
    session.execute(
        update(t.Membership)
        .where(*pair, held)
        .values(manual=False)
        .execution_options(synchronize_session=False)
    )
    removed = session.execute(
        delete(t.Membership).where(*pair, ~held).returning(t.Membership.user_id)
    ).first()
    if removed is None:
        return
    group.last_membership_updated = clock.utcnow()  # flushed by the enqueue below
    targets = (_user_target(user), _group_target(group))
    message = "Remove user from group membership"
    _log(session, actor, "group.user_membership.remove", message, *targets)
    outbox.enqueue_membership_change(session, group.id, [user.id])
    rule_evaluation.evaluate_user(session, user, actor)


def group_members_query(session: Session, group_id: str) -> Select[t.User]:
    group = find_group(session, group_id)
    return (
        select(t.User)
        .join(t.Membership, t.Membership.user_id == t.User.id)
        .where(t.Membership.group_id == group.id, t.User.status != DELETED)
    )


# --- Many people at once (imports) ------------------------------------------------------------


@dataclass(frozen=True)
class ImportedUser:
    """One person of an import batch: created when ``user`` is None (``profile`` whole), else
    ``profile`` holds the attributes to change (merged, like Okta's POST)."""

    profile: Mapping[str, Any]
    user: t.User | None = None
    activate: bool = True
    #: OKTA_GROUPs to add the person to (memberships they already hold are left alone).
    groups: Sequence[t.Group] = ()
    #: A lifecycle action to run after the profile and memberships are written.
    action: Action | None = None
    #: ``profile`` is already the result of ``profiles.validate_user_profile`` (a new person's
    #: whole profile, or an update's merged one), so it is not validated again.
    validated: bool = False


@dataclass(frozen=True)
class _Written:
    """A person an import wrote: what its events and memberships name."""

    id: str
    login: str
    profile: Mapping[str, Any]


def import_users(session: Session, actor: Actor, people: Sequence[ImportedUser]) -> list[str]:
    """Create, update, add to groups and move through the lifecycle many people in the
    caller's transaction, with the rows, events and keys of :func:`create_user`,
    :func:`update_user`, :func:`add_member` and :func:`change_status`, but one flush, one
    multi-row insert of the new people and one set-based enqueue per kind of change instead of
    several statements per person. The people's ids, in order.

    A taken login raises InvalidRequest: the caller rolls the whole batch back.
    """
    now = clock.utcnow()
    written: list[_Written] = []
    new_rows: list[dict[str, Any]] = []
    events: list[Pending] = []
    touched: set[str] = set()
    fresh = iter(ids.new_ids("00u", sum(1 for person in people if person.user is None)))
    for person in people:
        if person.user is None:
            row = _new_imported_user(person, next(fresh), now)
            new_rows.append(row)
            written.append(_Written(row["id"], row["login"], row["profile"]))
            target = _user_target(written[-1])
            events.append(Pending("user.lifecycle.create", "Create Okta user", (target,)))
            if person.activate:
                events.append(Pending("user.lifecycle.activate", "Activate Okta user", (target,)))
        else:
            user = person.user
            if _merge_imported_profile(user, person, now, events):
                touched.add(user.id)
            written.append(_Written(user.id, user.login, user.profile))
    _flush_unique(session, LOGIN_TAKEN)
    if new_rows:
        try:
            session.execute(insert(_USERS), new_rows)
        except IntegrityError as exc:
            raise InvalidRequest("Api validation failed: " + LOGIN_TAKEN, [LOGIN_TAKEN]) from exc
    touched |= _import_memberships(session, people, written, now, events)
    record_many(session, actor, events)
    if touched:
        # After the memberships: a user's keys then include the apps and push mappings of
        # the groups they just joined (what enqueue_membership_change would name).
        outbox.enqueue_users(session, sorted(touched))
    if rule_evaluation.active_rules(session).ordered:
        for user in _users_of(session, people, written):
            rule_evaluation.evaluate_user(session, user, actor)
    for person in people:
        if person.user is not None and person.action is not None:
            _apply_action(session, actor, person.user, person.action)
    return [person.id for person in written]


def _users_of(
    session: Session, people: Sequence[ImportedUser], written: Sequence[_Written]
) -> list[t.User]:
    """The batch's people as ORM objects (the new ones loaded in one query)."""
    created = [w.id for person, w in zip(people, written, strict=True) if person.user is None]
    loaded: dict[str, t.User] = {}
    for start in range(0, len(created), 500):
        query = select(t.User).where(any_of(t.User.id, created[start : start + 500]))
        loaded.update((user.id, user) for user in session.execute(query).scalars())
    return [
        person.user if person.user is not None else loaded[w.id]
        for person, w in zip(people, written, strict=True)
    ]


def _new_imported_user(person: ImportedUser, user_id: str, now: datetime) -> dict[str, Any]:
    """The row of a new person (see :func:`create_user`), for a multi-row insert."""
    status = lifecycle.initial_status(activate=person.activate, has_password=False)
    profile = (
        dict(person.profile) if person.validated else profiles.validate_user_profile(person.profile)
    )
    return {
        "id": user_id,
        "status": status,
        "login": profile["login"],
        "login_lower": profile["login"].lower(),
        "email_lower": profile["email"].lower(),
        "profile": profile,
        "password_hash": None,
        "created": now,
        "activated": now if status == Status.ACTIVE else None,
        "status_changed": now if person.activate else None,
        "last_login": None,
        "last_updated": now,
        "password_changed": None,
        "source_id": None,
        "source_document": None,
    }


def _merge_imported_profile(
    user: t.User, person: ImportedUser, now: datetime, events: list[Pending]
) -> bool:
    new = (
        dict(person.profile)
        if person.validated
        else profiles.validate_user_profile(profiles.merge(user.profile, person.profile))
    )
    old = user.profile
    names = sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
    if not names:
        return False
    _set_identity(user, new)
    user.last_updated = now
    debug = {"changedAttributes": ",".join(names)}
    message = "Update user profile for Okta"
    events.append(Pending("user.account.update_profile", message, (_user_target(user),), debug))
    return True


def _import_memberships(
    session: Session,
    people: Sequence[ImportedUser],
    users: Sequence[_Written],
    now: datetime,
    events: list[Pending],
) -> set[str]:
    """Add the batch's memberships in one multi-row insert; the users who joined a group
    (a new person holds no membership yet: only the others' are looked up)."""
    wanted = {
        (group.id, user.id): (group, user)
        for person, user in zip(people, users, strict=True)
        for group in person.groups
    }
    if not wanted:
        return set()
    for group, _ in wanted.values():
        if group.type != OKTA_GROUP:
            cause = f"Group memberships of a {group.type} cannot be changed"
            raise InvalidRequest("Api validation failed: " + cause, [f"groupId: {cause}"])
    held: dict[tuple[str, str], bool] = {}
    user_ids = sorted(
        {user.id for person, user in zip(people, users, strict=True) if person.user is not None}
    )
    for start in range(0, len(user_ids), 500):
        rows = session.execute(
            select(t.Membership.group_id, t.Membership.user_id, t.Membership.manual).where(
                any_of(t.Membership.user_id, user_ids[start : start + 500])
            )
        ).all()
        held.update({(g, u): bool(manual) for g, u, manual in rows})
    new = [pair for pair in wanted if pair not in held]
    by_rule = [pair for pair in wanted if held.get(pair) is False]
    if new:
        session.execute(
            insert(_MEMBERSHIPS),
            [{"group_id": g, "user_id": u, "created": now, "manual": True} for g, u in new],
        )
    for group_id, user_id in by_rule:
        session.execute(
            update(t.Membership)
            .where(t.Membership.group_id == group_id, t.Membership.user_id == user_id)
            .values(manual=True)
            .execution_options(synchronize_session=False)
        )
    message = "Add user to group membership"
    joined = {group_id for group_id, _ in new}
    for group in {group.id: group for group, _ in wanted.values()}.values():
        if group.id in joined:
            group.last_membership_updated = now
    for pair in new:
        group, user = wanted[pair]
        targets = (_user_target(user), _group_target(group))
        events.append(Pending("group.user_membership.add", message, targets))
    return {user_id for _, user_id in new}
