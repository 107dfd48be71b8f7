"""App imports, run by the engine for ``import`` keys: read every account and group an app
already holds, match the accounts to directory users, and link the ones confirmed.

An import is a row (``app_imports``) and a key in the outbox, written in the same transaction
by the service that starts it; the worker that claims the key runs it. Everything read is
stored as it arrives (page by page, with the next ``startIndex``), so a worker that dies
mid-import leaves a key whose lease runs out and a row that says where to resume. Nothing is
ever created downstream: confirming links accounts the way the engine links an account it
found by ``userName`` (``links.Links``), then enqueues the users so their profiles converge.

A key whose subject is the app's own id is a *survey* (the periodic full reconcile enqueues
one): it lists the accounts and keeps the app's unmanaged accounts current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.connectors.errors import DownstreamError, TransientError
from headwater.db import events, leases, outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import SYSTEM, Target
from headwater.db.rowsets import any_of
from headwater.domain.downstream import ListedAccount, ListedGroup
from headwater.domain.lifecycle import DELETED
from headwater.domain.matching import (
    DirectoryPerson,
    Match,
    MatchKind,
    MatchRule,
    match_accounts,
    parse_rules,
)
from headwater.domain.states import ImportStatus, KeyKind, LinkState, SyncState, UnmanagedState
from headwater.engine import trail
from headwater.engine.links import Links
from headwater.engine.listing import Listings, list_app, read_pages
from headwater.engine.ports import AccountLister, Connector
from headwater.engine.snapshot import AppSnapshot

__all__ = ["abandon", "link_account", "run_import_keys", "upsert_unmanaged"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Rows per IN (...) list.
CHUNK = 500
#: Longest wait before a failed read of the app is tried again, and how many tries in all
#: (what was read is kept between them).
RETRY_MAX = 300.0
MAX_ATTEMPTS = 10
#: States of an unmanaged account that a survey may forget once the app no longer lists it.
FORGETTABLE = (UnmanagedState.UNMANAGED, UnmanagedState.IGNORED, UnmanagedState.DEACTIVATED)


async def _db(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


async def run_import_keys(
    database: Database,
    app: AppSnapshot,
    connector: Connector,
    keys: Sequence[leases.ClaimedKey],
    listings: Listings,
) -> None:
    """Run each import (or survey) key of one app, one after another; each key's end is
    written by the run itself. A survey uses the listing its pass already read, if any."""
    for key in keys:
        try:
            if key.subject_id == app.id:
                await _survey(database, app, connector, key, listings)
            else:
                await _run(database, app, connector, key.subject_id)
        except TransientError as exc:
            if key.attempts + 1 < MAX_ATTEMPTS:
                delay = min(RETRY_MAX, 5.0 * 2**key.attempts)
                await _db(_retry, database, key, str(exc), delay)
                continue
            await _db(_fail, database, key.subject_id, f"{exc} ({MAX_ATTEMPTS} attempts)")
        except DownstreamError as exc:
            await _db(_fail, database, key.subject_id, str(exc))
        await _db(_finish, database, key)


# --- an import ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    id: str
    status: ImportStatus
    next_index: int
    total: int | None


async def _run(database: Database, app: AppSnapshot, connector: Connector, import_id: str) -> None:
    run = await _db(_begin, database, app.id, import_id)
    if run is None:
        return
    if run.status is ImportStatus.CONFIRMING:
        await _db(_confirm, database, app, import_id)
        return
    if not isinstance(connector, AccountLister):
        await _db(_fail, database, import_id, "this app's connector cannot list its accounts")
        return
    size = connector.listing_page_size
    concurrency = app.settings.max_concurrency

    async def store_accounts(
        items: list[ListedAccount], next_index: int, total: int | None
    ) -> None:
        await _db(_store_accounts, database, import_id, items, next_index, total)

    await read_pages(
        connector.list_accounts, size, concurrency, run.next_index, run.total, store_accounts
    )
    groups: list[ListedGroup] = []

    async def keep_groups(items: list[ListedGroup], _next: int, _total: int | None) -> None:
        groups.extend(items)

    await read_pages(connector.list_groups, size, concurrency, 1, None, keep_groups)
    await _db(_store_groups, database, import_id, groups)
    auto = await _db(_match, database, app, import_id)
    if auto:
        await _db(_confirm, database, app, import_id)


def _begin(database: Database, app_id: str, import_id: str) -> _Run | None:
    """The import to run (None: gone or already finished); mark it RUNNING."""
    with database.transaction() as session:
        row = session.get(t.AppImport, import_id)
        if row is None or row.app_id != app_id:
            return None
        status = ImportStatus(row.status)
        if status in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            now = clock.utcnow()
            row.status = ImportStatus.RUNNING
            row.started = row.started or now
            row.last_updated = now
            status = ImportStatus.RUNNING
        elif status is not ImportStatus.CONFIRMING:
            return None
        return _Run(row.id, status, row.next_index, row.accounts_total)


def _store_accounts(
    database: Database,
    import_id: str,
    items: list[ListedAccount],
    next_index: int,
    total: int | None,
) -> None:
    """One wave of accounts, stored with where the next wave starts (one transaction)."""
    with database.transaction() as session:
        seen: set[str] = set()
        wanted = sorted({item.id for item in items})
        for chunk in _chunks(wanted):
            seen.update(
                session.execute(
                    select(t.AppImportAccount.external_id).where(
                        t.AppImportAccount.import_id == import_id,
                        any_of(t.AppImportAccount.external_id, chunk),
                    )
                ).scalars()
            )
        fresh = []
        for item in items:
            if item.id in seen:
                continue  # listed twice (the app's list moved between pages)
            seen.add(item.id)
            fresh.append(
                {
                    "id": ids.new_id("iac"),
                    "import_id": import_id,
                    "external_id": item.id[:255],
                    "user_name": item.user_name[:255],
                    "email": _short(item.email),
                    "account_external_id": _short(item.external_id),
                    "employee_number": _short(item.employee_number),
                    "display_name": _short(item.display_name),
                    "active": item.active,
                    "link_requested": False,
                    "confirmed": False,
                }
            )
        if fresh:
            session.execute(insert(t.AppImportAccount), fresh)
        row = session.get(t.AppImport, import_id)
        if row is not None:
            row.next_index = next_index
            row.accounts_total = total
            row.accounts_read += len(fresh)
            row.last_updated = clock.utcnow()


def _store_groups(database: Database, import_id: str, groups: list[ListedGroup]) -> None:
    with database.transaction() as session:
        known = set(
            session.execute(
                select(t.AppImportGroup.external_id).where(t.AppImportGroup.import_id == import_id)
            ).scalars()
        )
        rows = []
        for group in groups:
            if group.id in known:
                continue
            known.add(group.id)
            rows.append(
                {
                    "id": ids.new_id("igr"),
                    "import_id": import_id,
                    "external_id": group.id[:255],
                    "display_name": group.display_name[:255],
                }
            )
        if rows:
            session.execute(insert(t.AppImportGroup), rows)
        row = session.get(t.AppImport, import_id)
        if row is not None:
            row.groups_read = len(known)
            row.last_updated = clock.utcnow()


# --- matching -----------------------------------------------------------------------------------


def _people(
    session: Session, rules: Sequence[MatchRule], rows: list[t.AppImportAccount]
) -> list[DirectoryPerson]:
    """The directory users any rule could reach from these accounts (set-based lookups)."""
    user = t.User
    found: dict[str, DirectoryPerson] = {}
    columns = (user.id, user.login, user.email_lower, user.profile)
    for rule in rules:
        if rule is MatchRule.USER_NAME:
            values = {r.user_name.strip().lower() for r in rows if r.user_name}
            column: Any = user.login_lower
        elif rule is MatchRule.EMAIL:
            values = {r.email.strip().lower() for r in rows if r.email}
            column = user.email_lower
        elif rule is MatchRule.EXTERNAL_ID:
            values = {r.account_external_id for r in rows if r.account_external_id}
            column = user.id
        else:
            values = {r.employee_number for r in rows if r.employee_number}
            column = user.profile["employeeNumber"].as_string()
        for chunk in _chunks(sorted(values)):
            query = select(*columns).where(any_of(column, chunk), user.status != DELETED)
            for row in session.execute(query):
                profile = row.profile or {}
                number = profile.get("employeeNumber")
                found[row.id] = DirectoryPerson(
                    row.id,
                    row.login,
                    row.email_lower or _text(profile.get("email")),
                    str(number) if number is not None else None,
                )
    return list(found.values())


def _match(database: Database, app: AppSnapshot, import_id: str) -> bool:
    """Match every stored account, store the verdicts and the unmanaged accounts, and say
    whether the app wants the exact matches linked at once."""
    with database.transaction() as session:
        run = session.get(t.AppImport, import_id)
        if run is None:
            return False
        rules = parse_rules(run.rules)
        rows = list(
            session.execute(
                select(t.AppImportAccount).where(t.AppImportAccount.import_id == import_id)
            ).scalars()
        )
        by_account, by_user = _links_of(session, app.id)
        accounts = [_listed(row) for row in rows]
        fresh = [a for a in accounts if a.id not in by_account]
        verdicts = {
            m.account_id: m
            for m in match_accounts(fresh, _people(session, rules, rows), rules, linked=by_user)
        }
        for account in accounts:
            if account.id in by_account:
                owner = by_account[account.id]
                verdicts[account.id] = Match(
                    account.id, MatchKind.LINKED, owner, None, None, (owner,)
                )
        counts = dict.fromkeys(MatchKind, 0)
        changes = []
        for row in rows:
            verdict = verdicts[row.external_id]
            counts[verdict.kind] += 1
            changes.append(
                {
                    "id": row.id,
                    "outcome": verdict.kind.value,
                    "user_id": verdict.user_id,
                    "rule": verdict.rule.value if verdict.rule else None,
                    "reason": verdict.reason,
                    "candidates": list(verdict.candidates),
                    "link_requested": run.auto_confirm and verdict.kind is MatchKind.MATCHED,
                }
            )
        if changes:
            session.execute(update(t.AppImportAccount), changes)
        unmatched = [a for a in accounts if verdicts[a.id].kind is MatchKind.UNMATCHED]
        upsert_unmanaged(session, app.id, unmatched)
        now = clock.utcnow()
        run.matched = counts[MatchKind.MATCHED]
        run.unmatched = counts[MatchKind.UNMATCHED]
        run.conflicts = counts[MatchKind.CONFLICT]
        run.linked = counts[MatchKind.LINKED]
        run.error = None
        run.finished = now
        run.last_updated = now
        auto = run.auto_confirm and run.matched > 0
        run.status = ImportStatus.CONFIRMING if auto else ImportStatus.COMPLETED
        trail.app_event(
            session,
            app,
            "app.headwater.import.completed",
            f"Import from {app.label}: {len(rows)} accounts read, {run.matched} matched, "
            f"{run.unmatched} unmatched, {run.conflicts} in conflict",
            debug={
                "importId": import_id,
                "matched": run.matched,
                "unmatched": run.unmatched,
                "conflicts": run.conflicts,
                "linked": run.linked,
                "groups": run.groups_read,
            },
        )
        return auto


def _links_of(session: Session, app_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """The app's recorded accounts: external id → user, and user → external id."""
    rows = session.execute(
        select(t.AppUserLink.user_id, t.AppUserLink.external_id).where(
            t.AppUserLink.app_id == app_id,
            t.AppUserLink.external_id.is_not(None),
            t.AppUserLink.state != LinkState.DELETED,
        )
    )
    by_account: dict[str, str] = {}
    by_user: dict[str, str] = {}
    for user_id, external_id in rows:
        if external_id is None:
            continue
        by_account[external_id] = user_id
        by_user[user_id] = external_id
    return by_account, by_user


def upsert_unmanaged(session: Session, app_id: str, accounts: Sequence[ListedAccount]) -> int:
    """Record accounts nobody in the directory owns, stamped as seen now; returns how many
    were new."""
    now = clock.utcnow()
    existing: dict[str, t.UnmanagedAccount] = {}
    for chunk in _chunks(sorted({a.id for a in accounts})):
        existing.update(
            (row.external_id, row)
            for row in session.execute(
                select(t.UnmanagedAccount).where(
                    t.UnmanagedAccount.app_id == app_id,
                    any_of(t.UnmanagedAccount.external_id, chunk),
                )
            ).scalars()
        )
    fresh = []
    for account in accounts:
        row = existing.get(account.id)
        if row is not None:
            row.user_name = account.user_name[:255]
            row.email = _short(account.email)
            row.display_name = _short(account.display_name)
            row.active = account.active
            row.last_seen = now
            if row.state == UnmanagedState.DEACTIVATED and account.active:
                row.state = UnmanagedState.UNMANAGED  # reactivated downstream by hand
            continue
        existing[account.id] = row = t.UnmanagedAccount(id=ids.new_id("uma"))
        fresh.append(
            {
                "id": row.id,
                "app_id": app_id,
                "external_id": account.id[:255],
                "user_name": account.user_name[:255],
                "email": _short(account.email),
                "display_name": _short(account.display_name),
                "active": account.active,
                "state": UnmanagedState.UNMANAGED.value,
                "first_seen": now,
                "last_seen": now,
                "last_updated": now,
            }
        )
    if fresh:
        session.execute(insert(t.UnmanagedAccount), fresh)
    return len(fresh)


# --- confirming ---------------------------------------------------------------------------------


def link_account(
    session: Session,
    app: AppSnapshot,
    links: Links,
    user_id: str,
    external_id: str,
    user_name: str,
    active: bool,
) -> bool:
    """Link a downstream account to a user as the engine links one it found by ``userName``:
    the recorded link, no downstream write. A user not assigned the app gets a direct
    assignment keeping the account's ``userName`` (else the next reconcile would take the
    account away). False when the user already holds another account here."""
    link = links.get(user_id)
    if (
        link is not None
        and link.external_id
        and link.external_id != external_id
        and link.state != LinkState.DELETED
    ):
        return False
    links.upsert(
        user_id,
        external_id=external_id,
        user_name=user_name,
        state=LinkState.ACTIVE if active else LinkState.INACTIVE,
        sync_state=SyncState.SYNCING,
        last_error=None,
    )
    if not _assigned(session, app.id, user_id):
        now = clock.utcnow()
        session.add(
            t.AppUserAssignment(
                app_id=app.id,
                user_id=user_id,
                profile={},
                user_name=user_name,
                created=now,
                last_updated=now,
            )
        )
    return True


def _assigned(session: Session, app_id: str, user_id: str) -> bool:
    direct = exists().where(
        t.AppUserAssignment.app_id == app_id, t.AppUserAssignment.user_id == user_id
    )
    grouped = exists().where(
        t.Membership.user_id == user_id,
        t.Membership.group_id == t.AppGroupAssignment.group_id,
        t.AppGroupAssignment.app_id == app_id,
    )
    return bool(session.execute(select(or_(direct, grouped))).scalar())


def _confirm(database: Database, app: AppSnapshot, import_id: str) -> None:
    """Link every account whose link was asked for (one transaction), and enqueue the users
    so their profiles converge (an update at most: the account exists)."""
    with database.transaction() as session:
        run = session.get(t.AppImport, import_id)
        if run is None:
            return
        rows = list(
            session.execute(
                select(t.AppImportAccount).where(
                    t.AppImportAccount.import_id == import_id,
                    t.AppImportAccount.link_requested.is_(True),
                    t.AppImportAccount.confirmed.is_(False),
                    t.AppImportAccount.outcome == MatchKind.MATCHED,
                    t.AppImportAccount.user_id.is_not(None),
                )
            ).scalars()
        )
        user_ids = [row.user_id for row in rows if row.user_id]
        links = Links.load(session, app.id, user_ids)
        labels = trail.load_labels(session, user_ids)
        done: list[str] = []
        linked_accounts: list[str] = []
        for row in rows:
            assert row.user_id is not None
            if not link_account(
                session, app, links, row.user_id, row.external_id, row.user_name, row.active
            ):
                row.outcome = MatchKind.CONFLICT
                row.reason = "the user already has another account in this app"
                row.link_requested = False
                continue
            row.confirmed = True
            done.append(row.user_id)
            linked_accounts.append(row.external_id)
            trail.account_event(
                session,
                app,
                row.user_id,
                labels,
                "application.provision.user.import",
                f"Account {row.external_id} in {app.label} linked by import",
            )
        links.write()
        for chunk in _chunks(linked_accounts):
            session.execute(
                delete(t.UnmanagedAccount).where(
                    t.UnmanagedAccount.app_id == app.id,
                    any_of(t.UnmanagedAccount.external_id, chunk),
                )
            )
        if done:
            outbox.enqueue_users_for_apps(session, app.id, done)
        left = session.execute(
            select(
                exists().where(
                    t.AppImportAccount.import_id == import_id,
                    t.AppImportAccount.outcome == MatchKind.MATCHED,
                    t.AppImportAccount.confirmed.is_(False),
                )
            )
        ).scalar()
        run.confirmed += len(done)
        run.conflicts += len(rows) - len(done)
        run.status = ImportStatus.COMPLETED if left else ImportStatus.CONFIRMED
        run.last_updated = clock.utcnow()
        trail.app_event(
            session,
            app,
            "app.headwater.import.confirmed",
            f"Import from {app.label}: {len(done)} accounts linked",
            debug={"importId": import_id, "linked": len(done)},
        )


# --- the survey of a full reconcile -------------------------------------------------------------


async def _survey(
    database: Database,
    app: AppSnapshot,
    connector: Connector,
    key: leases.ClaimedKey,
    listings: Listings,
) -> None:
    """List the app's accounts and keep its unmanaged accounts current: an account nobody
    links is recorded (or seen again), one the app no longer lists is forgotten. The listing
    the pass read its accounts back from serves, when it was read after this key was
    enqueued; the survey ends the pass, so that listing is let go."""
    if not isinstance(connector, AccountLister):
        return
    listing = listings.held(app, connector)
    listings.drop(app.id)
    if listing is None or not listing.serves(key):
        listing = await list_app(app, connector)
    await _db(_record_survey, database, app, list(listing.accounts.values()), listing.started)


def _record_survey(
    database: Database, app: AppSnapshot, accounts: list[ListedAccount], started: Any
) -> None:
    with database.transaction() as session:
        by_account, _ = _links_of(session, app.id)
        unlinked = [a for a in accounts if a.id not in by_account]
        fresh = upsert_unmanaged(session, app.id, unlinked)
        session.execute(
            delete(t.UnmanagedAccount).where(
                t.UnmanagedAccount.app_id == app.id,
                t.UnmanagedAccount.last_seen < started,
                t.UnmanagedAccount.state.in_([s.value for s in FORGETTABLE]),
            )
        )
        if fresh:
            trail.app_event(
                session,
                app,
                "app.headwater.unmanaged.found",
                f"{fresh} account(s) in {app.label} that no directory user owns",
                debug={"found": fresh},
            )


# --- key ends -----------------------------------------------------------------------------------


def _finish(database: Database, key: leases.ClaimedKey) -> None:
    with database.transaction() as session:
        leases.finish(session, key)


def abandon(database: Database, keys: Sequence[leases.ClaimedKey], reason: str) -> None:
    """Imports among ``keys`` that cannot run: they fail with ``reason``."""
    for key in keys:
        if key.kind is KeyKind.IMPORT and key.subject_id != key.app_id:
            _fail(database, key.subject_id, reason)


def _retry(database: Database, key: leases.ClaimedKey, message: str, delay: float) -> None:
    """A transient failure: keep what was read, say why, try again later."""
    with database.transaction() as session:
        row = session.get(t.AppImport, key.subject_id)
        if row is not None:
            row.error = message[:2000]
            row.last_updated = clock.utcnow()
        leases.retry_later(session, key, delay)


def _fail(database: Database, import_id: str, message: str) -> None:
    with database.transaction() as session:
        row = session.get(t.AppImport, import_id)
        if row is None:
            return
        now = clock.utcnow()
        row.status = ImportStatus.FAILED
        row.error = message[:2000]
        row.finished = now
        row.last_updated = now
        log.warning("import %s of app %s failed: %s", import_id, row.app_id, message)
        app = session.get(t.App, row.app_id)
        if app is not None:
            events.record(
                session,
                "app.headwater.import.failed",
                f"Import from {app.label} failed: {message[:300]}",
                actor=SYSTEM,
                targets=[Target(app.id, "AppInstance", app.name, app.label)],
                outcome="FAILURE",
                reason=message[:300],
                debug={"importId": import_id},
            )


# --- helpers ------------------------------------------------------------------------------------


def _listed(row: t.AppImportAccount) -> ListedAccount:
    return ListedAccount(
        id=row.external_id,
        user_name=row.user_name,
        active=row.active,
        external_id=row.account_external_id,
        email=row.email,
        employee_number=row.employee_number,
        display_name=row.display_name,
    )


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _short(value: str | None) -> str | None:
    return value[:255] if value else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
