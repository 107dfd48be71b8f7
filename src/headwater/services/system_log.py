"""Reading the system log: Okta's ``since``/``until``/``filter``/``q`` over the events table.

``target.id`` is answered from the ``event_targets`` index (a seek, not a JSON scan); pages
walk the time-ordered event id in either direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, or_, select
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.domain.filters import Value, invalid_filter
from headwater.errors import InvalidRequest
from headwater.services.filtering import (
    Attribute,
    ExactAttribute,
    TextAttribute,
    TimeAttribute,
    json_text,
    where,
)

__all__ = ["LogPage", "events_query", "fetch_events"]

MAX_TERMS = 10
MAX_TERM_LENGTH = 100


@dataclass(frozen=True)
class _TargetId:
    """``target.id eq "..."`` through the event_targets index."""

    def compare(self, operator: str, value: Value) -> ColumnElement[bool]:
        if operator != "eq" or not isinstance(value, str):
            raise invalid_filter('target.id supports only eq "<id>"')
        events = select(t.EventTarget.event_id).where(t.EventTarget.target_id == value)
        return t.Event.id.in_(events)


def _event_attribute(name: str) -> Attribute | None:
    attributes: dict[str, Attribute] = {
        "eventType": ExactAttribute(t.Event.event_type),
        "uuid": ExactAttribute(t.Event.uuid),
        "severity": ExactAttribute(t.Event.severity, upper=True),
        "outcome.result": ExactAttribute(t.Event.outcome_result, upper=True),
        "displayMessage": TextAttribute(t.Event.display_message),
        "published": TimeAttribute(t.Event.published),
        "actor.id": ExactAttribute(json_text(t.Event.actor, "id")),
        "actor.type": ExactAttribute(json_text(t.Event.actor, "type")),
        "actor.alternateId": TextAttribute(json_text(t.Event.actor, "alternateId")),
        "target.id": _TargetId(),
    }
    return attributes.get(name)


def _keywords(q: str) -> list[ColumnElement[bool]]:
    """Every term must appear (any case) in the message, the type, the actor or a target."""
    terms = q.split()
    if len(terms) > MAX_TERMS or any(len(term) > MAX_TERM_LENGTH for term in terms):
        cause = f"q: at most {MAX_TERMS} terms of {MAX_TERM_LENGTH} characters"
        raise InvalidRequest("Api validation failed: q", [cause])
    haystacks = (
        func.lower(t.Event.display_message),
        func.lower(t.Event.event_type),
        func.lower(cast(t.Event.actor, String)),
        func.lower(cast(t.Event.targets, String)),
    )
    return [
        or_(*(hay.contains(term.lower(), autoescape=True) for hay in haystacks)) for term in terms
    ]


def events_query(
    *, since: datetime, until: datetime | None, filter: str | None, q: str | None
) -> Select[t.Event]:
    query = select(t.Event).where(t.Event.published >= since)
    if until is not None:
        query = query.where(t.Event.published < until)
    condition = where(filter, _event_attribute)
    if condition is not None:
        query = query.where(condition)
    if q:
        query = query.where(*_keywords(q))
    return query


@dataclass(frozen=True)
class LogPage:
    events: list[t.Event]
    next_cursor: str | None


def fetch_events(
    session: Session, query: Select[t.Event], *, ascending: bool, after: str | None, limit: int
) -> LogPage:
    """One page from the cursor on, in either order; one extra row says if more exist."""
    order: Any = t.Event.id if ascending else t.Event.id.desc()
    if after:
        query = query.where(t.Event.id > after if ascending else t.Event.id < after)
    rows = list(session.execute(query.order_by(order).limit(limit + 1)).scalars())
    more = len(rows) > limit
    events = rows[:limit]
    return LogPage(events, events[-1].id if more else None)
