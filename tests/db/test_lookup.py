"""A ``Lookup`` runs its query on a pooled DB-API connection, outside SQLAlchemy's
``Connection``: it must give the same values a ``Connection`` gives (dates parsed, JSON
decoded) on both databases, give its connection back to the pool, and leave no transaction
open behind it."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, create_engine, select, text, update
from sqlalchemy.engine import make_url

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.db.lookup import Lookup
from headwater.errors import Unauthenticated
from headwater.runtime import Runtime
from headwater.services import tokens
from headwater.testing.toolkit import api_token, create_app, create_group

_TOKEN = select(
    t.ApiToken.id,
    t.ApiToken.role,
    t.ApiToken.app_ids,
    t.ApiToken.group_ids,
    t.ApiToken.created,
    t.ApiToken.expires_at,
    t.ApiToken.last_used,
).where(t.ApiToken.name == bindparam("name"))


def test_values_match_what_a_connection_reads(runtime: Runtime) -> None:
    app = create_app(runtime)
    group = create_group(runtime, "Engineering")
    api_token(runtime, "scoped", role="APP_ADMIN", apps=[app], lifetime=timedelta(days=2))
    api_token(runtime, "groups", role="GROUP_MEMBERSHIP_ADMIN", groups=[group])
    lookup = Lookup(_TOKEN)
    engine = runtime.database.engine
    for name in ("scoped", "groups"):
        with engine.connect() as connection:
            expected = tuple(connection.execute(_TOKEN, {"name": name}).one())
        found = lookup.one_or_none(engine, {"name": name})
        assert found == expected
    scoped = lookup.one_or_none(engine, {"name": "scoped"})
    assert scoped is not None
    assert scoped[2] == [app] and scoped[3] == []
    assert scoped[5] is not None and scoped[5] > scoped[4], "an expiry read back as a date"
    assert lookup.one_or_none(engine, {"name": "no such token"}) is None


def test_the_connection_goes_back_to_the_pool_with_no_transaction_open(runtime: Runtime) -> None:
    token = api_token(runtime, "everyday")
    engine = runtime.database.engine
    for _ in range(3):
        assert tokens.authenticate_row(engine, token).name == "everyday"
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    api_token(runtime, "written after the reads")
    if runtime.database.is_sqlite:
        # A read transaction left open would pin the WAL at its snapshot, before that write.
        with sqlite3.connect(make_url(runtime.database.url).database or "") as probe:
            busy, _, _ = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "a pooled SQLite connection still holds a read transaction"
    else:
        with engine.connect() as connection:
            idle_in_transaction = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )
            ).scalar()
        assert idle_in_transaction == 0


def test_a_revoked_token_fails_at_its_next_check(runtime: Runtime) -> None:
    token = api_token(runtime, "short-lived")
    engine = runtime.database.engine
    assert tokens.authenticate_row(engine, token).name == "short-lived"
    with runtime.database.transaction() as session:
        tokens.revoke(session, "short-lived", SYSTEM)
    with pytest.raises(Unauthenticated):
        tokens.authenticate_row(engine, token)


def test_the_next_transaction_on_the_same_connection_still_rolls_back(runtime: Runtime) -> None:
    """On PostgreSQL the lookup reads in autocommit; the connection must leave it again, or the
    next unit of work on it would commit statement by statement."""
    token = api_token(runtime, "one-connection")
    engine = create_engine(runtime.database.url, pool_size=1, max_overflow=0)
    try:
        assert tokens.authenticate_row(engine, token).name == "one-connection"
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(
                update(t.ApiToken)
                .where(t.ApiToken.name == "one-connection")
                .values(name="renamed, then rolled back")
            )
            transaction.rollback()
        assert tokens.authenticate_row(engine, token).name == "one-connection"
    finally:
        engine.dispose()
