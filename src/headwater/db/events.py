"""The system log: every write records an event, in the same transaction, with Okta's names."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert
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


_EVENTS = Table("events", tables.Base.metadata)
_EVENT_TARGETS = Table("event_targets", tables.Base.metadata)


class Buffer:
    """Events of one transaction held as rows and written in two multi-row inserts by
    :meth:`write`: the same rows as :func:`record` (id and time taken when the event is added,
    so the log's order is unchanged), without an ORM object per event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.targets: list[dict[str, str]] = []

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
        self.events.append(
            {
                "id": event_id,
                "uuid": str(uuid.uuid4()),
                "published": clock.utcnow(),
                "event_type": event_type,
                "severity": "WARN" if outcome == "FAILURE" else "INFO",
                "display_message": message,
                "outcome_result": outcome,
                "outcome_reason": reason,
                "actor": actor.as_json(),
                "targets": [target.as_json() for target in targets],
                "debug": {},
            }
        )
        self.targets.extend(
            {"target_id": target_id, "event_id": event_id}
            for target_id in {target.id for target in targets}
        )

    def write(self, session: Session) -> None:
        """Insert what was added (on the session's connection, in its transaction)."""
        if not self.events:
            return
        connection = session.connection()
        connection.execute(insert(_EVENTS), self.events)
        if self.targets:
            connection.execute(insert(_EVENT_TARGETS), self.targets)
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
    now = clock.utcnow()
    who = actor.as_json()
    events: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []
    for item in pending:
        event_id = ids.new_id("evt")
        events.append(
            {
                "id": event_id,
                "uuid": str(uuid.uuid4()),
                "published": now,
                "event_type": item.event_type,
                "severity": "INFO",
                "display_message": item.message,
                "outcome_result": "SUCCESS",
                "outcome_reason": None,
                "actor": who,
                "targets": [target.as_json() for target in item.targets],
                "debug": item.debug or {},
            }
        )
        links.extend(
            {"target_id": target_id, "event_id": event_id}
            for target_id in {target.id for target in item.targets}
        )
    # Core inserts on the session's connection: the ORM's bulk path costs more per row here.
    connection = session.connection()
    connection.execute(insert(_EVENTS), events)
    if links:
        connection.execute(insert(_EVENT_TARGETS), links)
