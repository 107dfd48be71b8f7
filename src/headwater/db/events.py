"""The system log: every write records an event, in the same transaction, with Okta's names."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import tables

__all__ = ["SYSTEM", "Actor", "Buffer", "Pending", "Target", "record", "record_many"]


@dataclass(frozen=True)
class Actor:
    """Who made a change: an API token, a console admin, or Headwater itself."""

    id: str
    type: str
    alternate_id: str
    display_name: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "alternateId": self.alternate_id,
            "displayName": self.display_name,
            "detailEntry": None,
        }


#: Changes the engine makes on its own (provisioning outcomes, schedules).
SYSTEM = Actor(
    id="headwater", type="SystemPrincipal", alternate_id="system", display_name="Headwater"
)


@dataclass(frozen=True)
class Target:
    id: str
    type: str
    alternate_id: str | None = None
    display_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "alternateId": self.alternate_id,
            "displayName": self.display_name,
            "detailEntry": None,
        }


def record(
    session: Session,
    event_type: str,
    message: str,
    *,
    actor: Actor,
    targets: list[Target] | tuple[Target, ...] = (),
    outcome: str = "SUCCESS",
    reason: str | None = None,
    severity: str | None = None,
    debug: dict[str, Any] | None = None,
) -> tables.Event:
    """Add one LogEvent to the session (committed with the change it describes)."""
    event = tables.Event(
        id=ids.new_id("evt"),
        uuid=str(uuid.uuid4()),
        published=clock.utcnow(),
        event_type=event_type,
        severity=severity or ("WARN" if outcome == "FAILURE" else "INFO"),
        display_message=message,
        outcome_result=outcome,
        outcome_reason=reason,
        actor=actor.as_json(),
        targets=[t.as_json() for t in targets],
        debug=debug or {},
    )
    session.add(event)
    for target_id in {t.id for t in targets}:
        session.add(tables.EventTarget(target_id=target_id, event_id=event.id))
    return event


_JSON_COLUMNS = frozenset({"actor", "targets", "debug"})
_EVENT_COLUMNS = tuple(column.name for column in tables.Event.__table__.columns)


def _raw_insert(
    connection: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Many rows of plain values (text, or JSON already encoded) straight to the driver's
    ``executemany``: a batch's events are tens of thousands of rows, and building and
    processing each row's parameters costs more than the database's insert. The values must
    need no conversion (see :func:`record_many`)."""
    if connection.dialect.paramstyle == "qmark":
        marks = ["?"] * len(columns)
    else:  # psycopg: JSON columns cast from the encoded text
        marks = ["%s::json" if name in _JSON_COLUMNS else "%s" for name in columns]
    names = ", ".join(columns)
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({names}) VALUES ({', '.join(marks)})",
        rows,
    )


class Buffer:
    """Events of one transaction held as rows and written in two ``executemany`` inserts by
    :meth:`write`: the same rows as :func:`record` (id and time taken when the event is added,
    so the log's order is unchanged), without an ORM object per event. Each row's JSON is
    encoded once as it is added (the actor and a repeated target once per buffer), and the
    rows go to the driver as they are (see :func:`_raw_insert`)."""

    def __init__(self) -> None:
        #: (id, published, event_type, severity, message, outcome, reason, actor, targets).
        self.events: list[tuple[Any, ...]] = []
        self.targets: list[tuple[str, str]] = []
        self._encoded: dict[Actor | Target, str] = {}

    def _json(self, item: Actor | Target) -> str:
        text = self._encoded.get(item)
        if text is None:
            text = self._encoded[item] = json.dumps(item.as_json())
        return text

    def add(
        self,
        event_type: str,
        message: str,
        *,
        actor: Actor,
        targets: Sequence[Target] = (),
        outcome: str = "SUCCESS",
        reason: str | None = None,
    ) -> None:
        event_id = ids.new_id("evt")
        encoded = self._json
        self.events.append(
            (
                event_id,
                clock.utcnow(),
                event_type,
                "WARN" if outcome == "FAILURE" else "INFO",
                message,
                outcome,
                reason,
                encoded(actor),
                "[" + ", ".join([encoded(target) for target in targets]) + "]",
            )
        )
        self.targets.extend((target_id, event_id) for target_id in {t.id for t in targets})

    def write(self, session: Session) -> None:
        """Insert what was added (on the session's connection, in its transaction)."""
        if not self.events:
            return
        connection = session.connection()
        published_type = tables.Event.__table__.c.published.type
        convert = published_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
        noise = secrets.token_bytes(16 * len(self.events))  # one read for every uuid4
        rows = []
        for n, (event_id, published, kind, severity, text, result, why, who, aimed) in enumerate(
            self.events
        ):
            row = {
                "id": event_id,
                "uuid": str(uuid.UUID(bytes=noise[16 * n : 16 * n + 16], version=4)),
                "published": convert(published) if convert else published,
                "event_type": kind,
                "severity": severity,
                "display_message": text,
                "outcome_result": result,
                "outcome_reason": why,
                "actor": who,
                "targets": aimed,
                "debug": "{}",
            }
            rows.append(tuple(row[name] for name in _EVENT_COLUMNS))
        _raw_insert(connection, "events", _EVENT_COLUMNS, rows)
        if self.targets:
            _raw_insert(connection, "event_targets", ("target_id", "event_id"), self.targets)
        self.events, self.targets = [], []


@dataclass(frozen=True)
class Pending:
    """A successful event waiting to be written with others (see :func:`record_many`)."""

    event_type: str
    message: str
    targets: tuple[Target, ...] = ()
    debug: dict[str, Any] | None = None


def record_many(session: Session, actor: Actor, pending: Sequence[Pending]) -> None:
    """The same rows as :func:`record` for many events of one actor, in two multi-row
    inserts: an import's batch writes thousands of events, and one ORM object each would cost
    more than the change they describe."""
    if not pending:
        return
    connection = session.connection()
    # The batch's one timestamp, converted once as the column's type would convert it.
    published_type = tables.Event.__table__.c.published.type
    convert = published_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    now = clock.utcnow()
    published = convert(now) if convert else now
    who = json.dumps(actor.as_json())
    encoded: dict[Target, str] = {}
    event_ids = ids.new_ids("evt", len(pending))
    noise = secrets.token_bytes(16 * len(pending))  # one read for every event's uuid4
    events: list[tuple[Any, ...]] = []
    links: list[tuple[str, str]] = []
    for n, (event_id, item) in enumerate(zip(event_ids, pending, strict=True)):
        parts = []
        for target in item.targets:
            text = encoded.get(target)
            if text is None:
                text = encoded[target] = json.dumps(target.as_json())
            parts.append(text)
        row = {
            "id": event_id,
            "uuid": str(uuid.UUID(bytes=noise[16 * n : 16 * n + 16], version=4)),
            "published": published,
            "event_type": item.event_type,
            "severity": "INFO",
            "display_message": item.message,
            "outcome_result": "SUCCESS",
            "outcome_reason": None,
            "actor": who,
            "targets": "[" + ", ".join(parts) + "]",
            "debug": json.dumps(item.debug) if item.debug else "{}",
        }
        events.append(tuple(row[name] for name in _EVENT_COLUMNS))
        links.extend((target_id, event_id) for target_id in {t.id for t in item.targets})
    _raw_insert(connection, "events", _EVENT_COLUMNS, events)
    if links:
        _raw_insert(connection, "event_targets", ("target_id", "event_id"), links)
