"""An SQLite file database keeps its connections open across requests: as many requests as the
pool holds, at once, open no new connection the next time round (opening one costs a connect
and four pragmas, and closing it after a request threw that work away)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event, text

from headwater.db.engine import SQLITE_POOL_SIZE, Database


def _concurrent_reads(database: Database, count: int) -> None:
    """``count`` read connections held at the same moment, then all given back."""
    barrier = threading.Barrier(count)

    def read() -> None:
        with database.read() as session:
            session.execute(text("SELECT 1"))
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=read) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_requests_reuse_pooled_connections(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    opened: list[object] = []
    event.listen(database.engine, "connect", lambda dbapi, _record: opened.append(dbapi))
    try:
        _concurrent_reads(database, 8)
        assert len(opened) == 8
        _concurrent_reads(database, 8)
        assert len(opened) == 8, "the second round opened connections of its own"
        _concurrent_reads(database, SQLITE_POOL_SIZE)
        _concurrent_reads(database, SQLITE_POOL_SIZE)
        assert len(opened) == SQLITE_POOL_SIZE
    finally:
        database.dispose()


def test_an_in_memory_database_still_opens(tmp_path: Path) -> None:
    database = Database("sqlite://")
    try:
        with database.read() as session:
            assert session.execute(text("SELECT 41 + 1")).scalar() == 42
    finally:
        database.dispose()
