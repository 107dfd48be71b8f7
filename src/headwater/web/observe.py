"""System Log (filters by event type, target and time range) and Health (per app: queued keys,
account sync states, quarantine, last errors) pages."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.paging import checked_cursor
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.domain.states import HoldDecision
from headwater.errors import InvalidRequest
from headwater.services import system_log
from headwater.web.core import AdminDep, ConsoleRoute, allow, reading, render

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

LOG_PAGE = 100
DEFAULT_WINDOW = timedelta(days=7)
LAST_ERRORS = 5


def _moment(name: str, text: str) -> datetime | None:
    """``datetime-local`` inputs send minutes without a zone; the console works in UTC."""
    if not text:
        return None
    try:
        return clock.parse_okta(text if len(text) > 16 else text + ":00")
    except ValueError:
        cause = f"{name}: not a date and time"
        raise InvalidRequest("Api validation failed: " + cause, [cause]) from None


def _quoted(name: str, value: str) -> str:
    """A value for the log's filter language; quotes and backslashes cannot be expressed."""
    if '"' in value or "\\" in value or len(value) > 255:
        cause = f"{name}: quotes and backslashes are not allowed"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    return f'"{value}"'


def _filter(event_type: str, target: str, outcome: str) -> str | None:
    terms = []
    if event_type:
        terms.append(f"eventType eq {_quoted('eventType', event_type)}")
    if target:
        terms.append(f"target.id eq {_quoted('target', target)}")
    if outcome in ("SUCCESS", "FAILURE"):
        terms.append(f'outcome.result eq "{outcome}"')
    return " and ".join(terms) or None


def _event_types(session: Session) -> list[str]:
    query = select(t.Event.event_type).distinct().order_by(t.Event.event_type).limit(300)
    return list(session.execute(query).scalars())


@router.get("/logs", dependencies=[allow(P.LOGS_READ)])
def logs(
    request: Request,
    admin: AdminDep,
    event_type: str = "",
    target: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    q: str = "",
    after: str | None = None,
) -> Response:
    """Newest first; the filter is the system log's own language, built from the form."""
    start = _moment("since", since) or clock.utcnow() - DEFAULT_WINDOW
    end = _moment("until", until)
    with reading(request) as session:
        query = system_log.events_query(
            since=start,
            until=end,
            filter=_filter(event_type.strip(), target.strip(), outcome),
            q=q.strip() or None,
        )
        page = system_log.fetch_events(
            session, query, ascending=False, after=checked_cursor(after), limit=LOG_PAGE
        )
        types = _event_types(session)
    params = {
        "event_type": event_type,
        "target": target,
        "outcome": outcome,
        "since": since,
        "until": until,
        "q": q,
    }
    context = {
        "section": "logs",
        "events": page.events,
        "next_cursor": page.next_cursor,
        "params": params,
        "event_types": types,
    }
    return render(request, "logs.html", context)


def _grouped(session: Session, *columns: Any) -> list[Any]:
    return list(session.execute(select(*columns, func.count()).group_by(*columns)).all())


def _health_rows(session: Session, only: frozenset[str] | None) -> list[dict[str, Any]]:
    """One row per app; every figure comes from a grouped query, not a loop of queries."""
    pending = dict(_grouped(session, t.ReconcileKey.app_id))
    tasks = dict(_grouped(session, t.Task.app_id))
    held = dict(
        session.execute(
            select(t.HeldOperation.app_id, func.count())
            .where(t.HeldOperation.decision == HoldDecision.HELD)
            .group_by(t.HeldOperation.app_id)
        ).all()
    )
    sync: dict[str, dict[str, int]] = defaultdict(dict)
    for app_id, state, count in _grouped(session, t.AppUserLink.app_id, t.AppUserLink.sync_state):
        sync[app_id][state] = count
    errors: dict[str, list[t.Task]] = defaultdict(list)
    recent = session.execute(select(t.Task).order_by(t.Task.last_attempt.desc()).limit(200))
    for task in recent.scalars():
        if len(errors[task.app_id]) < LAST_ERRORS:
            errors[task.app_id].append(task)
    connections = {
        row.app_id: row.status for row in session.execute(select(t.AppConnection)).scalars()
    }
    query = select(t.App).order_by(t.App.label)
    if only is not None:
        query = query.where(t.App.id.in_(sorted(only)))
    apps = session.execute(query).scalars()
    return [
        {
            "app": app,
            "connection": connections.get(app.id),
            "pending": pending.get(app.id, 0),
            "tasks": tasks.get(app.id, 0),
            "held": held.get(app.id, 0),
            "sync": dict(sorted(sync.get(app.id, {}).items())),
            "errors": errors.get(app.id, []),
        }
        for app in apps
    ]


@router.get("/health", dependencies=[allow(P.APPS_READ)])
def health(request: Request, admin: AdminDep) -> Response:
    with reading(request) as session:
        rows = _health_rows(session, admin.visible(Kind.APP))
    return render(request, "health.html", {"section": "health", "rows": rows})
