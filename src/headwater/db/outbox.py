"""The reconcile outbox: which keys a change touches, enqueued with set-based SQL.

Keys, not deltas: a row says "(app, kind, subject) may be out of date", nothing more. Every
enqueue is one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` in the caller's transaction, so
assigning a 100k-member group writes its keys in one statement, atomically with the change, and
wakes idle workers when it commits. Claiming and finishing keys is ``leases``' job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    CompoundSelect,
    Insert,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import core
from headwater.db import tables as t
from headwater.db.engine import GROWN_ROWS
from headwater.db.rowsets import any_of
from headwater.domain.expressions import GroupReference
from headwater.domain.states import KeyKind

__all__ = [
    "app_mapping_subjects",
    "app_user_subjects",
    "enqueue_app",
    "enqueue_group_members_for_app",
    "enqueue_keys",
    "enqueue_many_users",
    "enqueue_membership_change",
    "enqueue_membership_readers",
    "enqueue_push_for_app_users",
    "enqueue_push_for_group",
    "enqueue_push_for_users",
    "enqueue_user",
    "enqueue_users",
    "enqueue_users_for_apps",
    "enqueue_users_of_app_group",
    "notify",
    "pending_count",
]

CHANNEL = "headwater_keys"


def _upsert(
    session: Session,
    rows: Select[Any, Any, Any] | list[tuple[str, str, str]],
    *,
    observe: bool,
    delay: float = 0.0,
) -> None:
    """Insert keys (a SELECT of app_id, kind, subject_id, or explicit tuples); keys already
    queued get a new generation, become due now (unless ``delay``) and keep ``observe``."""
    dialect = session.get_bind().dialect.name
    if isinstance(rows, list):
        now = clock.utcnow()
        due = now + timedelta(seconds=delay)
        values = [dict(zip(_COLUMNS, (*key, 1, now, due, 0, observe), strict=True)) for key in rows]
        statement = _on_conflict(_insert_for(dialect)(_QUEUE).values(values), dialect)
        _execute(session, statement, {}, listed=len(rows))
    else:
        _execute_select(session, _upsert_select(dialect, rows), {}, observe=observe, delay=delay)


#: The reconcile key's columns, in the order an upsert writes them.
_COLUMNS = [
    "app_id",
    "kind",
    "subject_id",
    "generation",
    "enqueued_at",
    "not_before",
    "attempts",
    "observe",
]
#: Parameters bound at execution by every ``INSERT ... SELECT`` upsert (beside the source
#: query's own), so one built statement serves every call.
_ENQUEUED_AT, _NOT_BEFORE, _OBSERVE = "hw_enqueued_at", "hw_not_before", "hw_observe"


#: The queue as a table: its upserts run as Core statements (an ORM-enabled INSERT given
#: parameters would be taken for a bulk insert of rows).
_QUEUE = t.ReconcileKey.__table__


def _insert_for(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _on_conflict(statement: Any, dialect: str) -> Insert:
    """A key already queued: a new generation, due at the earlier time, ``observe`` kept."""
    excluded = statement.excluded
    earliest = func.min if dialect == "sqlite" else func.least
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["app_id", "kind", "subject_id"],
        set_={
            "generation": _QUEUE.c.generation + 1,
            "enqueued_at": excluded.enqueued_at,
            "not_before": earliest(_QUEUE.c.not_before, excluded.not_before),
            "attempts": 0,
            "observe": or_(_QUEUE.c.observe, excluded.observe),
        },
    )


def _upsert_select(dialect: str, rows: Select[Any, Any, Any]) -> Insert:
    """``INSERT ... SELECT ... ON CONFLICT`` of the keys ``rows`` selects."""
    sub = rows.subquery()
    source = select(
        sub.c.app_id,
        sub.c.kind,
        sub.c.subject_id,
        literal(1).label("generation"),
        bindparam(_ENQUEUED_AT, type_=t.Timestamp).label("enqueued_at"),
        bindparam(_NOT_BEFORE, type_=t.Timestamp).label("not_before"),
        literal(0).label("attempts"),
        bindparam(_OBSERVE, type_=Boolean).label("observe"),
    )
    # SQLite needs a WHERE clause to parse INSERT ... SELECT ... ON CONFLICT unambiguously.
    source = source.where(true()).distinct()
    return _on_conflict(_insert_for(dialect)(_QUEUE).from_select(_COLUMNS, source), dialect)


def _prepared(build: Callable[[], Select[Any, Any, Any]]) -> Callable[[str], Insert]:
    """The upsert of the keys ``build()`` selects, built once per dialect. For the enqueues
    of everyday changes (a user's, a membership's): building and walking the statement cost
    more than running it, so their values are bound parameters given at execution."""

    @functools.cache
    def statement(dialect: str) -> Insert:
        return _upsert_select(dialect, build())

    return statement


def _execute_prepared(
    session: Session, prepared: Callable[[str], Insert], params: dict[str, Any]
) -> None:
    statement = prepared(session.get_bind().dialect.name)
    _execute_select(session, statement, params, observe=False, delay=0.0)


def _execute_select(
    session: Session, statement: Insert, params: dict[str, Any], *, observe: bool, delay: float
) -> None:
    now = clock.utcnow()
    due = now + timedelta(seconds=delay)
    bound = {**params, _ENQUEUED_AT: now, _NOT_BEFORE: due, _OBSERVE: observe}
    _execute(session, statement, bound, listed=None)


def _execute(
    session: Session, statement: Insert, params: dict[str, Any], *, listed: int | None
) -> None:
    # ``core.execute`` flushes what the session holds unwritten first, as an ORM statement's
    # autoflush would: the keys are selected from rows this transaction may have just changed.
    if session.get_bind().dialect.name != "postgresql":
        core.execute(session, statement, params)
    else:
        # Counted towards refreshing the queue's planner statistics after commit (SQLAlchemy
        # reads an INSERT's row count only when asked to; a VALUES list's rows are the list's).
        result = core.execute(session, statement, params, preserve_rowcount=True)
        written = listed if listed is not None else getattr(result, "rowcount", 0)
        session.info[GROWN_ROWS] = session.info.get(GROWN_ROWS, 0) + max(0, written)
    notify(session)


def _kind(kind: KeyKind) -> Any:
    """A key kind as an SQL string literal (a bare enum would bind its name, not its value)."""
    return literal(kind.value, String)


def _keys(app_id: Any, kind: KeyKind, subject_id: Any) -> Select[Any, Any, Any]:
    return select(app_id.label("app_id"), _kind(kind).label("kind"), subject_id.label("subject_id"))


def enqueue_keys(
    session: Session, keys: list[tuple[str, str, str]], *, observe: bool = False, delay: float = 0.0
) -> None:
    """Enqueue explicit keys (small sets: one user, one mapping)."""
    if not keys:
        return
    _upsert(session, sorted(set(keys)), observe=observe, delay=delay)


def _user_apps() -> Select[Any, Any, Any]:
    user_id = bindparam("user_id", type_=String)
    direct = select(t.AppUserAssignment.app_id.label("app_id")).where(
        t.AppUserAssignment.user_id == user_id
    )
    via_group = (
        select(t.AppGroupAssignment.app_id.label("app_id"))
        .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
        .where(t.Membership.user_id == user_id)
    )
    linked = select(t.AppUserLink.app_id.label("app_id")).where(t.AppUserLink.user_id == user_id)
    apps = direct.union(via_group, linked).subquery()
    return _keys(apps.c.app_id, KeyKind.USER, user_id)


_USER_APPS = _prepared(_user_apps)


def enqueue_user(session: Session, user_id: str) -> None:
    """Every app where the user is assigned or has a recorded account, and every push mapping
    whose source group holds the user: all that a change to this user can affect."""
    _execute_prepared(session, _USER_APPS, {"user_id": user_id})
    enqueue_push_for_users(session, [user_id])


def enqueue_users(session: Session, user_ids: list[str]) -> None:
    """:func:`enqueue_user` for many users at once (an import's batch): one statement for the
    apps and one for the push mappings, whatever the number of users."""
    for start in range(0, len(user_ids), 5000):
        part = user_ids[start : start + 5000]
        direct = select(
            t.AppUserAssignment.app_id.label("app_id"), t.AppUserAssignment.user_id.label("uid")
        ).where(any_of(t.AppUserAssignment.user_id, part))
        via_group = (
            select(t.AppGroupAssignment.app_id.label("app_id"), t.Membership.user_id.label("uid"))
            .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
            .where(any_of(t.Membership.user_id, part))
        )
        linked = select(
            t.AppUserLink.app_id.label("app_id"), t.AppUserLink.user_id.label("uid")
        ).where(any_of(t.AppUserLink.user_id, part))
        pairs = direct.union(via_group, linked).subquery()
        _upsert(session, _keys(pairs.c.app_id, KeyKind.USER, pairs.c.uid), observe=False)
        enqueue_push_for_users(session, part)


def enqueue_users_for_apps(session: Session, app_id: str, user_ids: list[str]) -> None:
    """Keys for some users of one app (direct assignment changes, explicit requests)."""
    enqueue_keys(session, [(app_id, KeyKind.USER, uid) for uid in user_ids])


def enqueue_many_users(session: Session, app_id: str, user_ids: list[str]) -> None:
    """Keys for many users of one app (a mapping change), set-based: ``INSERT ... SELECT`` over
    the users table, thousands of ids per statement (no multi-row VALUES to compile)."""
    for start in range(0, len(user_ids), 5000):
        part = user_ids[start : start + 5000]
        users = _keys(literal(app_id), KeyKind.USER, t.User.id).where(any_of(t.User.id, part))
        _upsert(session, users, observe=False)


def enqueue_users_of_app_group(session: Session, group_id: str, app_id: str | None = None) -> None:
    """Keys for every member of ``group_id`` in every app the group is assigned to (or one app).

    One statement whatever the group's size.
    """
    query = (
        select(
            t.AppGroupAssignment.app_id.label("app_id"),
            _kind(KeyKind.USER).label("kind"),
            t.Membership.user_id.label("subject_id"),
        )
        .join(t.Membership, t.Membership.group_id == t.AppGroupAssignment.group_id)
        .where(t.AppGroupAssignment.group_id == group_id)
    )
    if app_id is not None:
        query = query.where(t.AppGroupAssignment.app_id == app_id)
    _upsert(session, query, observe=False)


def enqueue_group_members_for_app(session: Session, group_id: str, app_id: str) -> None:
    """Keys (app, member) for every member of a group, whether or not the group is assigned
    (used right after an unassignment, when the assignment row is already gone)."""
    query = select(
        literal(app_id).label("app_id"),
        _kind(KeyKind.USER).label("kind"),
        t.Membership.user_id.label("subject_id"),
    ).where(t.Membership.group_id == group_id)
    _upsert(session, query, observe=False)


_PUSH_FOR_GROUP = _prepared(
    lambda: select(
        t.PushMapping.app_id.label("app_id"),
        _kind(KeyKind.PUSH).label("kind"),
        t.PushMapping.id.label("subject_id"),
    ).where(t.PushMapping.source_group_id == bindparam("group_id", type_=String))
)


def enqueue_push_for_group(session: Session, group_id: str) -> None:
    """Every push mapping whose source group is ``group_id``."""
    _execute_prepared(session, _PUSH_FOR_GROUP, {"group_id": group_id})


def _push_for_users() -> Select[Any, Any, Any]:
    user_ids = bindparam("user_ids", type_=String, expanding=True)
    in_source = (
        select(
            t.PushMapping.app_id.label("app_id"),
            _kind(KeyKind.PUSH).label("kind"),
            t.PushMapping.id.label("subject_id"),
        )
        .join(t.Membership, t.Membership.group_id == t.PushMapping.source_group_id)
        .where(any_of(t.Membership.user_id, user_ids))
    )
    pushed = (
        select(
            t.PushMapping.app_id.label("app_id"),
            _kind(KeyKind.PUSH).label("kind"),
            t.PushMapping.id.label("subject_id"),
        )
        .join(t.PushMember, t.PushMember.mapping_id == t.PushMapping.id)
        .where(any_of(t.PushMember.user_id, user_ids))
    )
    both = in_source.union(pushed).subquery()
    return select(both.c.app_id, both.c.kind, both.c.subject_id)


_PUSH_FOR_USERS = _prepared(_push_for_users)


def enqueue_push_for_users(session: Session, user_ids: list[str]) -> None:
    """Every push mapping that holds (or should hold) one of these users."""
    _execute_prepared(session, _PUSH_FOR_USERS, {"user_ids": list(user_ids)})


def enqueue_push_for_app_users(session: Session, app_id: str, user_ids: list[str] | None) -> None:
    """Push mappings of one app that involve these users (or all the app's mappings)."""
    query = select(
        t.PushMapping.app_id.label("app_id"),
        _kind(KeyKind.PUSH).label("kind"),
        t.PushMapping.id.label("subject_id"),
    ).where(t.PushMapping.app_id == app_id)
    if user_ids is not None:
        query = query.where(
            or_(
                exists().where(
                    t.Membership.group_id == t.PushMapping.source_group_id,
                    any_of(t.Membership.user_id, user_ids),
                ),
                exists().where(
                    t.PushMember.mapping_id == t.PushMapping.id,
                    any_of(t.PushMember.user_id, user_ids),
                ),
            )
        )
    _upsert(session, query, observe=False)


def app_user_subjects(app_id: str) -> CompoundSelect[str]:
    """Every user with a key in the app: assigned (directly or by group) or holding an account.

    The set a full reconcile visits; previews plan over the same set."""
    direct = select(t.AppUserAssignment.user_id.label("subject_id")).where(
        t.AppUserAssignment.app_id == app_id
    )
    via_group = (
        select(t.Membership.user_id.label("subject_id"))
        .join(t.AppGroupAssignment, t.AppGroupAssignment.group_id == t.Membership.group_id)
        .where(t.AppGroupAssignment.app_id == app_id)
    )
    linked = select(t.AppUserLink.user_id.label("subject_id")).where(t.AppUserLink.app_id == app_id)
    return direct.union(via_group, linked)


def app_mapping_subjects(app_id: str) -> Select[str]:
    """Every push mapping of the app."""
    return select(t.PushMapping.id.label("subject_id")).where(t.PushMapping.app_id == app_id)


def enqueue_app(session: Session, app_id: str, *, observe: bool = False) -> None:
    """Every key of one app: assigned users (direct or by group), linked users, push mappings.

    ``observe`` asks the reconciler to read the downstream state back (full reconcile).
    """
    users = app_user_subjects(app_id).subquery()
    _upsert(session, _keys(literal(app_id), KeyKind.USER, users.c.subject_id), observe=observe)
    mappings = app_mapping_subjects(app_id).subquery()
    _upsert(session, _keys(literal(app_id), KeyKind.PUSH, mappings.c.subject_id), observe=observe)


def pending_count(session: Session, app_id: str | None = None) -> int:
    query = select(func.count()).select_from(t.ReconcileKey)
    if app_id is not None:
        query = query.where(t.ReconcileKey.app_id == app_id)
    return int(session.execute(query).scalar_one())


def notify(session: Session) -> None:
    """Wake idle workers when this transaction commits (PostgreSQL LISTEN/NOTIFY)."""
    if session.get_bind().dialect.name == "postgresql":
        core.execute(session, select(func.pg_notify(CHANNEL, "")))


_MEMBERS_APPS = _prepared(
    lambda: (
        select(
            t.AppGroupAssignment.app_id.label("app_id"),
            _kind(KeyKind.USER).label("kind"),
            t.User.id.label("subject_id"),
        )
        .join(t.User, any_of(t.User.id, bindparam("user_ids", type_=String, expanding=True)))
        .where(t.AppGroupAssignment.group_id == bindparam("group_id", type_=String))
    )
)


def enqueue_membership_change(session: Session, group_id: str, user_ids: list[str]) -> None:
    """A membership of ``group_id`` changed for ``user_ids``: their account in every app the group
    assigns, and every push mapping sourced by the group, may be out of date."""
    if not user_ids:
        return
    _execute_prepared(session, _MEMBERS_APPS, {"group_id": group_id, "user_ids": list(user_ids)})
    enqueue_push_for_group(session, group_id)
    enqueue_membership_readers(session, group_id, user_ids)


def _reading_apps(
    session: Session, group_id: str, names: Collection[str] | None = None
) -> list[str]:
    """Apps whose attribute mapping reads the membership of ``group_id`` (by id, or by one of
    ``names``: the group's name, or its old and new names on a rename)."""
    readers = [
        (app_id, reads)
        for app_id, reads in session.execute(select(t.App.id, t.App.membership_reads)).all()
        if reads
    ]
    if not readers:
        return []
    if names is None:
        name = session.execute(select(t.Group.name).where(t.Group.id == group_id)).scalar()
        names = [name] if name is not None else []
    return [
        app_id
        for app_id, reads in readers
        if any(
            GroupReference(kind, value).matches(group_id, candidate)
            for kind, value in reads
            for candidate in [*names, ""]
            if kind == "id" or candidate
        )
    ]


def enqueue_membership_readers(
    session: Session,
    group_id: str,
    user_ids: list[str] | None,
    *,
    names: Collection[str] | None = None,
) -> None:
    """Membership of ``group_id`` changed for ``user_ids`` (None: every member, as on a rename
    or a deletion): their keys in each app whose mapping reads that membership, and only for
    users the app has a key for. One ``INSERT ... SELECT`` per such app."""
    if user_ids is not None and not user_ids:
        return
    for app_id in _reading_apps(session, group_id, names):
        users = app_user_subjects(app_id).subquery()
        query = _keys(literal(app_id), KeyKind.USER, users.c.subject_id)
        if user_ids is None:
            members = select(t.Membership.user_id).where(t.Membership.group_id == group_id)
            query = query.where(users.c.subject_id.in_(members))
        else:
            query = query.where(any_of(users.c.subject_id, user_ids))
        _upsert(session, query, observe=False)
