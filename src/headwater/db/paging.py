"""Keyset pages: lists ordered by a time-ordered id, the cursor being the last id of a page.

Every page is an index seek (``WHERE id > :after ORDER BY id LIMIT :n``), so page 500 costs what
page 1 does. Cursors are ids; anything else is refused before it reaches SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.errors import InvalidRequest

__all__ = ["MAX_CURSOR", "Page", "checked_cursor", "fetch_page"]

T = TypeVar("T")

MAX_CURSOR = 64


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


def checked_cursor(after: str | None) -> str | None:
    """Cursors are ids: anything else cannot match a row and is refused (never sent to SQL)."""
    if after is None or after == "":
        return None
    if len(after) > MAX_CURSOR or not after.isascii() or not after.isalnum():
        raise InvalidRequest("Api validation failed: after", ["after: not a valid cursor"])
    return after
