"""The migrations build exactly the schema that ``headwater.db.tables`` declares.

Alembic's autogenerate comparison is run between a database migrated to head and the models'
metadata, on SQLite and on PostgreSQL: any difference in tables, columns, types, nullability,
indexes, unique constraints, foreign keys (with their ``ON DELETE``) or server defaults fails
with the list of differences.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Index, UnaryExpression, text

from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.db.tables import Base


def schema_differences(url: str) -> list[Any]:
    """Alembic's diff between the database at ``url`` (migrated to head here) and the models."""
    database = Database(url)
    try:
        upgrade(database)  # a no-op where the fixture's database is already at head
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = list(compare_metadata(context, Base.metadata))
    finally:
        database.dispose()
    if url.startswith("sqlite"):
        differences = _without_sqlite_sort_order(differences)
    return differences


def _index_columns(index: Index) -> list[str]:
    """An index's column names, a descending column named as itself."""
    names = []
    for expression in index.expressions:
        column = expression.element if isinstance(expression, UnaryExpression) else expression
        names.append(str(getattr(column, "name", None) or column))
    return names


def _without_sqlite_sort_order(differences: list[Any]) -> list[Any]:
    """SQLite's reflection does not report a column's sort order, so alembic sees an index
    with a DESC column as removed and added again: drop such a pair when the names and columns
    agree (the order itself is checked by ``test_the_claim_index_sorts_kind_descending``)."""
    removed = {d[1].name: d[1] for d in differences if d[0] == "remove_index"}
    added = {d[1].name: d[1] for d in differences if d[0] == "add_index"}
    same = {
        name
        for name in removed.keys() & added.keys()
        if _index_columns(removed[name]) == _index_columns(added[name])
    }
    return [
        d for d in differences if not (d[0] in ("remove_index", "add_index") and d[1].name in same)
    ]


def test_migrated_schema_matches_the_models(any_db_url: str) -> None:
    differences = schema_differences(any_db_url)
    assert differences == [], "migrations and models differ:\n" + "\n".join(
        repr(difference) for difference in differences
    )


def test_the_claim_index_sorts_kind_descending(any_db_url: str) -> None:
    """A claim walks ``ix_reconcile_keys_due`` in (not_before, kind DESC) order."""
    database = Database(any_db_url)
    try:
        upgrade(database)
        with database.engine.connect() as connection:
            if any_db_url.startswith("sqlite"):
                rows = connection.execute(text("PRAGMA index_xinfo(ix_reconcile_keys_due)")).all()
                keyed = [(row.name, row.desc) for row in rows if row.key]
                assert keyed == [("not_before", 0), ("kind", 1)]
            else:
                found = connection.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_reconcile_keys_due'"
                    )
                ).scalar_one()
                assert found.endswith("(not_before, kind DESC)")
    finally:
        database.dispose()
