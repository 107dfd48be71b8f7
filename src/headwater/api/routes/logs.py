"""``GET /api/v1/logs``: the system log as Okta's LogEvent objects."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from headwater import clock
from headwater.api.deps import AuthenticatedRoute, DbDep, allow
from headwater.api.listing import After
from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.db import tables as t
from headwater.db.paging import checked_cursor
from headwater.domain.access import Permission as P
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest
from headwater.services import system_log

__all__ = ["event_json", "router"]

router = APIRouter(tags=["SystemLog"], route_class=AuthenticatedRoute)

LOGS_LIMIT = (100, 1000)
DEFAULT_WINDOW = timedelta(days=7)

_CLIENT = {
    "userAgent": None,
    "zone": None,
    "device": None,
    "id": None,
    "ipAddress": None,
    "geographicalContext": None,
}
_AUTHENTICATION = {
    "authenticationProvider": None,
    "credentialProvider": None,
    "credentialType": None,
    "issuer": None,
    "interface": None,
    "authenticationStep": 0,
    "externalSessionId": None,
}
_SECURITY = {"asNumber": None, "asOrg": None, "isp": None, "domain": None, "isProxy": None}


def event_json(event: t.Event) -> dict[str, Any]:
    """Okta's LogEvent. Headwater events carry no client or session context (nulls)."""
    return {
        "uuid": event.uuid,
        "published": clock.format_okta(event.published),
        "eventType": event.event_type,
        "version": "0",
        "severity": event.severity,
        "legacyEventType": None,
        "displayMessage": event.display_message,
        "actor": event.actor,
        "client": dict(_CLIENT),
        "outcome": {"result": event.outcome_result, "reason": event.outcome_reason},
        "target": event.targets,
        "transaction": {"type": "WEB", "id": event.id, "detail": {}},
        "debugContext": {"debugData": event.debug},
        "authenticationContext": dict(_AUTHENTICATION),
        "securityContext": dict(_SECURITY),
        "request": {"ipChain": []},
    }


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return clock.parse_okta(value)
    except ValueError as exc:
        cause = f"{name}: not an ISO 8601 timestamp"
        raise InvalidRequest(f"Api validation failed: {name}", [cause]) from exc


@router.get("/logs", dependencies=[allow(P.LOGS_READ)])
def list_logs(
    request: Request,
    db: DbDep,
    since: str | None = None,
    until: str | None = None,
    filter: str | None = None,
    q: str | None = None,
    limit: int | None = None,
    after: After = None,
    sortOrder: Literal["ASCENDING", "DESCENDING"] = "ASCENDING",
) -> JSONResponse:
    """Events from ``since`` (default: 7 days ago) to ``until``, oldest first by default.

    An ascending query without ``until`` is a poll: it always links a next page, as Okta does.
    """
    start = _moment("since", since) or clock.utcnow() - DEFAULT_WINDOW
    end = _moment("until", until)
    if q is not None and check_text(q):
        raise InvalidRequest("Api validation failed: q", ["q: invalid characters"])
    size = clamp_limit(limit, *LOGS_LIMIT)
    ascending = sortOrder == "ASCENDING"
    position = checked_cursor(after)
    with db.read() as session:
        query = system_log.events_query(since=start, until=end, filter=filter, q=q)
        page = system_log.fetch_events(
            session, query, ascending=ascending, after=position, limit=size
        )
        response = JSONResponse([event_json(event) for event in page.events])
        next_cursor = page.next_cursor
        if ascending and end is None and next_cursor is None:
            next_cursor = page.events[-1].id if page.events else position
    set_link_headers(request, response, next_cursor, size)
    return response
