"""List endpoints in one shape: validated cursor, clamped limit, one page, ``Link`` headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.db.paging import MAX_CURSOR, checked_cursor, fetch_page

__all__ = ["After", "page_response"]

#: The ``after`` query parameter, documented as what it is: an opaque id-like cursor.
After = Annotated[str | None, Query(max_length=MAX_CURSOR, pattern="^[A-Za-z0-9]*$")]


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
    page = fetch_page(session, query, id_column, limit=size, after=checked_cursor(after))
    response = JSONResponse([render(row) for row in page])
    set_link_headers(request, response, page.next_cursor, size)
    return response
