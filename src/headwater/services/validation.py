"""Small checks every use-case shares: Okta's 400 for a failed rule, ids and URLs that may
reach SQL or a socket, a savepointed insert that turns a race into a 409.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater.errors import Conflict, HeadwaterError, InvalidRequest

MAX_ID = 64


def require(condition: bool, cause: str) -> None:
    if not condition:
        raise InvalidRequest("Api validation failed: " + cause, [cause])


def plausible_id(value: str | None) -> bool:
    """Ids are short and alphanumeric; anything else matches no row and never reaches SQL
    (a NUL would make PostgreSQL fail the query instead of finding nothing)."""
    if not value or len(value) > MAX_ID:
        return False
    return value.isascii() and value.isalnum()


def url_parts(value: str) -> SplitResult | None:
    """``urlsplit`` that answers None for what it cannot parse (e.g. a broken IPv6 host)."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        return None
    return parts


def is_web_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2048:
        return False
    parts = url_parts(value)
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def insert_or_conflict(
    session: Session, row: object, conflict: HeadwaterError | None = None
) -> None:
    """Insert now, in a savepoint: on PostgreSQL two requests can race to the same key, and
    the loser gets a 409 instead of a server error."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise (conflict or Conflict("The resource was changed concurrently; retry")) from exc


def prefix_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
