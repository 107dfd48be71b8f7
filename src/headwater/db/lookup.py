"""A fixed one-row read run straight on a pooled DB-API connection.

Every API request checks its token with one indexed ``SELECT``. Through a SQLAlchemy
``Connection`` that read cost ten times the statement itself: the connection object, its
``begin`` event (SQLite's explicit ``BEGIN``), the execution context, the result object and
the rollback at the end, each dispatching events. A :class:`Lookup` compiles its query once
per dialect and runs it on the pool's DB-API connection: the pool still checks a PostgreSQL
connection before handing it out (pre-ping); on PostgreSQL the read runs in autocommit (one
round trip, not ``BEGIN``, the read and ``ROLLBACK``); and each column's value goes through its
type's own result processing, as a ``Connection`` would do (decision 54).

Only for reads of one row by a key, where no transaction is wanted around a single statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect

__all__ = ["Lookup"]

_Processor = Callable[[Any], Any] | None


class _Compiled:
    """A query's SQL for one dialect, the order of its parameters and its columns' result
    processors."""

    __slots__ = ("names", "positional", "postgresql", "processors", "sql")

    def __init__(self, query: Select[Any], dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.postgresql = dialect.name == "postgresql"
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        self.names = tuple(compiled.positiontup or ()) if self.positional else ()
        self.processors: tuple[_Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in query.selected_columns
        )


class Lookup:
    """``query`` (its parameters ``bindparam``s of plain values), ready to run on any engine."""

    __slots__ = ("_compiled", "query")

    def __init__(self, query: Select[Any]) -> None:
        self.query = query
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled.setdefault(dialect.name, _Compiled(self.query, dialect))
        return compiled

    def one_or_none(self, engine: Engine, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row for ``params`` (its columns as the query selects them), or None."""
        compiled = self._for(engine.dialect)
        arguments: Any = (
            tuple(params[name] for name in compiled.names) if compiled.positional else params
        )
        connection = engine.raw_connection()
        # psycopg opens a transaction before a statement unless in autocommit: BEGIN, the
        # statement and ROLLBACK would be three round trips for one read. (SQLite's connections
        # are always in autocommit here: the engine turns pysqlite's own BEGIN off.)
        autocommit = compiled.postgresql
        try:
            if autocommit:
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.sql, arguments)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            try:
                if autocommit:
                    connection.driver_connection.autocommit = False  # type: ignore[union-attr]
            except Exception:
                connection.invalidate()  # a connection in an unknown state is not pooled again
            connection.close()  # back to the pool
        if row is None:
            return None
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(compiled.processors, row, strict=True)
        )
