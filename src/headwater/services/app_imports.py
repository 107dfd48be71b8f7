"""App imports and unmanaged accounts: the admin's side.

Starting an import, confirming its matches, and every action on an unmanaged account write
the request and enqueue a key in the same transaction; the engine does the reading, matching,
linking and deactivating (``engine.imports``, ``engine.unmanaged``). Nothing here talks to a
downstream, so no request ever waits for an app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.db.rowsets import any_of
from headwater.domain.lifecycle import DELETED
from headwater.domain.matching import MatchKind
from headwater.domain.states import (
    AppStatus,
    ConnectionStatus,
    GroupType,
    HoldDecision,
    ImportStatus,
    KeyKind,
    UnmanagedState,
)
from headwater.errors import InvalidRequest, NotFound
from headwater.services import grouppush
from headwater.services.apps import get_app, settings_of
from headwater.services.validation import plausible_id

__all__ = [
    "GroupLink",
    "accounts_query",
    "confirm",
    "deactivate",
    "decide_held",
    "get_import",
    "groups_query",
    "ignore",
    "imports_query",
    "link_groups",
    "link_unmanaged",
    "start_import",
    "unmanaged_query",
]

#: Import states in which another import of the same app may not start.
BUSY = (ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.CONFIRMING)
OUTCOMES = tuple(kind.value for kind in MatchKind)
STATES = tuple(state.value for state in UnmanagedState)
#: Most ids one request may name.
MAX_IDS = 10_000


def _invalid(cause: str) -> InvalidRequest:
    return InvalidRequest("Api validation failed: " + cause, [cause])


def _log(
    session: Session, actor: Actor, app: t.App, event_type: str, message: str, **debug: object
) -> None:
    events.record(
        session,
        event_type,
        message,
        actor=actor,
        targets=[Target(app.id, "AppInstance", app.name, app.label)],
        debug=dict(debug),
    )


# --- imports ------------------------------------------------------------------------------------


def start_import(session: Session, actor: Actor, app_id: str) -> t.AppImport:
    """Queue an import of what the app holds; the engine runs it. One at a time per app."""
    app = get_app(session, app_id)
    connection = session.get(t.AppConnection, app.id)
    if app.status != AppStatus.ACTIVE:
        raise _invalid("the app is inactive: activate it to import from it")
    if connection is None or connection.status != ConnectionStatus.ENABLED:
        raise _invalid("the app has no enabled provisioning connection to import from")
    busy = session.execute(
        select(t.AppImport.id).where(t.AppImport.app_id == app.id, t.AppImport.status.in_(BUSY))
    ).first()
    if busy is not None:
        raise _invalid(f"an import of this app is already under way ({busy[0]})")
    settings = settings_of(app)
    now = clock.utcnow()
    row = t.AppImport(
        id=ids.new_id("imp"),
        app_id=app.id,
        status=ImportStatus.QUEUED,
        rules=settings.import_matching,
        auto_confirm=settings.import_auto_confirm,
        requested_by=actor.id[:64],
        accounts_total=None,
        accounts_read=0,
        groups_read=0,
        next_index=1,
        matched=0,
        unmatched=0,
        conflicts=0,
        linked=0,
        confirmed=0,
        created=now,
        last_updated=now,
    )
    session.add(row)
    outbox.enqueue_keys(session, [(app.id, KeyKind.IMPORT, row.id)])
    _log(session, actor, app, "app.headwater.import.started", f"Import from {app.label} started")
    return row


def get_import(session: Session, app_id: str, import_id: str) -> t.AppImport:
    get_app(session, app_id)
    row = session.get(t.AppImport, import_id) if plausible_id(import_id) else None
    if row is None or row.app_id != app_id:
        raise NotFound(f"Not found: Resource not found: {import_id} (AppImport)")
    return row


def imports_query(session: Session, app_id: str) -> Select[t.AppImport]:
    """The app's imports, oldest first (keyset pages by id)."""
    get_app(session, app_id)
    return select(t.AppImport).where(t.AppImport.app_id == app_id)


def accounts_query(
    session: Session, app_id: str, import_id: str, outcome: str | None
) -> Select[t.AppImportAccount]:
    """The accounts an import read, optionally only one verdict (MATCHED, UNMATCHED...)."""
    get_import(session, app_id, import_id)
    query = select(t.AppImportAccount).where(t.AppImportAccount.import_id == import_id)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise _invalid(f"outcome: must be one of {', '.join(OUTCOMES)}")
        query = query.where(t.AppImportAccount.outcome == outcome)
    return query


def groups_query(session: Session, app_id: str, import_id: str) -> Select[t.AppImportGroup]:
    get_import(session, app_id, import_id)
    return select(t.AppImportGroup).where(t.AppImportGroup.import_id == import_id)


def confirm(
    session: Session,
    actor: Actor,
    app_id: str,
    import_id: str,
    account_ids: Sequence[str] | None = None,
) -> int:
    """Ask for the matched accounts (all, or those whose downstream ids are given) to be
    linked; returns how many. The engine links them; nothing is created downstream."""
    run = get_import(session, app_id, import_id)
    if run.status not in (ImportStatus.COMPLETED, ImportStatus.CONFIRMING):
        raise _invalid(f"the import is {run.status}: only a completed import can be confirmed")
    condition = [
        t.AppImportAccount.import_id == import_id,
        t.AppImportAccount.outcome == MatchKind.MATCHED,
        t.AppImportAccount.confirmed.is_(False),
        t.AppImportAccount.link_requested.is_(False),
    ]
    if account_ids is not None:
        if len(account_ids) > MAX_IDS:
            raise _invalid(f"accountIds: at most {MAX_IDS}")
        condition.append(t.AppImportAccount.external_id.in_(list(account_ids)))
    wanted = list(session.execute(select(t.AppImportAccount.id).where(*condition)).scalars())
    if not wanted:
        return 0
    for start in range(0, len(wanted), 500):
        session.execute(
            update(t.AppImportAccount)
            .where(any_of(t.AppImportAccount.id, wanted[start : start + 500]))
            .values(link_requested=True)
        )
    run.status = ImportStatus.CONFIRMING
    run.last_updated = clock.utcnow()
    outbox.enqueue_keys(session, [(app_id, KeyKind.IMPORT, import_id)])
    app = get_app(session, app_id)
    _log(
        session,
        actor,
        app,
        "app.headwater.import.confirm_requested",
        f"{len(wanted)} matched account(s) of {app.label} to be linked",
        importId=import_id,
        count=len(wanted),
    )
    return len(wanted)


@dataclass(frozen=True)
class GroupLink:
    """Push ``source_group_id`` to the downstream group ``external_id`` an import found."""

    external_id: str
    source_group_id: str


def link_groups(
    session: Session, actor: Actor, app_id: str, import_id: str, links: Sequence[GroupLink]
) -> list[t.PushMapping]:
    """Make a push mapping for each pair, targeting the downstream group as an app group (the
    APP_GROUP is recorded if the engine has not yet); all or nothing."""
    get_import(session, app_id, import_id)
    if not links:
        raise _invalid("links: at least one is required")
    if len(links) > 1000:
        raise _invalid("links: at most 1000")
    found = {
        row.external_id: row
        for row in session.execute(
            select(t.AppImportGroup).where(
                t.AppImportGroup.import_id == import_id,
                any_of(t.AppImportGroup.external_id, [link.external_id for link in links]),
            )
        ).scalars()
    }
    mappings = []
    for link in links:
        group = found.get(link.external_id)
        if group is None:
            raise _invalid(f"externalId: {link.external_id[:64]} is not a group this import found")
        target = _app_group(session, app_id, group)
        spec = grouppush.MappingSpec(link.source_group_id, target_group_id=target.id)
        mapping = grouppush.create_mapping(session, actor, app_id, spec)
        group.mapping_id = mapping.id
        mappings.append(mapping)
    return mappings


def _app_group(session: Session, app_id: str, found: t.AppImportGroup) -> t.Group:
    """The APP_GROUP standing for a downstream group, recorded if missing."""
    existing = session.execute(
        select(t.Group).where(
            t.Group.app_id == app_id,
            t.Group.type == GroupType.APP_GROUP,
            t.Group.external_id == found.external_id,
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    clash = session.execute(
        select(t.Group.id).where(
            t.Group.name_scope == app_id, t.Group.name_lower == found.display_name.lower()
        )
    ).first()
    if clash is not None:
        raise _invalid(f"externalId: another app group of this app is named {found.display_name}")
    now = clock.utcnow()
    group = t.Group(
        id=ids.new_id("00g"),
        type=GroupType.APP_GROUP,
        name=found.display_name,
        name_lower=found.display_name.lower(),
        name_scope=app_id,
        profile={"name": found.display_name},
        app_id=app_id,
        external_id=found.external_id,
        created=now,
        last_updated=now,
    )
    session.add(group)
    session.flush()
    return group


# --- unmanaged accounts -------------------------------------------------------------------------


def unmanaged_query(
    session: Session, app_id: str, state: str | None = None
) -> Select[t.UnmanagedAccount]:
    get_app(session, app_id)
    query = select(t.UnmanagedAccount).where(t.UnmanagedAccount.app_id == app_id)
    if state is not None:
        if state not in STATES:
            raise _invalid(f"state: must be one of {', '.join(STATES)}")
        query = query.where(t.UnmanagedAccount.state == state)
    return query


def _accounts(
    session: Session, app_id: str, account_ids: Sequence[str] | None, states: Sequence[str]
) -> list[t.UnmanagedAccount]:
    query = select(t.UnmanagedAccount).where(
        t.UnmanagedAccount.app_id == app_id, t.UnmanagedAccount.state.in_(list(states))
    )
    if account_ids is not None:
        if len(account_ids) > MAX_IDS:
            raise _invalid(f"ids: at most {MAX_IDS}")
        query = query.where(t.UnmanagedAccount.id.in_(list(account_ids)))
    return list(session.execute(query.with_for_update()).scalars())


def deactivate(
    session: Session, actor: Actor, app_id: str, account_ids: Sequence[str] | None = None
) -> int:
    """Ask the engine to deactivate unmanaged accounts (all of them when no ids are given):
    the mass-change guard weighs them, as it weighs any deprovision."""
    app = get_app(session, app_id)
    rows = _accounts(session, app_id, account_ids, [UnmanagedState.UNMANAGED])
    if account_ids is not None and len(rows) != len(set(account_ids)):
        raise _invalid(
            "ids: every id must name an unmanaged account of this app in state UNMANAGED"
        )
    now = clock.utcnow()
    for row in rows:
        row.state = UnmanagedState.DEACTIVATING
        row.decision = None
        row.last_error = None
        row.last_updated = now
    outbox.enqueue_keys(session, [(app_id, KeyKind.UNMANAGED, row.id) for row in rows])
    if rows:
        _log(
            session,
            actor,
            app,
            "app.headwater.unmanaged.deactivate_requested",
            f"{len(rows)} unmanaged account(s) of {app.label} to be deactivated",
            count=len(rows),
        )
    return len(rows)


def decide_held(
    session: Session,
    actor: Actor,
    app_id: str,
    approve: bool,
    account_ids: Sequence[str] | None = None,
) -> int:
    """Approve (they are sent) or reject (they stay) deactivations the guard held."""
    app = get_app(session, app_id)
    rows = [
        row
        for row in _accounts(session, app_id, account_ids, [UnmanagedState.DEACTIVATING])
        if row.decision == HoldDecision.HELD
    ]
    now = clock.utcnow()
    for row in rows:
        row.last_updated = now
        if approve:
            row.decision = HoldDecision.APPROVED
        else:
            row.decision = None
            row.state = UnmanagedState.UNMANAGED
    if approve:
        outbox.enqueue_keys(session, [(app_id, KeyKind.UNMANAGED, row.id) for row in rows])
    if rows:
        verb = "approved" if approve else "rejected"
        _log(
            session,
            actor,
            app,
            f"app.headwater.mass_change.{verb}",
            f"{len(rows)} held deactivation(s) of unmanaged accounts in {app.label} {verb}",
            count=len(rows),
        )
    return len(rows)


def _account(session: Session, app_id: str, account_id: str) -> t.UnmanagedAccount:
    get_app(session, app_id)
    row = (
        session.get(t.UnmanagedAccount, account_id, with_for_update=True)
        if plausible_id(account_id)
        else None
    )
    if row is None or row.app_id != app_id:
        raise NotFound(f"Not found: Resource not found: {account_id} (UnmanagedAccount)")
    return row


def link_unmanaged(
    session: Session, actor: Actor, app_id: str, account_id: str, user_id: str
) -> t.UnmanagedAccount:
    """Ask the engine to link an unmanaged account to a chosen user (no downstream write)."""
    row = _account(session, app_id, account_id)
    if row.state not in (UnmanagedState.UNMANAGED, UnmanagedState.IGNORED):
        raise _invalid(f"the account is {row.state}: only an unmanaged account can be linked")
    user = session.get(t.User, user_id) if plausible_id(user_id) else None
    if user is None or user.status == DELETED:
        raise NotFound(f"Not found: Resource not found: {user_id} (User)")
    holds = session.execute(
        select(t.AppUserLink.external_id).where(
            t.AppUserLink.app_id == app_id,
            t.AppUserLink.user_id == user.id,
            t.AppUserLink.external_id.is_not(None),
            t.AppUserLink.state != "DELETED",
        )
    ).scalar_one_or_none()
    if holds is not None and holds != row.external_id:
        raise _invalid(f"userId: {user.login} already has an account in this app")
    row.state = UnmanagedState.LINKING
    row.user_id = user.id
    row.last_error = None
    row.last_updated = clock.utcnow()
    outbox.enqueue_keys(session, [(app_id, KeyKind.UNMANAGED, row.id)])
    app = get_app(session, app_id)
    _log(
        session,
        actor,
        app,
        "app.headwater.unmanaged.link_requested",
        f"Account {row.user_name} of {app.label} to be linked to {user.login}",
        externalId=row.external_id,
        userId=user.id,
    )
    return row


def ignore(
    session: Session, actor: Actor, app_id: str, account_id: str, *, ignored: bool = True
) -> t.UnmanagedAccount:
    """Leave an unmanaged account alone (listed, never touched), or take that back."""
    row = _account(session, app_id, account_id)
    before, after = (
        (UnmanagedState.UNMANAGED, UnmanagedState.IGNORED)
        if ignored
        else (UnmanagedState.IGNORED, UnmanagedState.UNMANAGED)
    )
    if row.state != before:
        raise _invalid(f"the account is {row.state}, not {before}")
    row.state = after
    row.last_updated = clock.utcnow()
    app = get_app(session, app_id)
    _log(
        session,
        actor,
        app,
        "app.headwater.unmanaged.ignored" if ignored else "app.headwater.unmanaged.unignored",
        f"Unmanaged account {row.user_name} of {app.label} "
        + ("ignored" if ignored else "no longer ignored"),
        externalId=row.external_id,
    )
    return row
