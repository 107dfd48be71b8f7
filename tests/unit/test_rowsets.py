"""``rows_in`` selects exactly the rows a row-value ``IN`` would, and lets SQLite search the
primary key instead of scanning the table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
    tuple_,
)

from headwater.db.rowsets import MAX_GROUPS, rows_in

metadata = MetaData()
keys = Table(
    "keys",
    metadata,
    Column("app", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("subject", Integer, primary_key=True),
)
ROWS = [(a, k, s) for a in "ab" for k in ("user", "push") for s in range(6)]
row_lists = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(["user", "push", "x"]), st.integers(0, 7)),
    max_size=30,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(keys.insert(), [{"app": a, "kind": k, "subject": s} for a, k, s in ROWS])
    yield engine
    engine.dispose()


def _selected(engine: Engine, condition: object) -> set[tuple[str, str, int]]:
    with engine.connect() as connection:
        query = select(keys.c.app, keys.c.kind, keys.c.subject).where(condition)  # type: ignore[arg-type]
        return {(a, k, s) for a, k, s in connection.execute(query)}


@settings(max_examples=200, deadline=None)
@given(wanted=row_lists)
def test_the_same_rows_as_a_row_value_in(
    engine: Engine, wanted: list[tuple[str, str, int]]
) -> None:
    columns = (keys.c.app, keys.c.kind, keys.c.subject)
    expected = set(ROWS) & set(wanted)
    assert _selected(engine, rows_in(columns, wanted)) == expected
    if wanted:
        assert _selected(engine, tuple_(*columns).in_(wanted)) == expected


def test_one_column_and_no_rows(engine: Engine) -> None:
    assert _selected(engine, rows_in((keys.c.subject,), [(1,), (2,)])) == {
        r for r in ROWS if r[2] in (1, 2)
    }
    assert _selected(engine, rows_in((keys.c.app, keys.c.subject), [])) == set()


def test_sqlite_searches_the_key_instead_of_scanning(engine: Engine) -> None:
    condition = rows_in(
        (keys.c.app, keys.c.kind, keys.c.subject), [("a", "user", 1), ("a", "user", 2)]
    )
    query = select(keys.c.subject).where(condition)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = " ".join(
            str(row[-1]) for row in connection.execute(text("EXPLAIN QUERY PLAN " + sql))
        )
    assert "SEARCH keys USING" in plan and "SCAN keys" not in plan


def test_many_distinct_prefixes_fall_back_to_the_row_value_list(engine: Engine) -> None:
    wanted = [(f"app{n}", "user", n) for n in range(MAX_GROUPS + 1)] + [("a", "user", 3)]
    columns = (keys.c.app, keys.c.kind, keys.c.subject)
    assert _selected(engine, rows_in(columns, wanted)) == {("a", "user", 3)}
