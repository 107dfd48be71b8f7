"""CSV import, the pure part: reading rows from bytes, the header, and one row's meaning.

A CSV file is read line by line from any iterable of byte lines, so a file of any size is never
held in memory. Each row is checked completely here (cells, types, status, group names) before
the service looks at the database, so a row is either wholly acceptable or rejected with one
reason and the line it starts on. Values are text unless the header types a column
(``costBand:integer``); standard attributes are always text, checked by ``profiles``' rules.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from headwater.domain import profiles
from headwater.domain.lifecycle import Action, Status
from headwater.domain.storable import MAX_SAFE_INTEGER, check_text
from headwater.errors import InvalidRequest

__all__ = [
    "GROUP_DELIMITERS",
    "MATCH_KEYS",
    "CsvRow",
    "GroupHeader",
    "GroupRow",
    "Header",
    "MatchKey",
    "RowError",
    "UserRow",
    "group_row",
    "parse_group_header",
    "parse_header",
    "read_rows",
    "status_action",
    "user_row",
]

#: Characters that separate group names in the ``groups`` column.
GROUP_DELIMITERS = ";|"
_SPLIT = re.compile(r"[;|]")
#: Columns that are not profile attributes.
GROUPS_COLUMN = "groups"
STATUS_COLUMN = "status"
#: Statuses a row may ask for. STAGED and PROVISIONED only when the person is new.
ROW_STATUSES = frozenset(
    {Status.STAGED, Status.PROVISIONED, Status.ACTIVE, Status.SUSPENDED, Status.DEPROVISIONED}
)
#: A row may name this many groups at most (like ``groupIds`` of a create).
MAX_ROW_GROUPS = 100
MAX_COLUMNS = profiles.MAX_ATTRIBUTES + 2
#: Longest physical line read; a longer one is rejected, not kept in memory.
MAX_LINE_BYTES = 1 << 20
_TYPED = re.compile(r"^(?P<name>[^:]+):(?P<type>string|integer|number|boolean)$")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class MatchKey(StrEnum):
    """How a row finds the person it describes."""

    LOGIN = "login"
    EMAIL = "email"
    EMPLOYEE_NUMBER = "employeeNumber"


MATCH_KEYS = tuple(key.value for key in MatchKey)


class RowError(Exception):
    """One row cannot be imported; the message says why, for a person to fix."""


@dataclass(frozen=True)
class CsvRow:
    """A row's cells and the physical line it starts on (the header is line 1)."""

    line: int
    cells: list[str] | None
    #: Why the row could not be read at all (broken encoding, stray quote, NUL...).
    problem: str | None = None


def read_rows(lines: Iterable[bytes]) -> Iterator[CsvRow]:
    """Rows from UTF-8 byte lines (a leading BOM is dropped). A line that is not valid UTF-8
    rejects the row it belongs to, naming the line and byte, and reading goes on."""
    broken: dict[int, str] = {}
    state = {"line": 0}

    def decoded() -> Iterator[str]:
        for raw in lines:
            state["line"] += 1
            number = state["line"]
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if len(raw) > MAX_LINE_BYTES:
                broken[number] = f"line {number} is longer than {MAX_LINE_BYTES} bytes"
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                broken[number] = (
                    f"not valid UTF-8 (byte 0x{byte} at position {exc.start + 1} of line {number})"
                )
                yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(decoded(), strict=True)
    ended = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, ended = ended + 1, reader.line_num
            _forget(broken, start, ended)
            yield CsvRow(start, None, f"not a valid CSV row ({exc})")
            continue
        start, ended = ended + 1, reader.line_num
        problems = [broken[n] for n in range(start, ended + 1) if n in broken]
        _forget(broken, start, ended)
        if problems:
            yield CsvRow(start, None, problems[0])
        elif cells and any(cell.strip() for cell in cells):
            yield CsvRow(start, cells)


def _forget(broken: dict[int, str], start: int, end: int) -> None:
    for number in [n for n in broken if n <= end]:
        del broken[number]


# --- Users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    index: int
    attribute: str
    kind: str = "string"


@dataclass(frozen=True)
class Header:
    """What each column of a users file means."""

    columns: tuple[Column, ...]
    groups: int | None
    status: int | None
    width: int
    match: MatchKey

    @property
    def attributes(self) -> frozenset[str]:
        return frozenset(column.attribute for column in self.columns)

    def key_of(self, row: CsvRow) -> str | None:
        """The match key's cell of a row, as read (to name a rejected row)."""
        index = next(c.index for c in self.columns if c.attribute == self.match.value)
        if row.cells is None or index >= len(row.cells):
            return None
        return row.cells[index].strip()[:255] or None

    def missing_for_create(self) -> list[str]:
        """Required attributes a new person needs that no column gives."""
        return [
            name
            for name, rule in profiles.USER_STANDARD.items()
            if rule.required and name not in self.attributes
        ]


_STANDARD_BY_LOWER = {name.lower(): name for name in profiles.USER_STANDARD}


def parse_header(cells: list[str] | None, match: MatchKey) -> Header:
    """The header row, or InvalidRequest naming every column that cannot be used."""
    if not cells:
        raise InvalidRequest("The file is empty", ["header: the first line must name the columns"])
    if len(cells) > MAX_COLUMNS:
        raise InvalidRequest("Too many columns", [f"header: at most {MAX_COLUMNS} columns"])
    causes: list[str] = []
    columns: list[Column] = []
    groups = status = None
    seen: set[str] = set()
    for index, raw in enumerate(cells):
        name = raw.strip()
        kind = "string"
        typed = _TYPED.match(name)
        if typed:
            name, kind = typed["name"].strip(), typed["type"]
        lowered = name.lower()
        if lowered in seen:
            causes.append(f"header: column {name!r} appears twice")
            continue
        seen.add(lowered)
        if lowered == GROUPS_COLUMN:
            groups = index
        elif lowered == STATUS_COLUMN:
            status = index
        elif lowered in _STANDARD_BY_LOWER:
            if kind != "string":
                causes.append(f"header: {name} is a standard attribute, always text")
            columns.append(Column(index, _STANDARD_BY_LOWER[lowered]))
        elif re.fullmatch(profiles.CUSTOM_NAME_PATTERN, name):
            columns.append(Column(index, name, kind))
        else:
            causes.append(
                f"header: column {name!r} is not an attribute name "
                "(letters, digits and underscores, max 100)"
            )
    if match.value not in {column.attribute for column in columns}:
        causes.append(f"header: the match key column {match.value!r} is missing")
    if causes:
        raise InvalidRequest("The header cannot be imported: " + causes[0], causes)
    return Header(tuple(columns), groups, status, len(cells), match)


@dataclass(frozen=True)
class UserRow:
    """One person as a row gives them: the attributes it sets (blank cells set nothing), the
    groups it names, and the status it asks for."""

    line: int
    key: str
    attributes: dict[str, Any]
    groups: tuple[str, ...]
    status: Status | None
    #: The attributes alone passed ``profiles.validate_user_profile`` (the row gives every
    #: required attribute): a new person's profile needs no second check.
    complete: bool = False


def user_row(header: Header, row: CsvRow) -> UserRow:
    """The row's meaning, or RowError with the first reason it cannot be imported."""
    if row.cells is None:
        raise RowError(row.problem or "unreadable row")
    cells = row.cells
    if len(cells) != header.width:
        raise RowError(f"{len(cells)} cells where the header has {header.width} columns")
    attributes: dict[str, Any] = {}
    for column in header.columns:
        text = cells[column.index].strip()
        if text:
            attributes[column.attribute] = _typed(column, text)
    key = attributes.get(header.match.value)
    if not isinstance(key, str) or not key:
        raise RowError(f"{header.match.value}: the match key is blank")
    groups = _groups(cells[header.groups]) if header.groups is not None else ()
    status = _status(cells[header.status]) if header.status is not None else None
    stand_ins = _placeholders(attributes)
    try:
        profiles.validate_user_profile({**stand_ins, **attributes})
    except InvalidRequest as exc:
        raise RowError(exc.causes[0] if exc.causes else exc.summary) from exc
    return UserRow(row.line, key, attributes, groups, status, complete=not stand_ins)


def _placeholders(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Stand-ins for required attributes a row leaves out, so that checking the row's own
    values does not fail on what an update keeps (a create checks the whole profile again)."""
    stand_in = {"login": "x@x.xx", "email": "x@x.xx", "firstName": "x", "lastName": "x"}
    return {name: value for name, value in stand_in.items() if name not in attributes}


def _typed(column: Column, text: str) -> Any:
    problem = check_text(text)
    if problem:
        raise RowError(f"{column.attribute}: {problem}")
    if column.kind == "integer":
        try:
            number = int(text)
        except ValueError:
            raise RowError(f"{column.attribute}: {text!r} is not an integer") from None
        if abs(number) > MAX_SAFE_INTEGER:
            raise RowError(f"{column.attribute}: is too large a number")
        return number
    if column.kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise RowError(f"{column.attribute}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise RowError(f"{column.attribute}: must be a finite number")
        return value
    if column.kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise RowError(f"{column.attribute}: {text!r} is not true or false")
    return text


def _groups(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in _SPLIT.split(text) if part.strip()))
    if len(names) > MAX_ROW_GROUPS:
        raise RowError(f"groups: at most {MAX_ROW_GROUPS} groups in one row")
    for name in names:
        problem = check_text(name) or (None if len(name) <= 255 else "longer than 255 characters")
        if problem:
            raise RowError(f"groups: {name[:40]!r} {problem}")
    return names


def _status(text: str) -> Status | None:
    value = text.strip().upper()
    if not value:
        return None
    try:
        status = Status(value)
    except ValueError:
        status = None
    if status not in ROW_STATUSES:
        allowed = ", ".join(sorted(ROW_STATUSES))
        raise RowError(f"status: {text.strip()[:40]!r} is not one of {allowed}")
    return status


#: Actions an import holds when too many rows ask for them (see ``mass_change``).
DESTRUCTIVE = frozenset({Action.DEACTIVATE, Action.SUSPEND})
_ACTIVE_LIKE = frozenset({Status.ACTIVE, Status.PROVISIONED})


def status_action(current: str, wanted: Status | None) -> Action | None:
    """The lifecycle action that takes a person from ``current`` to the status a row asks for,
    None when they are there already, or RowError when no action leads there."""
    if wanted is None or current == wanted:
        return None
    now = Status(current)
    if wanted in _ACTIVE_LIKE:
        if now in _ACTIVE_LIKE:
            return None
        if now == Status.SUSPENDED:
            return Action.UNSUSPEND
        if now in (Status.STAGED, Status.DEPROVISIONED):
            return Action.ACTIVATE
    elif wanted == Status.DEPROVISIONED:
        return Action.DEACTIVATE
    elif wanted == Status.SUSPENDED and now == Status.ACTIVE:
        return Action.SUSPEND
    raise RowError(f"status: a {now} person cannot become {wanted} by an import")


def asks_to_leave(header: Header, row: CsvRow) -> bool:
    """Does this row ask for a status that deactivates or suspends (read without checking the
    rest of the row: the guard counts what a file asks for before anything is written)?"""
    if header.status is None or row.cells is None or len(row.cells) != header.width:
        return False
    return row.cells[header.status].strip().upper() in (Status.SUSPENDED, Status.DEPROVISIONED)


# --- Groups -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupHeader:
    name: int
    description: int | None
    width: int


def parse_group_header(cells: list[str] | None) -> GroupHeader:
    """A groups file has a ``name`` column and optionally ``description``."""
    if not cells:
        raise InvalidRequest("The file is empty", ["header: the first line must name the columns"])
    lowered = [cell.strip().lower() for cell in cells]
    unknown = [cell for cell in lowered if cell not in ("name", "description")]
    causes = [f"header: column {cell!r} is not name or description" for cell in unknown]
    if "name" not in lowered:
        causes.append("header: the column 'name' is missing")
    if len(set(lowered)) != len(lowered):
        causes.append("header: a column appears twice")
    if causes:
        raise InvalidRequest("The header cannot be imported: " + causes[0], causes)
    description = lowered.index("description") if "description" in lowered else None
    return GroupHeader(lowered.index("name"), description, len(cells))


@dataclass(frozen=True)
class GroupRow:
    line: int
    profile: dict[str, str]


def group_row(header: GroupHeader, row: CsvRow) -> GroupRow:
    if row.cells is None:
        raise RowError(row.problem or "unreadable row")
    if len(row.cells) != header.width:
        raise RowError(f"{len(row.cells)} cells where the header has {header.width} columns")
    profile = {"name": row.cells[header.name].strip()}
    if header.description is not None and row.cells[header.description].strip():
        profile["description"] = row.cells[header.description].strip()
    try:
        clean = profiles.validate_group_profile(profile)
    except InvalidRequest as exc:
        raise RowError(exc.causes[0] if exc.causes else exc.summary) from exc
    return GroupRow(row.line, clean)
