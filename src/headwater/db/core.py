"""Core statements run in an ORM session's transaction without the ORM's per-call work.

``Session.execute`` of a Core statement (a column select, an insert on a table) costs three
times ``Connection.execute`` of the same statement: it prepares an ORM execution context
whether or not the statement names an entity. On the paths every create and profile change
takes (the schema read, the active rules' stamps, the outbox's enqueue) that was 60 µs a
statement. :func:`execute` does what ``Session.execute`` would have done first, flush what the
session holds unwritten, then runs the statement on the session's connection.

Only for statements that return plain rows: a select of ORM entities still needs the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVarTuple, overload

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TypedReturnsRows

__all__ = ["execute"]

_Ts = TypeVarTuple("_Ts")


@overload
def execute(
    session: Session,
    statement: TypedReturnsRows[*_Ts],
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> CursorResult[*_Ts]: ...


@overload
def execute(
    session: Session,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> CursorResult[*tuple[Any, ...]]: ...


def execute(
    session: Session,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> CursorResult[*tuple[Any, ...]]:
    """``statement`` in ``session``'s transaction, after the flush its autoflush would make
    (``options``: execution options, such as ``preserve_rowcount``)."""
    session.flush()
    return session.connection().execute(statement, params, execution_options=options or None)
