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
            return list(compare_metadata(context, Base.metadata))
    finally:
        database.dispose()


def test_migrated_schema_matches_the_models(any_db_url: str) -> None:
    differences = schema_differences(any_db_url)
    assert differences == [], "migrations and models differ:\n" + "\n".join(
        repr(difference) for difference in differences
    )
