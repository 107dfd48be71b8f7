"""Cursor pagination with ``Link`` headers, as Okta pages: ``rel="self"`` first, ``next`` last.

Lists are ordered by a time-ordered id; the cursor is the last id of the page, so every page
is an index seek (``WHERE id > :after ORDER BY id LIMIT :n``) and page 500 costs what page 1 does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

__all__ = ["Page", "fetch_page", "set_link_headers"]

T = TypeVar("T")


class Page(list[T]):
    """One page of rows plus the cursor of the next page, if there is one."""

    next_cursor: str | None = None


def fetch_page(
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    after: str | None,
) -> Page[Any]:
    """Run ``query`` from the cursor on; one extra row tells whether a next page exists."""
    if after:
        query = query.where(id_column > after)
    rows: Sequence[Any] = session.execute(query.order_by(id_column).limit(limit + 1)).all()
    page: Page[Any] = Page(row[0] if len(row) == 1 else row for row in rows[:limit])
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = getattr(last[0], "id", None) if len(last) == 1 else last[0].id
    return page


def set_link_headers(
    request: Request, response: Response, next_cursor: str | None, limit: int
) -> None:
    """``Link: <self>; rel="self"`` then, if there is more, ``<next>; rel="next"``."""
    base = str(request.url.remove_query_params(["after"]))
    links = [f'<{request.url}>; rel="self"']
    if next_cursor:
        params = dict(request.query_params)
        params["after"] = next_cursor
        params["limit"] = str(limit)
        links.append(f'<{base.split("?")[0]}?{urlencode(params)}>; rel="next"')
    for link in links:
        response.headers.append("Link", link)


def clamp_limit(limit: int | None, default: int, maximum: int) -> int:
    """Okta caps page sizes silently rather than failing."""
    if limit is None or limit <= 0:
        return default
    return min(limit, maximum)
