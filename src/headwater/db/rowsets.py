"""Row-set conditions an index can serve on every database.

``(a, b, c) IN ((…), (…))`` is what a batch of composite keys reads like, and PostgreSQL serves
it from the index, but SQLite scans the whole table for a row-value ``IN`` list: a batch that
finishes 200 of 100,000 queued keys read all 100,000, so a drain cost grew with the square of
its size. The rows of one batch nearly always share their leading columns (one app, one kind;
one pushed group), so grouping them by those gives ``a = ? AND b = ? AND c IN (…)``, which both
databases answer from the primary key or index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, tuple_
from sqlalchemy.orm import QueryableAttribute

__all__ = ["rows_in"]

#: More distinct leading values than this and the grouped form would nest too deep for
#: SQLite's parser; the row-value list is used instead (such batches are rare and small).
MAX_GROUPS = 50


def rows_in(
    columns: Sequence[ColumnElement[Any] | QueryableAttribute[Any]], rows: Iterable[Sequence[Any]]
) -> ColumnElement[bool]:
    """True for a row whose ``columns`` equal one of ``rows``: grouped by every column but the
    last, each group ``first = ? AND … AND last IN (…)``."""
    listed = [tuple(row) for row in rows]
    if not listed:
        return false()
    if len(columns) == 1:
        return columns[0].in_([row[0] for row in listed])
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in listed:
        groups.setdefault(row[:-1], []).append(row[-1])
    if len(groups) > MAX_GROUPS:
        return tuple_(*columns).in_(listed)
    return or_(
        *(
            and_(
                *(column == value for column, value in zip(columns[:-1], prefix, strict=True)),
                columns[-1].in_(last),
            )
            for prefix, last in groups.items()
        )
    )
