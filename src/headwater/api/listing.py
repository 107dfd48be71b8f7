"""List endpoints in one shape: validated cursor, clamped limit, one page, ``Link`` headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.api.pagination import clamp_limit, fetch_page, set_link_headers
from headwater.errors import InvalidRequest

__all__ = ["MAX_CURSOR", "After", "cursor", "page_response"]

MAX_CURSOR = 64

#: The ``after`` query parameter, documented as what it is: an opaque id-like cursor.
After = Annotated[str | None, Query(max_length=MAX_CURSOR, pattern="^[A-Za-z0-9]*$")]


def cursor(after: str | None) -> str | None:
    """Cursors are ids: anything else cannot match a row and is refused (never sent to SQL)."""
    if after is None or after == "":
        return None
    if len(after) > MAX_CURSOR or not after.isascii() or not after.isalnum():
        raise InvalidRequest("Api validation failed: after", ["after: not a valid cursor"])
    return after


def page_response(
    request: Request,
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    render: Callable[[Any], dict[str, Any]],
    *,
    limit: int | None,
    after: str | None,
    sizes: tuple[int, int],
) -> JSONResponse:
    """One page of ``query`` rendered as a JSON array, with ``self`` and ``next`` links.

    ``sizes`` is (default, maximum) page size; larger limits are capped as Okta does."""
    size = clamp_limit(limit, *sizes)
    page = fetch_page(session, query, id_column, limit=size, after=cursor(after))
    response = JSONResponse([render(row) for row in page])
    set_link_headers(request, response, page.next_cursor, size)
    return response
