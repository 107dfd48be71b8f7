"""Group Push mapping use-cases: create (by name or by app group), list, activate, deactivate,
unlink (keeping or deleting the downstream group) and push now.

Every function works in the caller's unit of work, records the event Okta would, and enqueues
the mapping's reconcile key in the same transaction; the engine does the downstream work. A
mapping whose deletion is under way (``delete_requested``) no longer exists as far as the API
is concerned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.states import GroupType, KeyKind, MappingStatus
from headwater.domain.storable import check_text
from headwater.errors import GroupPushError, InvalidRequest, NotFound
from headwater.services.apps import get_app
from headwater.services.validation import plausible_id

__all__ = [
    "ACTIVE",
    "ERROR",
    "INACTIVE",
    "MappingFilter",
    "MappingSpec",
    "add_mapping",
    "create_mapping",
    "delete_mapping",
    "get_mapping",
    "mapping_target",
    "mappings_query",
    "push_now",
    "pushed_names",
    "request_deletion_values",
    "set_status",
]

ACTIVE, INACTIVE, ERROR = MappingStatus.ACTIVE, MappingStatus.INACTIVE, MappingStatus.ERROR
STATUSES = (ACTIVE, INACTIVE, ERROR)
OKTA_GROUP, APP_GROUP = GroupType.OKTA_GROUP, GroupType.APP_GROUP
MAX_NAME = 255
MAX_ID = 64
EVENT_PREFIX = "application.provision.group_push"


@dataclass(frozen=True)
class MappingSpec:
    """A mapping as requested: exactly one of ``target_group_name`` and ``target_group_id``."""

    source_group_id: str
    target_group_name: str | None = None
    target_group_id: str | None = None
    status: str = ACTIVE


@dataclass(frozen=True)
class MappingFilter:
    source_group_id: str | None = None
    status: str | None = None
    #: Mappings updated at or after this instant.
    last_updated: datetime | None = None


def _invalid(cause: str) -> InvalidRequest:
    return InvalidRequest("Api validation failed: " + cause, [cause])


def mapping_target(mapping: t.PushMapping) -> Target:
    return Target(mapping.id, "GroupPushMapping", mapping.id, mapping.target_group_name)


def _log(
    session: Session, actor: Actor, event_type: str, message: str, mapping: t.PushMapping
) -> None:
    app_target = Target(mapping.app_id, "AppInstance")
    targets = [mapping_target(mapping), app_target]
    if mapping.source_group_id:
        targets.append(Target(mapping.source_group_id, "UserGroup"))
    events.record(session, event_type, message, actor=actor, targets=targets)


def _enqueue(session: Session, mapping: t.PushMapping) -> None:
    outbox.enqueue_keys(session, [(mapping.app_id, KeyKind.PUSH, mapping.id)])


# --- Reading -----------------------------------------------------------------------------------


def get_mapping(
    session: Session, app_id: str, mapping_id: str, *, lock: bool = False
) -> t.PushMapping:
    """A visible mapping of the app, or 404 (mappings being deleted are gone already)."""
    mapping = (
        session.get(t.PushMapping, mapping_id, with_for_update=lock)
        if plausible_id(mapping_id)
        else None
    )
    if mapping is None or mapping.app_id != app_id or mapping.delete_requested:
        raise NotFound(f"Not found: Resource not found: {mapping_id} (GroupPushMapping)")
    return mapping


def mappings_query(session: Session, app_id: str, filters: MappingFilter) -> Select[t.PushMapping]:
    """The app's visible mappings, filtered as Okta's list filters them."""
    get_app(session, app_id)
    query = select(t.PushMapping).where(
        t.PushMapping.app_id == app_id, t.PushMapping.delete_requested == false()
    )
    if filters.source_group_id is not None:
        wanted = filters.source_group_id if plausible_id(filters.source_group_id) else None
        query = query.where(t.PushMapping.source_group_id == wanted)
    if filters.status is not None:
        if filters.status not in STATUSES:
            raise _invalid("status: must be one of ACTIVE, INACTIVE, ERROR")
        query = query.where(t.PushMapping.status == filters.status)
    if filters.last_updated is not None:
        query = query.where(t.PushMapping.last_updated >= filters.last_updated)
    return query


def pushed_names(session: Session, app_id: str) -> set[str]:
    """Lowercased downstream names the app's mappings push to (a custom name, else the source
    group's name), so two mappings never fight over one downstream group."""
    name = func.coalesce(t.PushMapping.target_group_name, t.Group.name)
    rows = session.execute(
        select(name)
        .select_from(t.PushMapping)
        .outerjoin(t.Group, t.Group.id == t.PushMapping.source_group_id)
        .where(t.PushMapping.app_id == app_id)
    ).scalars()
    return {value.lower() for value in rows if value}


# --- Creating ----------------------------------------------------------------------------------


def add_mapping(
    session: Session,
    app_id: str,
    source_group_id: str,
    *,
    status: str = ACTIVE,
    custom_name: str | None = None,
    target_group_id: str | None = None,
    rule_id: str | None = None,
) -> t.PushMapping:
    """Insert a mapping and enqueue its first (full) push; a second mapping of the same source
    group in the same app is refused, also when two requests race."""
    now = clock.utcnow()
    mapping = t.PushMapping(
        id=ids.new_id("gPm"),
        app_id=app_id,
        source_group_id=source_group_id,
        target_group_id=target_group_id,
        target_group_name=custom_name,
        status=status,
        skipped_count=0,
        full_push=True,
        rule_id=rule_id,
        delete_requested=False,
        delete_target=False,
        created=now,
        last_updated=now,
    )
    try:
        with session.begin_nested():
            session.add(mapping)
    except IntegrityError as exc:
        raise _invalid("sourceGroupId: the group is already pushed to this app") from exc
    _enqueue(session, mapping)
    return mapping


def _source_group(session: Session, group_id: str) -> t.Group:
    group = session.get(t.Group, group_id) if plausible_id(group_id) else None
    if group is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (UserGroup)")
    if group.type != OKTA_GROUP:
        raise _invalid("sourceGroupId: only Okta groups can be pushed")
    return group


def _check_not_mapped(session: Session, app_id: str, group_id: str) -> None:
    existing = session.execute(
        select(t.PushMapping.delete_requested).where(
            t.PushMapping.app_id == app_id, t.PushMapping.source_group_id == group_id
        )
    ).scalar_one_or_none()
    if existing is None:
        return
    if existing:
        raise _invalid("sourceGroupId: the previous mapping of this group is still being deleted")
    raise _invalid("sourceGroupId: the group is already pushed to this app")


def _custom_name(name: str, source: t.Group) -> str | None:
    """A target name equal to the source group's is no custom name: renames then follow it."""
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or check_text(clean):
        raise _invalid(f"targetGroupName: must be 1 to {MAX_NAME} characters of text")
    return None if clean == source.name else clean


def _linkable_app_group(session: Session, app_id: str, group_id: str) -> t.Group:
    group = session.get(t.Group, group_id) if plausible_id(group_id) else None
    if group is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (UserGroup)")
    if group.type != APP_GROUP or group.app_id != app_id or not group.external_id:
        raise _invalid("targetGroupId: must be an app group of this app")
    taken = session.execute(
        select(t.PushMapping.id).where(t.PushMapping.target_group_id == group.id)
    ).first()
    if taken is not None:
        raise GroupPushError("Group push bad request: the app group is already a push target")
    return group


def _target(
    session: Session, app_id: str, source: t.Group, spec: MappingSpec
) -> tuple[str | None, str | None]:
    """(target APP_GROUP id, custom downstream name) from the request's target fields.

    Linking an app group keeps its downstream name (no surprise rename of an existing group).
    """
    if (spec.target_group_name is None) == (spec.target_group_id is None):
        raise _invalid(
            "targetGroupName: exactly one of targetGroupName and targetGroupId is required"
        )
    if spec.target_group_name is not None:
        return None, _custom_name(spec.target_group_name, source)
    assert spec.target_group_id is not None
    group = _linkable_app_group(session, app_id, spec.target_group_id)
    return group.id, (None if group.name == source.name else group.name)


def _check_name_free(session: Session, app_id: str, name: str) -> None:
    if name.lower() in pushed_names(session, app_id):
        raise GroupPushError(f"Group push bad request: another mapping already pushes to {name}")


def create_mapping(session: Session, actor: Actor, app_id: str, spec: MappingSpec) -> t.PushMapping:
    """Okta's create: push ``sourceGroupId`` to a new or existing downstream group."""
    get_app(session, app_id)
    if spec.status not in (ACTIVE, INACTIVE):
        raise _invalid("status: must be ACTIVE or INACTIVE")
    source = _source_group(session, spec.source_group_id)
    _check_not_mapped(session, app_id, source.id)
    target_group_id, custom_name = _target(session, app_id, source, spec)
    _check_name_free(session, app_id, custom_name or source.name)
    mapping = add_mapping(
        session,
        app_id,
        source.id,
        status=spec.status,
        custom_name=custom_name,
        target_group_id=target_group_id,
    )
    _log(session, actor, f"{EVENT_PREFIX}.mapping.created", "Group push mapping created", mapping)
    return mapping


# --- Changing ----------------------------------------------------------------------------------


def set_status(
    session: Session, actor: Actor, app_id: str, mapping_id: str, status: str
) -> t.PushMapping:
    """ACTIVE replaces the whole downstream membership next; INACTIVE pauses pushing."""
    mapping = get_mapping(session, app_id, mapping_id, lock=True)
    if status == ACTIVE:
        _activate(session, actor, mapping)
    elif status == INACTIVE:
        _deactivate(session, actor, mapping)
    else:
        raise _invalid("status: must be ACTIVE or INACTIVE")
    return mapping


def _activate(session: Session, actor: Actor, mapping: t.PushMapping) -> None:
    if mapping.source_group_id is None:
        raise GroupPushError("Group push bad request: the source group was deleted")
    mapping.status = ACTIVE
    mapping.full_push = True
    mapping.last_updated = clock.utcnow()
    _enqueue(session, mapping)
    _log(
        session, actor, f"{EVENT_PREFIX}.activate_mapping", "Group push mapping activated", mapping
    )


def _deactivate(session: Session, actor: Actor, mapping: t.PushMapping) -> None:
    if mapping.status == INACTIVE:
        return
    mapping.status = INACTIVE
    mapping.last_updated = clock.utcnow()
    message = "Group push mapping deactivated"
    _log(session, actor, f"{EVENT_PREFIX}.deactivate_mapping", message, mapping)


def push_now(session: Session, actor: Actor, app_id: str, mapping_id: str) -> t.PushMapping:
    """Replace the whole downstream membership on the next reconcile (Okta's "Push Now")."""
    mapping = get_mapping(session, app_id, mapping_id, lock=True)
    if mapping.status == INACTIVE:
        raise GroupPushError("Group push bad request: the mapping is INACTIVE")
    mapping.full_push = True
    _enqueue(session, mapping)
    _log(session, actor, "app.headwater.grouppush.push_now", "Full push requested", mapping)
    return mapping


def delete_mapping(
    session: Session, actor: Actor, app_id: str, mapping_id: str, *, delete_target: bool
) -> None:
    """Unlink an INACTIVE mapping. Keeping the downstream group is a directory-only change;
    deleting it is the engine's job (the mapping disappears once the group is gone)."""
    mapping = get_mapping(session, app_id, mapping_id, lock=True)
    if mapping.status != INACTIVE:
        raise GroupPushError("Group push bad request: deactivate the mapping before deleting it")
    if delete_target:
        _request_deletion(session, mapping)
        message = "Group push mapping unlinked; the downstream group will be deleted"
    else:
        _unlink_keeping_group(session, mapping)
        message = "Group push mapping unlinked; the downstream group is kept"
    _log(session, actor, f"{EVENT_PREFIX}.removed", message, mapping)


def request_deletion_values() -> dict[str, object]:
    """Column values that hand a mapping to the engine for deletion with its downstream group."""
    return {
        "status": INACTIVE,
        "delete_requested": True,
        "delete_target": True,
        "last_updated": clock.utcnow(),
    }


def _request_deletion(session: Session, mapping: t.PushMapping) -> None:
    for name, value in request_deletion_values().items():
        setattr(mapping, name, value)
    _enqueue(session, mapping)


def _unlink_keeping_group(session: Session, mapping: t.PushMapping) -> None:
    """The downstream group (and its APP_GROUP row) stays; Headwater stops managing it."""
    session.execute(delete(t.PushMember).where(t.PushMember.mapping_id == mapping.id))
    session.execute(
        delete(t.Task).where(
            t.Task.app_id == mapping.app_id,
            t.Task.kind == KeyKind.PUSH,
            t.Task.subject_id == mapping.id,
        )
    )
    session.delete(mapping)
    session.flush()
