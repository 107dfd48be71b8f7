"""Row-set conditions an index can serve on every database, in SQL whose text does not
depend on how many rows are asked for.

``(a, b, c) IN ((…), (…))`` is what a batch of composite keys reads like, and PostgreSQL serves
it from the index, but SQLite scans the whole table for a row-value ``IN`` list: a batch that
finishes 200 of 100,000 queued keys read all 100,000, so a drain cost grew with the square of
its size. The rows of one batch nearly always share their leading columns (one app, one kind;
one pushed group), so grouping them by those gives ``a = ? AND b = ? AND c IN (…)``, which both
databases answer from the primary key or index.

A plain ``IN (…)`` list has one parameter per value, so each batch size is another statement
for PostgreSQL to parse and plan, and the driver prepares none of them; :func:`any_of` gives
PostgreSQL ``c = ANY(?)`` with one array parameter instead: one statement text, prepared once
per connection. SQLite has no arrays and keeps its ``IN`` list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    String,
    all_,
    and_,
    any_,
    bindparam,
    false,
    or_,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

__all__ = ["any_of", "rows_in"]

#: More distinct leading values than this and the grouped form would nest too deep for
#: SQLite's parser; the row-value list is used instead (such batches are rare and small).
MAX_GROUPS = 50

Column = ColumnElement[Any] | QueryableAttribute[Any]


class AnyOf(ColumnElement[bool]):
    """``column IN values`` (``NOT IN`` when ``negated``) with every value in one parameter,
    compiled per dialect."""

    __visit_name__ = "headwater_any_of"
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
        ("negated", InternalTraversal.dp_boolean),
    ]
    type = Boolean()
    #: A condition in itself: SQLite must not get ``… IN (…) = 1``, which no index serves.
    _is_implicitly_boolean = True

    def __init__(
        self, column: ColumnElement[Any], values: BindParameter[Any], negated: bool = False
    ) -> None:
        self.column = column
        self.values = values
        self.negated = negated

    def _negate(self) -> ColumnElement[Any]:
        return AnyOf(self.column, self.values, not self.negated)


def any_of(column: Column, values: Iterable[Any] | BindParameter[Any]) -> ColumnElement[bool]:
    """True where ``column`` is one of ``values``: a list, or an expanding ``bindparam`` whose
    list is given at execution (one parameter shared by several statements)."""
    expression = column.expression
    if isinstance(values, BindParameter):
        if not values.expanding:
            raise ValueError("any_of takes an expanding bindparam")
        return AnyOf(expression, values)
    listed = list(values)
    return AnyOf(expression, bindparam(None, listed, type_=expression.type, expanding=True))


@compiles(AnyOf)
def _in_list(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = element.column, element.values
    return compiler.process(column.not_in(values) if element.negated else column.in_(values), **kw)


@compiles(AnyOf, "postgresql")
def _any_array(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    # A copy of the bind keeps its link to the original, so a cached statement still takes
    # each execution's own list (SQLAlchemy matches extracted parameters through clones).
    array = element.values._clone(maintain_key=True)
    array.expanding = False
    # Typed, so the driver's list of strings is cast to an array (it sends it as unknown).
    array.type = ARRAY(_item_type(element.column.type))
    if element.negated:
        return compiler.process(element.column != all_(array), **kw)
    return compiler.process(element.column == any_(array), **kw)


def _item_type(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    """The array's item type: a string column's without its length (a cast to ``VARCHAR(n)``
    would cut longer values short and match a row they do not name)."""
    return String() if isinstance(column_type, String) else column_type


def rows_in(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> ColumnElement[bool]:
    """True for a row whose ``columns`` equal one of ``rows``: grouped by every column but the
    last, each group ``first = ? AND … AND last IN (…)`` (:func:`any_of`)."""
    listed = [tuple(row) for row in rows]
    if not listed:
        return false()
    if len(columns) == 1:
        return any_of(columns[0], [row[0] for row in listed])
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in listed:
        groups.setdefault(row[:-1], []).append(row[-1])
    if len(groups) > MAX_GROUPS:
        return tuple_(*columns).in_(listed)
    return or_(
        *(
            and_(
                *(column == value for column, value in zip(columns[:-1], prefix, strict=True)),
                any_of(columns[-1], last),
            )
            for prefix, last in groups.items()
        )
    )
