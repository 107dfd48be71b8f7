"""CSV import of people and groups: streamed, checked row by row, written batch by batch.

The file is read line by line and never held whole. Rows are gathered into batches (500 by
default); each batch is one transaction: every row is checked completely against the database
(who it matches, whether its login is free, whether its groups exist, whether its status can
be reached) before anything is written, and a row that fails any check is rejected and reported
with its line, while the batch's other rows are written together through
``directory.import_users`` (rows, events and reconcile keys as any other directory write).
Should the write itself fail (another writer took a login in between), the batch is rolled back
and replayed one row per transaction, so a bad row never takes good ones with it and never
half-writes a person.

Logins and match keys already seen in the file are kept in a temporary SQLite file on disk, not
in memory, so a million-row file runs in the same memory as a thousand-row one.

Rows that deactivate or suspend people are counted first (a quick pass over the file); when
more would go than the mass-change threshold allows (``domain.mass_change``, with the
defaults an app gets), those rows are held: reported, not applied, until the import is run
again with ``confirm``. Each held row is stored (``import_holds``, in the transaction of the batch
that held it) so that an admin can decide on it later: approving applies the row as an import
with ``confirm`` would, checked again against the person as they are then; rejecting leaves
the person as they are.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import Actor, Pending, Target, record, record_many
from headwater.db.rowsets import any_of
from headwater.domain import csv_import as rows_
from headwater.domain import mass_change, profiles
from headwater.domain.csv_import import CsvRow, MatchKey, RowError, UserRow
from headwater.domain.lifecycle import DELETED, Status
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import HoldDecision
from headwater.errors import Conflict, HeadwaterError, InvalidRequest, NotFound
from headwater.services import directory
from headwater.services.filtering import json_text

__all__ = [
    "DEFAULT_BATCH",
    "HOLD_EVENT",
    "MAX_HOLD_BYTES",
    "MAX_REPORTED",
    "Options",
    "Progress",
    "Source",
    "Summary",
    "decide_hold",
    "holds_query",
    "import_actor",
    "import_groups",
    "import_users",
    "list_holds",
    "preview",
]

DEFAULT_BATCH = 500
#: Rejected and held rows listed one by one in a summary (all are counted).
MAX_REPORTED = 1000
#: A file path, or the file's bytes (an upload, a request body).
Source = Path | bytes
#: Called after each batch with the bytes read so far and the rows seen so far.
Progress = Callable[[int, int], None]
#: Largest held row stored for approval (its JSON); a larger one is rejected instead.
MAX_HOLD_BYTES = 256 * 1024
HOLD_EVENT = "system.import.hold"


@dataclass(frozen=True)
class Line:
    line: int
    reason: str
    key: str | None = None
    #: The stored hold's id (held rows of an import that is not a dry run).
    id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "key": self.key}


@dataclass
class Summary:
    """What an import did (or, in a dry run, would do)."""

    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    held: int = 0
    rejections: list[Line] = field(default_factory=list)
    held_rows: list[Line] = field(default_factory=list)
    #: Why rows were held, for a person to read; None when nothing was held.
    held_reason: str | None = None

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected + self.held

    def reject(self, line: int, reason: str, key: str | None = None) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED:
            self.rejections.append(Line(line, reason, key))

    def hold(self, line: int, reason: str, key: str, hold_id: str | None = None) -> None:
        self.held += 1
        if len(self.held_rows) < MAX_REPORTED:
            self.held_rows.append(Line(line, reason, key, hold_id))

    def sort(self) -> None:
        """Listed rows in file order (a row rejected on reading is known before its batch's
        rows are checked against the directory)."""
        self.rejections.sort(key=lambda item: item.line)
        self.held_rows.sort(key=lambda item: item.line)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "held": self.held,
            "heldReason": self.held_reason,
            "rejections": [
                {"line": r.line, "reason": r.reason, "key": r.key} for r in self.rejections
            ],
            "heldRows": [
                {"id": r.id, "line": r.line, "reason": r.reason, "key": r.key}
                for r in self.held_rows
            ],
        }


@dataclass(frozen=True)
class Options:
    match: MatchKey = MatchKey.LOGIN
    #: Where the file comes from (``--source HR``), kept with held rows.
    source: str | None = None
    dry_run: bool = False
    #: Apply deactivations and suspensions even above the mass-change threshold.
    confirm: bool = False
    batch_size: int = DEFAULT_BATCH
    #: The mass-change threshold and minimum the guard applies (an app's defaults).
    guard: ProvisioningSettings = field(default_factory=ProvisioningSettings)


def import_actor(actor: Actor, source: str | None) -> Actor:
    """The actor an import's events name: the source (``--source HR``) when one is given,
    with who ran the import kept in ``alternateId``."""
    if not source:
        return actor
    problem = profiles.check_text(source)
    if problem or not 0 < len(source) <= 100:
        raise InvalidRequest("Api validation failed: source", [f"source: {problem or 'length'}"])
    return Actor(
        id=actor.id,
        type=actor.type,
        alternate_id=f"csv-import:{source} by {actor.alternate_id}",
        display_name=source,
    )


# --- Reading ----------------------------------------------------------------------------------


class _Counted:
    """Byte lines of a file, counting what was read (for the progress bar)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.handle:
            self.read += len(raw)
            yield raw


@contextmanager
def _opened(source: Source) -> Iterator[_Counted]:
    if isinstance(source, bytes):
        yield _Counted(io.BytesIO(source))
        return
    with source.open("rb") as handle:
        yield _Counted(handle)


def _header_of(rows: Iterator[CsvRow]) -> list[str] | None:
    first = next(rows, None)
    if first is not None and first.cells is None:
        raise InvalidRequest("The header cannot be read", [f"header: {first.problem}"])
    if first is not None and first.line != 1:
        raise InvalidRequest("The file starts with blank lines", ["header: must be on line 1"])
    return first.cells if first is not None else None


def preview(source: Source, limit: int = 10) -> tuple[list[str], list[CsvRow]]:
    """The header and the first ``limit`` rows as read (for the console's preview)."""
    with _opened(source) as lines:
        rows = rows_.read_rows(lines)
        header = _header_of(rows) or []
        first: list[CsvRow] = []
        for row in rows:
            first.append(row)
            if len(first) >= limit:
                break
    return header, first


class _Seen:
    """Keys already met in the file and the line each was first met on, in a temporary SQLite
    file so that memory does not grow with the file."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="headwater-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-4000")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")

    def first_lines(self, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT key, line FROM seen WHERE key IN ({marks})"
            found.update(self._db.execute(query, part).fetchall())
        return found

    def add(self, pairs: Sequence[tuple[str, int]]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", pairs)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def _keys_of(row: UserRow, match: MatchKey) -> list[str]:
    """What may appear once in a file: the login, and the match key."""
    keys = []
    login = row.attributes.get("login")
    if isinstance(login, str):
        keys.append("login:" + login.lower())
    if match is not MatchKey.LOGIN:
        keys.append(f"{match.value}:" + _normal(match, row.key))
    return keys


def _normal(match: MatchKey, value: str) -> str:
    return value if match is MatchKey.EMPLOYEE_NUMBER else value.lower()


# --- Users ------------------------------------------------------------------------------------


def import_users(
    database: Database,
    actor: Actor,
    source: Source,
    options: Options | None = None,
    *,
    progress: Progress | None = None,
) -> Summary:
    """Import people from a CSV file (see the module's docstring); InvalidRequest when the
    header cannot be used (nothing is written then)."""
    options = options or Options()
    summary = Summary(dry_run=options.dry_run)
    holding = _must_hold(database, source, options, summary)
    seen = _Seen()
    try:
        with _opened(source) as lines:
            rows = rows_.read_rows(lines)
            header = rows_.parse_header(_header_of(rows), options.match)
            planner = _Planner(
                options.match, bool(holding), header.missing_for_create(), _GroupNames()
            )
            run = _Run(database, actor, options, planner, summary, seen)
            batch: list[UserRow] = []
            for row in rows:
                try:
                    batch.append(rows_.user_row(header, row))
                except RowError as exc:
                    summary.reject(row.line, str(exc), header.key_of(row))
                if len(batch) >= options.batch_size:
                    _users_batch(run, batch)
                    batch = []
                    _report(progress, lines.read, summary)
            if batch:
                _users_batch(run, batch)
            _report(progress, lines.read, summary)
    finally:
        seen.close()
    summary.held_reason = holding if summary.held else None
    summary.sort()
    if not options.dry_run:
        _record_import(database, actor, "users", summary)
    return summary


def _report(progress: Progress | None, read: int, summary: Summary) -> None:
    if progress is not None:
        progress(read, summary.rows)


def _must_hold(database: Database, source: Source, options: Options, summary: Summary) -> str:
    """Count the rows that deactivate or suspend; the reason to hold them when the count trips
    the guard (and the import is not confirmed), else an empty string."""
    leaving = 0
    with _opened(source) as lines:
        rows = rows_.read_rows(lines)
        try:
            header = rows_.parse_header(_header_of(rows), options.match)
        except InvalidRequest:
            return ""  # the import itself reports the header
        if header.status is None:
            return ""
        leaving = sum(1 for row in rows if rows_.asks_to_leave(header, row))
    with database.read() as session:
        active = session.execute(
            select(func.count())
            .select_from(t.User)
            .where(t.User.status.notin_([DELETED, Status.DEPROVISIONED, Status.STAGED]))
        ).scalar_one()
    if options.confirm or not mass_change.tripped(leaving, active, options.guard):
        return ""
    share = round(options.guard.mass_change_threshold * 100)
    return (
        f"{leaving} rows deactivate or suspend people, more than {share}% of the {active} "
        "active people: they are held for approval. Approve or reject each held row (headwater "
        "import approve ID, POST /api/v1/imports/holds/ID/lifecycle/approve, or the console's "
        "import page), or check the file and import it again with --confirm (confirm=true over "
        "the API, or tick 'confirm' in the console) to apply them all."
    )


@dataclass
class _Planner:
    """What checking rows against the directory needs."""

    match: MatchKey
    #: Hold the rows that deactivate or suspend (the guard tripped, no confirmation).
    holding: bool
    #: Required attributes the file has no column for (a new person cannot be created).
    missing: list[str]
    groups: _GroupNames


@dataclass
class _Run:
    """One import of people: what every batch needs."""

    database: Database
    actor: Actor
    options: Options
    planner: _Planner
    summary: Summary
    seen: _Seen


@dataclass(frozen=True)
class _Held:
    """A row the guard holds, and the person it matched."""

    row: UserRow
    user_id: str
    reason: str


class _GroupNames:
    """Group names to ids (OKTA_GROUPs), remembered across batches."""

    def __init__(self) -> None:
        self.ids: dict[str, str | None] = {}

    def resolve(self, session: Session, names: set[str]) -> dict[str, t.Group]:
        missing = sorted(name for name in names if name not in self.ids)
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            found = dict(
                session.execute(
                    select(t.Group.name_lower, t.Group.id).where(
                        t.Group.name_scope == directory.OKTA_SCOPE, any_of(t.Group.name_lower, part)
                    )
                ).all()
            )
            for name in part:
                self.ids[name] = found.get(name)
        wanted = [self.ids[name] for name in names if self.ids.get(name)]
        by_id = {
            group.id: group
            for group in session.execute(
                select(t.Group).where(any_of(t.Group.id, wanted))
            ).scalars()
        }
        return {name: by_id[gid] for name in names if (gid := self.ids.get(name)) in by_id}


def _users_batch(run: _Run, batch: list[UserRow]) -> None:
    batch = _without_duplicates(batch, run.seen, run.options.match, run.summary)
    if not batch:
        return
    if run.options.dry_run:
        with run.database.read() as session:
            plans, held = _plan(session, run.planner, batch, run.summary)
        for plan in plans:
            run.summary.count(plan.outcome)
        for item in held:
            run.summary.hold(item.row.line, item.reason, item.row.key)
        return
    local = Summary(dry_run=False)
    try:
        with run.database.transaction() as session:
            plans, held = _plan(session, run.planner, batch, local)
            directory.import_users(session, run.actor, [plan.person for plan in plans])
            _store_holds(session, run, held, local)
    except (HeadwaterError, IntegrityError):
        # Another writer got in between the checks and the write: one row at a time.
        for row in batch:
            _users_one(run, row)
        return
    _merge(run.summary, local, plans)


def _merge(summary: Summary, local: Summary, plans: Sequence[_Plan]) -> None:
    for plan in plans:
        summary.count(plan.outcome)
    for item in local.rejections:
        summary.reject(item.line, item.reason, item.key)
    for item in local.held_rows:
        summary.hold(item.line, item.reason, item.key or "", item.id)


def _users_one(run: _Run, row: UserRow) -> None:
    local = Summary(dry_run=False)
    try:
        with run.database.transaction() as session:
            plans, held = _plan(session, run.planner, [row], local)
            directory.import_users(session, run.actor, [plan.person for plan in plans])
            _store_holds(session, run, held, local)
    except HeadwaterError as exc:
        run.summary.reject(row.line, "; ".join(exc.causes) or exc.summary, row.key)
        return
    except IntegrityError:
        run.summary.reject(row.line, "conflicts with a change made during the import", row.key)
        return
    _merge(run.summary, local, plans)


def _without_duplicates(
    batch: list[UserRow], seen: _Seen, match: MatchKey, summary: Summary
) -> list[UserRow]:
    """The rows whose login and match key the file has not given before (first one wins)."""
    keys = sorted({key for row in batch for key in _keys_of(row, match)})
    first = seen.first_lines(keys)
    kept: list[UserRow] = []
    new: list[tuple[str, int]] = []
    for row in batch:
        row_keys = _keys_of(row, match)
        clash = next((key for key in row_keys if key in first), None)
        if clash is not None:
            name, _, value = clash.partition(":")
            summary.reject(
                row.line, f"{name} {value!r} appears twice (first on line {first[clash]})", row.key
            )
            continue
        for key in row_keys:
            first[key] = row.line
            new.append((key, row.line))
        kept.append(row)
    seen.add(new)
    return kept


@dataclass(frozen=True)
class _Plan:
    person: directory.ImportedUser
    outcome: str


def _plan(
    session: Session, planner: _Planner, batch: list[UserRow], summary: Summary
) -> tuple[list[_Plan], list[_Held]]:
    """What each row does, checked against the database, and the rows the guard holds;
    rejected rows are reported in ``summary``, and held ones left out of the plans."""
    match = planner.match
    matches = _matching_users(session, match, [row.key for row in batch])
    logins = _login_owners(session, [row.attributes.get("login") for row in batch])
    names = {name.lower() for row in batch for name in row.groups}
    known = planner.groups.resolve(session, names)
    member_of = _manual_memberships(session, [u.id for us in matches.values() for u in us])
    missing = planner.missing
    plans: list[_Plan] = []
    held: list[_Held] = []
    for row in batch:
        try:
            found = matches.get(_normal(match, row.key), [])
            if len(found) > 1:
                raise RowError(f"{len(found)} people have {match.value} {row.key!r}")
            user = found[0] if found else None
            login = row.attributes.get("login")
            owner = logins.get(login.lower()) if isinstance(login, str) else None
            if owner is not None and (user is None or owner != user.id):
                raise RowError(f"login {login!r} belongs to another person")
            row_groups = _groups_of(row, known)
            if user is None:
                plan = _plan_create(row, row_groups, missing)
            else:
                plan = _plan_update(row, user, row_groups, member_of.get(user.id, set()))
        except RowError as exc:
            summary.reject(row.line, str(exc), row.key)
            continue
        if planner.holding and plan.person.action in rows_.DESTRUCTIVE and user is not None:
            held.append(_Held(row, user.id, f"asks for {row.status}"))
            continue
        plans.append(plan)
    return plans, held


# --- Held rows --------------------------------------------------------------------------------


def _store_holds(session: Session, run: _Run, held: list[_Held], summary: Summary) -> None:
    """Keep each held row for an admin's decision (in the batch's transaction), with one
    system log event each; a row too large to keep is rejected instead."""
    if not held:
        return
    now = clock.utcnow()
    created_by = run.actor.as_json()
    pending: list[Pending] = []
    for item in held:
        row = item.row
        stored = {
            "attributes": row.attributes,
            "groups": list(row.groups),
            "status": row.status.value if row.status is not None else None,
        }
        if len(json.dumps(stored)) > MAX_HOLD_BYTES:
            summary.reject(
                row.line,
                f"too large to hold for approval (over {MAX_HOLD_BYTES} bytes): import it "
                "with confirm",
                row.key,
            )
            continue
        hold = t.ImportHold(
            id=ids.new_id("imh"),
            kind="users",
            user_id=item.user_id,
            line=row.line,
            key=row.key[:255],
            row=stored,
            reason=item.reason,
            match=run.options.match.value,
            source=run.options.source,
            created=now,
            created_by=created_by,
            decision=HoldDecision.HELD.value,
        )
        session.add(hold)
        summary.hold(row.line, item.reason, row.key, hold.id)
        pending.append(
            Pending(
                HOLD_EVENT,
                f"CSV import row held for approval: {item.reason}",
                (Target(item.user_id, "User", row.key),),
                {"holdId": hold.id, "line": row.line},
            )
        )
    session.flush()
    record_many(session, run.actor, pending)


_DECISIONS = tuple(decision.value for decision in HoldDecision)


def holds_query(status: str | None = None) -> Select[Any]:
    """Held rows with this decision (HELD when omitted), oldest first; InvalidRequest for a
    decision that does not exist."""
    wanted = status or HoldDecision.HELD.value
    if wanted not in _DECISIONS:
        raise InvalidRequest(
            "Api validation failed: status", [f"status: one of {', '.join(_DECISIONS)}"]
        )
    return select(t.ImportHold).where(t.ImportHold.decision == wanted)


def list_holds(database: Database, status: str | None, limit: int) -> list[t.ImportHold]:
    """The first ``limit`` held rows with this decision, oldest first (detached)."""
    query = holds_query(status).order_by(t.ImportHold.id).limit(limit)
    with database.read() as session:
        rows = list(session.execute(query).scalars())
        session.expunge_all()
    return rows


def decide_hold(database: Database, actor: Actor, hold_id: str, approve: bool) -> t.ImportHold:
    """Approve (apply the row now, as an import with confirm would: all of it or nothing) or
    reject (leave the person as they are) one held row. NotFound for an unknown id, Conflict
    when it was decided already, InvalidRequest when the row no longer applies to the person
    (nothing is written then, and the row stays held)."""
    with database.transaction() as session:
        hold = session.execute(
            select(t.ImportHold).where(t.ImportHold.id == hold_id).with_for_update()
        ).scalar_one_or_none()
        if hold is None:
            raise NotFound(f"Not found: Resource not found: {hold_id} (ImportHold)")
        if hold.decision != HoldDecision.HELD:
            raise Conflict(
                f"This held row was already decided: {hold.decision}",
                [f"id: {hold_id} is {hold.decision}, not HELD"],
            )
        who = import_actor(actor, hold.source)
        if approve:
            _apply_hold(session, who, hold)
        decision = HoldDecision.APPROVED if approve else HoldDecision.REJECTED
        hold.decision = decision.value
        hold.decided_at = clock.utcnow()
        hold.decided_by = actor.as_json()
        verb = "approve" if approve else "reject"
        record(
            session,
            f"{HOLD_EVENT}.{verb}",
            f"Held CSV import row {'approved' if approve else 'rejected'}",
            actor=who,
            targets=[Target(hold.user_id, "User", hold.key)],
            debug={"holdId": hold.id, "line": hold.line, "reason": hold.reason},
        )
        session.flush()
        session.expunge(hold)
    return hold


def _apply_hold(session: Session, actor: Actor, hold: t.ImportHold) -> None:
    stored = hold.row
    status = stored.get("status")
    row = UserRow(
        line=hold.line,
        key=hold.key,
        attributes=dict(stored.get("attributes") or {}),
        groups=tuple(stored.get("groups") or ()),
        status=Status(status) if status else None,
    )
    match = MatchKey(hold.match)
    stale = "This held row no longer applies to the person; reject it, or import a new file"
    found = _matching_users(session, match, [hold.key]).get(_normal(match, hold.key), [])
    if [user.id for user in found] != [hold.user_id]:
        raise InvalidRequest(
            stale, [f"{match.value} {hold.key!r} no longer matches the person it matched"]
        )
    local = Summary(dry_run=False)
    plans, _ = _plan(session, _Planner(match, False, [], _GroupNames()), [row], local)
    if local.rejections:
        raise InvalidRequest(stale, [f"line {hold.line}: {local.rejections[0].reason}"])
    person = plans[0].person
    try:
        directory.import_users(session, actor, [person])
    except IntegrityError as exc:
        raise InvalidRequest(stale, ["it conflicts with a change made since"]) from exc


def _groups_of(row: UserRow, known: dict[str, t.Group]) -> list[t.Group]:
    unknown = [name for name in row.groups if name.lower() not in known]
    if unknown:
        raise RowError(f"unknown group {unknown[0]!r}")
    return [known[name.lower()] for name in row.groups]


def _plan_create(row: UserRow, row_groups: list[t.Group], missing: list[str]) -> _Plan:
    if missing:
        raise RowError(f"missing required columns for a new person: {', '.join(missing)}")
    if row.status in (Status.SUSPENDED, Status.DEPROVISIONED):
        raise RowError(f"status: a new person cannot start {row.status}")
    try:
        # A row that gives every required attribute was checked whole when it was read.
        profile = row.attributes if row.complete else profiles.validate_user_profile(row.attributes)
    except InvalidRequest as exc:
        raise RowError(exc.causes[0] if exc.causes else exc.summary) from exc
    person = directory.ImportedUser(
        profile=profile, activate=row.status != Status.STAGED, groups=row_groups, validated=True
    )
    return _Plan(person, "created")


def _plan_update(row: UserRow, user: t.User, row_groups: list[t.Group], held: set[str]) -> _Plan:
    try:
        merged = profiles.validate_user_profile(profiles.merge(user.profile, row.attributes))
    except InvalidRequest as exc:
        raise RowError(exc.causes[0] if exc.causes else exc.summary) from exc
    if row.status == Status.STAGED and user.status != Status.STAGED:
        raise RowError(f"status: a {user.status} person cannot go back to STAGED")
    action = rows_.status_action(user.status, row.status)
    joins = [group for group in row_groups if group.id not in held]
    changed = merged != user.profile or bool(joins) or action is not None
    person = directory.ImportedUser(
        profile=merged, user=user, groups=joins, action=action, validated=True
    )
    return _Plan(person, "updated" if changed else "unchanged")


def _matching_users(session: Session, match: MatchKey, keys: list[str]) -> dict[str, list[t.User]]:
    column: Any
    if match is MatchKey.LOGIN:
        column = t.User.login_lower
    elif match is MatchKey.EMAIL:
        column = t.User.email_lower
    else:
        column = json_text(t.User.profile, "employeeNumber")
    wanted = sorted({_normal(match, key) for key in keys})
    found: dict[str, list[t.User]] = {}
    for start in range(0, len(wanted), 500):
        query = select(t.User).where(
            any_of(column, wanted[start : start + 500]), t.User.status != DELETED
        )
        for user in session.execute(query).scalars():
            value = user.profile.get(match.value) if match is MatchKey.EMPLOYEE_NUMBER else None
            key = str(value) if value is not None else _normal(match, _match_value(user, match))
            found.setdefault(key, []).append(user)
    return found


def _match_value(user: t.User, match: MatchKey) -> str:
    return user.login if match is MatchKey.LOGIN else str(user.profile.get("email", ""))


def _login_owners(session: Session, logins: list[Any]) -> dict[str, str]:
    lowered = sorted({login.lower() for login in logins if isinstance(login, str)})
    owners: dict[str, str] = {}
    for start in range(0, len(lowered), 500):
        owners.update(
            session.execute(
                select(t.User.login_lower, t.User.id).where(
                    any_of(t.User.login_lower, lowered[start : start + 500])
                )
            ).all()
        )
    return owners


def _manual_memberships(session: Session, user_ids: list[str]) -> dict[str, set[str]]:
    held: dict[str, set[str]] = {}
    for start in range(0, len(user_ids), 500):
        rows = session.execute(
            select(t.Membership.user_id, t.Membership.group_id).where(
                any_of(t.Membership.user_id, user_ids[start : start + 500]),
                t.Membership.manual.is_(True),
            )
        ).all()
        for user_id, group_id in rows:
            held.setdefault(user_id, set()).add(group_id)
    return held


def _record_import(database: Database, actor: Actor, kind: str, summary: Summary) -> None:
    """One event for the whole import, with its counts."""
    with database.transaction() as session:
        record(
            session,
            "system.import.complete",
            f"CSV import of {kind} complete",
            actor=actor,
            debug={
                "created": summary.created,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "rejected": summary.rejected,
                "held": summary.held,
            },
        )


# --- Groups -----------------------------------------------------------------------------------


def import_groups(
    database: Database,
    actor: Actor,
    source: Source,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Summary:
    """Create OKTA_GROUPs from a file with a ``name`` column (and ``description``); a group of
    the same name (case-insensitively) is updated when its description differs."""
    summary = Summary(dry_run=dry_run)
    seen = _Seen()
    try:
        with _opened(source) as lines:
            rows = rows_.read_rows(lines)
            header = rows_.parse_group_header(_header_of(rows))
            batch: list[rows_.GroupRow] = []
            for row in rows:
                try:
                    batch.append(rows_.group_row(header, row))
                except RowError as exc:
                    summary.reject(row.line, str(exc))
                if len(batch) >= batch_size:
                    _groups_batch(database, actor, batch, seen, dry_run, summary)
                    batch = []
                    _report(progress, lines.read, summary)
            if batch:
                _groups_batch(database, actor, batch, seen, dry_run, summary)
            _report(progress, lines.read, summary)
    finally:
        seen.close()
    summary.sort()
    if not dry_run:
        _record_import(database, actor, "groups", summary)
    return summary


def _groups_batch(
    database: Database,
    actor: Actor,
    batch: list[rows_.GroupRow],
    seen: _Seen,
    dry_run: bool,
    summary: Summary,
) -> None:
    keys = ["name:" + row.profile["name"].lower() for row in batch]
    first = seen.first_lines(sorted(set(keys)))
    kept: list[rows_.GroupRow] = []
    for row, key in zip(batch, keys, strict=True):
        if key in first:
            name = row.profile["name"]
            summary.reject(row.line, f"name {name!r} appears twice (first on line {first[key]})")
            continue
        first[key] = row.line
        kept.append(row)
    seen.add([(key, first[key]) for key in set(keys) if key in first])
    for row in kept:
        try:
            if dry_run:
                with database.read() as session:
                    summary.count(_group_outcome(session, actor, row, write=False))
            else:
                with database.transaction() as session:
                    summary.count(_group_outcome(session, actor, row, write=True))
        except HeadwaterError as exc:
            summary.reject(row.line, "; ".join(exc.causes) or exc.summary, row.profile["name"])


def _group_outcome(session: Session, actor: Actor, row: rows_.GroupRow, *, write: bool) -> str:
    existing = session.execute(
        select(t.Group).where(
            t.Group.name_scope == directory.OKTA_SCOPE,
            t.Group.name_lower == row.profile["name"].lower(),
        )
    ).scalar_one_or_none()
    if existing is None:
        if write:
            directory.create_group(session, actor, row.profile)
        return "created"
    if existing.profile == row.profile:
        return "unchanged"
    if write:
        directory.replace_group(session, actor, existing.id, row.profile)
    return "updated"
