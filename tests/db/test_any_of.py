"""``any_of`` and ``rows_in`` on both databases: the rows an ``IN`` list would select, whatever
the list; on PostgreSQL one statement text for every list length, which the driver prepares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    select,
    text,
)

from headwater.db.rowsets import any_of, rows_in

metadata = MetaData()
keys = Table(
    "any_of_keys",
    metadata,
    Column("app", String(8), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("subject", String(32), primary_key=True),
    prefixes=["TEMPORARY"],
)
#: A 32-character subject: the longest the column holds.
FULL = "s" * 32
ROWS = [(a, g, s) for a in ("a", "b") for g in (1, 2) for s in ("s1", "s2", "s3", FULL)]
IDS: BindParameter[str] = bindparam("ids", expanding=True)


@pytest.fixture
def connection(any_db_url: str) -> Iterator[Connection]:
    """One connection holding a temporary table of ROWS (gone when the connection closes)."""
    engine = create_engine(any_db_url)
    with engine.connect() as connection:
        metadata.create_all(connection)
        connection.execute(
            keys.insert(), [{"app": a, "generation": g, "subject": s} for a, g, s in ROWS]
        )
        yield connection
        connection.rollback()
    engine.dispose()


def _subjects(
    connection: Connection, condition: Any, params: dict[str, Any] | None = None
) -> set[str]:
    query = select(keys.c.subject).where(keys.c.app == "a", keys.c.generation == 1, condition)
    return set(connection.execute(query, params or {}).scalars())


@pytest.mark.parametrize(
    "wanted",
    [[], ["s1"], ["s2", "s3"], ["s1", "s1", "nobody"], [FULL], [FULL + "s"], ["s1"] * 70],
    ids=["none", "one", "two", "repeated", "longest", "too-long", "seventy"],
)
def test_any_of_selects_what_in_selects(connection: Connection, wanted: list[str]) -> None:
    expected = {s for s in ("s1", "s2", "s3", FULL) if s in wanted}
    assert _subjects(connection, any_of(keys.c.subject, wanted)) == expected
    assert _subjects(connection, keys.c.subject.in_(wanted)) == expected
    assert (
        _subjects(connection, ~any_of(keys.c.subject, wanted))
        == {
            "s1",
            "s2",
            "s3",
            FULL,
        }
        - expected
    )
    # A list given at execution, through one expanding parameter.
    assert _subjects(connection, any_of(keys.c.subject, IDS), {"ids": wanted}) == expected


def test_one_statement_takes_each_executions_values(connection: Connection) -> None:
    """The statement is compiled once and then taken from the cache: every execution must
    still read its own list (a cached statement holding on to the first list would not)."""
    for wanted in (["s1"], ["s2", "s3"], [], ["s3"], ["s1", "s2", "s3", FULL]):
        assert _subjects(connection, any_of(keys.c.subject, wanted)) == set(wanted)
        condition = any_of(keys.c.subject, IDS)
        assert _subjects(connection, condition, {"ids": wanted}) == set(wanted)


def test_integers_and_negated_lists_of_app_ids(connection: Connection) -> None:
    query = select(keys.c.app, keys.c.generation).where(keys.c.subject == "s1")
    assert set(connection.execute(query.where(any_of(keys.c.generation, [2, 3])))) == {
        ("a", 2),
        ("b", 2),
    }
    assert set(connection.execute(query.where(~any_of(keys.c.app, ["a"])))) == {
        ("b", 1),
        ("b", 2),
    }


@pytest.mark.parametrize(
    "wanted",
    [
        [],
        [("a", 1, "s1")],
        [("a", 1, "s1"), ("a", 1, "s2"), ("a", 2, "s2"), ("b", 9, "s1"), ("c", 1, "s1")],
        [("a", 1, s) for s in ("s1", "s2", "s3", "nobody")],
        [(f"x{n}", 1, "s1") for n in range(60)] + [("b", 2, "s3")],
    ],
    ids=["none", "one", "groups", "one-group", "many-groups"],
)
def test_rows_in_selects_what_a_row_value_in_selects(
    connection: Connection, wanted: list[tuple[str, int, str]]
) -> None:
    columns = (keys.c.app, keys.c.generation, keys.c.subject)
    selected = set(connection.execute(select(*columns).where(rows_in(columns, wanted))))
    assert selected == set(ROWS) & set(wanted)


@pytest.mark.postgres
def test_postgresql_prepares_one_statement_for_every_list_length(pg_url: str) -> None:
    """One array parameter: the same SQL for 1 or 60 values, prepared by the driver after its
    threshold (5 runs), and the primary key still serves it."""
    engine = create_engine(pg_url)
    statements: set[str] = set()

    def note(*args: Any) -> None:
        statements.add(args[2])

    event.listen(engine, "before_cursor_execute", note)
    with engine.connect() as connection:
        metadata.create_all(connection)
        connection.execute(
            keys.insert(), [{"app": a, "generation": g, "subject": s} for a, g, s in ROWS]
        )
        statements.clear()
        for count in range(1, 61):
            wanted = ["s1", "s2", "s3", FULL][: count % 4 + 1] + ["nobody"] * count
            assert _subjects(connection, any_of(keys.c.subject, wanted)) == set(wanted) - {"nobody"}
        event.remove(engine, "before_cursor_execute", note)
        assert len(statements) == 1, statements
        prepared = connection.execute(
            text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%ANY%'")
        ).scalars()
        assert [s for s in prepared if "any_of_keys" in s], "not prepared"
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        query = select(keys.c.subject).where(keys.c.app == "a", any_of(keys.c.subject, ["s1"]))
        compiled = query.compile(connection)
        plan = connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars()
        assert "Index" in " ".join(plan)
        connection.rollback()
    engine.dispose()
