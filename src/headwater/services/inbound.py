"""Inbound SCIM use cases: a source's Users and Groups, read and written through the directory.

Every write goes through ``services.directory`` on behalf of the source (its actor), so it is
logged, evaluated by group rules and enqueues the downstream keys it can affect in the same
transaction, like any other write. A source sees and changes only what it masters. Filters are
parsed by ``scim2-models``' grammar and translated to SQL here (nothing is filtered in
memory); sorting and paging are SQL too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim2_models import (
    Group,
    InvalidFilterException,
    InvalidValueException,
    PreconditionFailedException,
    ScimFilter,
)
from scim2_models.path import (
    AttrPath,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import ColumnElement, Select, and_, exists, func, not_, or_, select, true
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.domain import inbound
from headwater.domain.inbound import CORE_GROUP, CORE_USER, ENTERPRISE_USER, UserModel
from headwater.domain.lifecycle import DELETED, Action, Status
from headwater.services import directory, sources
from headwater.services.filtering import (
    Attribute,
    ExactAttribute,
    TextAttribute,
    TimeAttribute,
    json_text,
)

__all__ = [
    "MAX_FILTER_LENGTH",
    "Page",
    "create_group",
    "create_user",
    "delete_group",
    "delete_user",
    "find_group",
    "find_user",
    "group_resource",
    "list_groups",
    "list_users",
    "patch_group",
    "patch_user",
    "replace_group",
    "replace_user",
    "user_resource",
    "version_of",
]

MAX_FILTER_LENGTH = 4096
MAX_FILTER_TERMS = 50
#: Members one write may name.
MAX_MEMBERS = 10_000
DEFAULT_COUNT = 100
_INACTIVE = (Status.STAGED, Status.DEPROVISIONED, Status.SUSPENDED)


# --- Rendering --------------------------------------------------------------------------------


def version_of(*parts: object) -> str:
    """A weak ETag that changes with every write of the resource."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def _user_version(user: t.User) -> str:
    return version_of(user.id, clock.as_utc(user.last_updated).isoformat(), user.status)


def _group_version(group: t.Group) -> str:
    membership = group.last_membership_updated
    moment = clock.as_utc(membership).isoformat() if membership else ""
    return version_of(group.id, clock.as_utc(group.last_updated).isoformat(), moment)


def _meta(kind: str, location: str, created: datetime, modified: datetime, version: str) -> Any:
    return {
        "resourceType": kind,
        "created": clock.as_utc(created).isoformat().replace("+00:00", "Z"),
        "lastModified": clock.as_utc(modified).isoformat().replace("+00:00", "Z"),
        "location": location,
        "version": version,
    }


def user_resource(user: t.User, base: str) -> dict[str, Any]:
    """The user as the source sees it: what it wrote, with the directory's id, status (as
    ``active``) and login."""
    document = dict(user.source_document or {})
    schemas = [CORE_USER] + ([ENTERPRISE_USER] if ENTERPRISE_USER in document else [])
    document.update(
        {
            "schemas": schemas,
            "id": user.id,
            "userName": user.login,
            "active": user.status not in _INACTIVE,
            "meta": _meta(
                "User",
                f"{base}/Users/{user.id}",
                user.created,
                user.last_updated,
                _user_version(user),
            ),
        }
    )
    return document


def group_resource(
    session: Session, group: t.Group, base: str, *, members: bool = True
) -> dict[str, Any]:
    document = dict(group.source_document or {})
    document.update(
        {
            "schemas": [CORE_GROUP],
            "id": group.id,
            "displayName": group.name,
            "meta": _meta(
                "Group",
                f"{base}/Groups/{group.id}",
                group.created,
                group.last_updated,
                _group_version(group),
            ),
        }
    )
    if members:
        ids = _member_ids(session, group.id)
        if ids:
            document["members"] = [
                {"value": user_id, "$ref": f"{base}/Users/{user_id}", "type": "User"}
                for user_id in ids
            ]
    return document


def _member_ids(session: Session, group_id: str) -> list[str]:
    query = (
        select(t.Membership.user_id)
        .join(t.User, t.User.id == t.Membership.user_id)
        .where(t.Membership.group_id == group_id, t.User.status != DELETED)
        .order_by(t.Membership.user_id)
    )
    return list(session.execute(query).scalars())


# --- Lookups and preconditions ----------------------------------------------------------------


def find_user(session: Session, source: t.Source, user_id: str, *, lock: bool = False) -> t.User:
    """One of the source's users; others do not exist for it (404)."""
    user = directory.find_user(session, user_id, lock=lock) if len(user_id) <= 32 else None
    if user is None or user.id != user_id or user.source_id != source.id:
        raise _not_found("User", user_id)
    return user


def find_group(session: Session, source: t.Source, group_id: str, *, lock: bool = False) -> t.Group:
    group = directory.find_group(session, group_id, lock=lock)
    if group.source_id != source.id:
        raise _not_found("Group", group_id)
    return group


def _not_found(kind: str, key: str) -> Any:
    from headwater.errors import NotFound

    return NotFound(f"{kind} {key[:64]} not found")


def _check_version(if_match: str | None, current: str) -> None:
    """``If-Match`` (RFC 7644 §3.14): the write happens only on the version the client read."""
    if if_match is None:
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" not in wanted and current not in wanted and current.removeprefix("W/") not in wanted:
        raise PreconditionFailedException(detail=f"the resource changed; its version is {current}")


# --- Users ------------------------------------------------------------------------------------


def _profile_for(user: UserModel, current: Mapping[str, Any]) -> dict[str, Any]:
    """The source's attributes over what it does not master (custom attributes stay)."""
    kept = {
        key: value for key, value in current.items() if key not in inbound.MASTERED_USER_ATTRIBUTES
    }
    return {**kept, **inbound.profile_of(user)}


def create_user(session: Session, source: t.Source, body: Any) -> t.User:
    parsed = inbound.parse_user(body)
    actor = sources.actor_of(source)
    active = parsed.active is not False
    user = directory.create_user(session, actor, _profile_for(parsed, {}), activate=active)
    user.source_id = source.id
    user.source_document = inbound.stored(parsed)
    session.flush()
    return user


def _write_user(session: Session, source: t.Source, user: t.User, parsed: UserModel) -> t.User:
    actor = sources.actor_of(source)
    active = parsed.active is not False
    if not active:
        # The profile first, then the lifecycle: a deactivation is the last word.
        directory.update_user(
            session, actor, user.id, _profile_for(parsed, user.profile), replace=True
        )
        _set_active(session, actor, user, active=False)
    else:
        _set_active(session, actor, user, active=True)
        directory.update_user(
            session, actor, user.id, _profile_for(parsed, user.profile), replace=True
        )
    document = inbound.stored(parsed)
    if document != user.source_document:
        user.source_document = document
        user.last_updated = clock.utcnow()
    session.flush()
    return user


def _set_active(session: Session, actor: Any, user: t.User, *, active: bool) -> None:
    """``active`` follows the directory lifecycle: false deactivates (and so deprovisions
    downstream, memberships first), true activates or unsuspends."""
    status = Status(user.status)
    action: Action | None = None
    if active and status in (Status.STAGED, Status.DEPROVISIONED):
        action = Action.ACTIVATE
    elif active and status == Status.SUSPENDED:
        action = Action.UNSUSPEND
    elif not active and status != Status.DEPROVISIONED and status != Status.STAGED:
        action = Action.DEACTIVATE
    if action is not None:
        directory.change_status(session, actor, user.id, action)


def replace_user(
    session: Session, source: t.Source, user_id: str, body: Any, if_match: str | None
) -> t.User:
    user = find_user(session, source, user_id, lock=True)
    _check_version(if_match, _user_version(user))
    return _write_user(session, source, user, inbound.parse_user(body))


def patch_user(
    session: Session, source: t.Source, user_id: str, body: Any, if_match: str | None
) -> t.User:
    user = find_user(session, source, user_id, lock=True)
    _check_version(if_match, _user_version(user))
    current = inbound.parse_user(user_resource(user, ""))
    if not inbound.apply_patch(current, body):
        return user
    return _write_user(session, source, user, current)


def delete_user(session: Session, source: t.Source, user_id: str, if_match: str | None) -> None:
    """Deactivate (deprovisioning downstream), then delete: the user is gone for SCIM at once
    and the engine cleans up downstream before the row is purged."""
    user = find_user(session, source, user_id, lock=True)
    _check_version(if_match, _user_version(user))
    actor = sources.actor_of(source)
    if user.status != Status.DEPROVISIONED:
        directory.change_status(session, actor, user.id, Action.DEACTIVATE)
    directory.delete_user(session, actor, user.id)


# --- Groups -----------------------------------------------------------------------------------


def _wanted_members(session: Session, source: t.Source, group: Group) -> list[str]:
    values = [member.value for member in group.members or [] if member.value]
    unique = list(dict.fromkeys(values))
    if len(unique) > MAX_MEMBERS:
        raise InvalidValueException(detail=f"members: at most {MAX_MEMBERS} in one request")
    found = set(
        session.execute(
            select(t.User.id).where(
                t.User.id.in_(unique), t.User.source_id == source.id, t.User.status != DELETED
            )
        ).scalars()
    )
    missing = [value for value in unique if value not in found]
    if missing:
        raise InvalidValueException(detail=f"members: no user {missing[0][:64]} in this source")
    return unique


def _set_members(session: Session, source: t.Source, group: t.Group, wanted: Iterable[str]) -> None:
    actor = sources.actor_of(source)
    desired = set(wanted)
    current = set(_member_ids(session, group.id))
    for user_id in sorted(desired - current):
        directory.add_member(session, actor, group.id, user_id)
    for user_id in sorted(current - desired):
        directory.remove_member(session, actor, group.id, user_id)


def create_group(session: Session, source: t.Source, body: Any) -> t.Group:
    parsed = inbound.parse_group(body)
    wanted = _wanted_members(session, source, parsed)
    actor = sources.actor_of(source)
    group = directory.create_group(session, actor, {"name": parsed.display_name})
    group.source_id = source.id
    group.source_document = inbound.stored(parsed)
    session.flush()
    _set_members(session, source, group, wanted)
    return group


def _write_group(session: Session, source: t.Source, group: t.Group, parsed: Group) -> t.Group:
    wanted = _wanted_members(session, source, parsed)
    actor = sources.actor_of(source)
    profile = {**group.profile, "name": parsed.display_name}
    directory.replace_group(session, actor, group.id, profile)
    document = inbound.stored(parsed)
    if document != group.source_document:
        group.source_document = document
        group.last_updated = clock.utcnow()
    _set_members(session, source, group, wanted)
    session.flush()
    return group


def replace_group(
    session: Session, source: t.Source, group_id: str, body: Any, if_match: str | None
) -> t.Group:
    group = find_group(session, source, group_id, lock=True)
    _check_version(if_match, _group_version(group))
    return _write_group(session, source, group, inbound.parse_group(body))


def patch_group(
    session: Session, source: t.Source, group_id: str, body: Any, if_match: str | None
) -> t.Group:
    group = find_group(session, source, group_id, lock=True)
    _check_version(if_match, _group_version(group))
    current = inbound.parse_group(group_resource(session, group, ""))
    if not inbound.apply_patch(current, body):
        return group
    return _write_group(session, source, group, current)


def delete_group(session: Session, source: t.Source, group_id: str, if_match: str | None) -> None:
    group = find_group(session, source, group_id, lock=True)
    _check_version(if_match, _group_version(group))
    directory.delete_group(session, sources.actor_of(source), group.id)


# --- Filters, sorting, paging -----------------------------------------------------------------


class _Active:
    """``active``: the directory status, as SCIM shows it."""

    def compare(self, operator: str, value: Any) -> ColumnElement[bool]:
        inactive = t.User.status.in_([s.value for s in _INACTIVE])
        if operator == "pr":
            return true()
        if operator not in ("eq", "ne") or not isinstance(value, bool):
            raise InvalidFilterException(detail="active compares with eq or ne to true or false")
        wanted = value if operator == "eq" else not value
        return not_(inactive) if wanted else inactive


class _Members:
    """``members`` / ``members.value``: groups holding a user."""

    def compare(self, operator: str, value: Any) -> ColumnElement[bool]:
        held = exists().where(t.Membership.group_id == t.Group.id)
        if operator == "pr":
            return held
        if operator != "eq" or not isinstance(value, str):
            raise InvalidFilterException(detail="members compares with eq to a user id")
        return exists().where(t.Membership.group_id == t.Group.id, t.Membership.user_id == value)


def _profile(name: str) -> TextAttribute:
    return TextAttribute(json_text(t.User.profile, name))


_USER_ATTRIBUTES: dict[str, Any] = {
    "id": ExactAttribute(t.User.id),
    "username": TextAttribute(t.User.login_lower, lowered=True),
    "externalid": ExactAttribute(json_text(t.User.source_document, "externalId")),
    "emails": TextAttribute(t.User.email_lower, lowered=True),
    "emails.value": TextAttribute(t.User.email_lower, lowered=True),
    "active": _Active(),
    "displayname": _profile("displayName"),
    "nickname": _profile("nickName"),
    "title": _profile("title"),
    "usertype": _profile("userType"),
    "locale": _profile("locale"),
    "preferredlanguage": _profile("preferredLanguage"),
    "timezone": _profile("timezone"),
    "name.givenname": _profile("firstName"),
    "name.familyname": _profile("lastName"),
    "name.middlename": _profile("middleName"),
    "meta.created": TimeAttribute(t.User.created),
    "meta.lastmodified": TimeAttribute(t.User.last_updated),
}
_ENTERPRISE_ATTRIBUTES: dict[str, Any] = {
    "employeenumber": _profile("employeeNumber"),
    "costcenter": _profile("costCenter"),
    "organization": _profile("organization"),
    "division": _profile("division"),
    "department": _profile("department"),
    "manager.value": _profile("managerId"),
    "manager": _profile("managerId"),
}
_GROUP_ATTRIBUTES: dict[str, Any] = {
    "id": ExactAttribute(t.Group.id),
    "displayname": TextAttribute(t.Group.name_lower, lowered=True),
    "externalid": ExactAttribute(json_text(t.Group.source_document, "externalId")),
    "members": _Members(),
    "members.value": _Members(),
    "meta.created": TimeAttribute(t.Group.created),
    "meta.lastmodified": TimeAttribute(t.Group.last_updated),
}

#: Sortable attributes: a column each.
_USER_SORT: dict[str, Any] = {
    "id": t.User.id,
    "username": t.User.login_lower,
    "emails": t.User.email_lower,
    "emails.value": t.User.email_lower,
    "displayname": json_text(t.User.profile, "displayName"),
    "name.givenname": json_text(t.User.profile, "firstName"),
    "name.familyname": json_text(t.User.profile, "lastName"),
    "externalid": json_text(t.User.source_document, "externalId"),
    "meta.created": t.User.created,
    "meta.lastmodified": t.User.last_updated,
}
_GROUP_SORT: dict[str, Any] = {
    "id": t.Group.id,
    "displayname": t.Group.name_lower,
    "externalid": json_text(t.Group.source_document, "externalId"),
    "meta.created": t.Group.created,
    "meta.lastmodified": t.Group.last_updated,
}


@dataclass(frozen=True)
class _Resolver:
    core: str
    attributes: Mapping[str, Any]
    extension: Mapping[str, Any]

    def __call__(self, path: AttrPath, prefix: str = "") -> Attribute:
        name = (prefix + str(path.attr) + (f".{path.sub_attr}" if path.sub_attr else "")).lower()
        uri = (path.uri or "").lower()
        table = self.attributes
        if uri == ENTERPRISE_USER.lower():
            table = self.extension
        elif uri and uri != self.core.lower():
            raise InvalidFilterException(detail=f"unknown schema {path.uri}")
        attribute = table.get(name)
        if attribute is None:
            raise InvalidFilterException(detail=f"attribute {name} is not filterable")
        return attribute  # type: ignore[no-any-return]


_USERS = _Resolver(CORE_USER, _USER_ATTRIBUTES, _ENTERPRISE_ATTRIBUTES)
_GROUPS = _Resolver(CORE_GROUP, _GROUP_ATTRIBUTES, {})


def _parse_filter(text: str) -> FilterNode:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilterException(detail=f"a filter has at most {MAX_FILTER_LENGTH} characters")
    try:
        tree = ScimFilter(text).ast
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidFilterException(detail=f"not a SCIM filter: {exc}"[:300]) from exc
    if str(tree).count(" ") > MAX_FILTER_TERMS * 4:
        raise InvalidFilterException(detail=f"a filter has at most {MAX_FILTER_TERMS} terms")
    return tree


def _condition(
    node: FilterNode, resolve: _Resolver, prefix: str = "", depth: int = 0
) -> ColumnElement[bool]:
    if depth > 16:
        raise InvalidFilterException(detail="the filter is nested too deeply")
    if isinstance(node, LogicalExpr):
        parts = [_condition(term, resolve, prefix, depth + 1) for term in node.terms]
        return and_(*parts) if node.op == LogicalOperator.and_ else or_(*parts)
    if isinstance(node, Not):
        return not_(_condition(node.expr, resolve, prefix, depth + 1))
    if isinstance(node, Present):
        return resolve(node.attr_path, prefix).compare("pr", None)
    if isinstance(node, Comparison):
        value = node.value
        return resolve(node.attr_path, prefix).compare(node.op.value, value)
    if isinstance(node, ValuePath) and not prefix and node.sub_attr is None:
        return _condition(node.val_filter, resolve, f"{node.attr_path.attr}.", depth + 1)
    raise InvalidFilterException(detail=f"unsupported filter {str(node)[:100]}")


def _translate(text: str | None, resolve: _Resolver) -> ColumnElement[bool] | None:
    if text is None or not text.strip():
        return None
    tree = _parse_filter(text)
    try:
        return _condition(tree, resolve)
    except InvalidFilterException:
        raise
    except Exception as exc:  # a value of the wrong type for its attribute
        raise InvalidFilterException(detail=str(exc)[:300]) from exc


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    rows: list[Any]


def _page(
    session: Session,
    query: Select[Any],
    order: Mapping[str, Any],
    sort_by: str | None,
    descending: bool,
    start_index: int,
    count: int | None,
    key: Any,
) -> Page:
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    size = DEFAULT_COUNT if count is None else max(0, min(count, inbound.MAX_RESULTS))
    start = max(1, start_index)
    if size == 0:
        return Page(total, start, [])
    column = key
    if sort_by:
        column = order.get(sort_by.lower())
        if column is None:
            raise InvalidValueException(detail=f"sortBy: {sort_by[:64]} is not sortable")
    ordering = [column.desc() if descending else column.asc(), key]
    rows = session.execute(query.order_by(*ordering).offset(start - 1).limit(size)).scalars()
    return Page(total, start, list(rows))


def list_users(
    session: Session,
    source: t.Source,
    *,
    filter: str | None,
    sort_by: str | None = None,
    descending: bool = False,
    start_index: int = 1,
    count: int | None = None,
) -> Page:
    query = select(t.User).where(t.User.source_id == source.id, t.User.status != DELETED)
    condition = _translate(filter, _USERS)
    if condition is not None:
        query = query.where(condition)
    return _page(session, query, _USER_SORT, sort_by, descending, start_index, count, t.User.id)


def list_groups(
    session: Session,
    source: t.Source,
    *,
    filter: str | None,
    sort_by: str | None = None,
    descending: bool = False,
    start_index: int = 1,
    count: int | None = None,
) -> Page:
    query = select(t.Group).where(t.Group.source_id == source.id)
    condition = _translate(filter, _GROUPS)
    if condition is not None:
        query = query.where(condition)
    return _page(session, query, _GROUP_SORT, sort_by, descending, start_index, count, t.Group.id)
