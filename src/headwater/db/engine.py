"""Engine and session factory; the one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from headwater.config import SettingsError, mask_database_url

__all__ = ["ANALYZE_AFTER_ROWS", "GROWN_ROWS", "SHRUNK_ROWS", "VACUUM_AFTER_ROWS", "Database"]

log = logging.getLogger(__name__)

#: ``session.info`` key: rows a transaction added to the reconcile queue (PostgreSQL only).
GROWN_ROWS = "headwater_grown_rows"
#: Queue rows added (by this process, since its last refresh) after which PostgreSQL's planner
#: statistics of the queue are refreshed (decision 49).
ANALYZE_AFTER_ROWS = 1000
#: Where a transaction's session notes how many queue rows it deleted.
SHRUNK_ROWS = "headwater_shrunk_rows"
#: Queue rows deleted (by this process, since the last vacuum) after which PostgreSQL's queue
#: is vacuumed (decision 51).
VACUUM_AFTER_ROWS = 10000
#: The queue table (a constant: never built from input).
_QUEUE = "reconcile_keys"


class Database:
    """A configured engine plus the unit-of-work helper every service uses."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            _create_sqlite_file(url)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if _sqlite_path(url) is not None:
                # Enough pooled connections for every request and lane at once: past the
                # pool, SQLAlchemy opens (and pragma-configures) a connection per checkout
                # and closes it after, a tenth of an API read's CPU (decision 52).
                kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_SIZE)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
            if "connect_timeout" not in make_url(url).query:
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(headwater_readonly=True)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        #: Queue rows this process added since the queue's statistics were last refreshed.
        self._queue_grown = 0
        #: Queue rows this process deleted since the queue was last vacuumed.
        self._queue_shrunk = 0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error."""
        with self._sessions() as session:
            with session.begin():
                yield session
            grown = int(session.info.pop(GROWN_ROWS, 0))
            shrunk = int(session.info.pop(SHRUNK_ROWS, 0))
        if grown:
            self._queue_grown += grown
            if self._queue_grown >= ANALYZE_AFTER_ROWS:
                self._queue_grown = 0
                self.refresh_queue_statistics()
        if shrunk:
            self._queue_shrunk += shrunk
            if self._queue_shrunk >= VACUUM_AFTER_ROWS:
                self._queue_shrunk = 0
                self.vacuum_queue()

    def refresh_queue_statistics(self) -> None:
        """``ANALYZE`` the reconcile queue on PostgreSQL, after the commit that grew it.

        Planner statistics taken while the queue was nearly empty make PostgreSQL read every
        queued key of an app to find a batch's 200 (the key list becomes a filter instead of
        an index condition), so a drain costs the square of its size; autovacuum may be off,
        or a minute away. Best effort: a failure is logged, never raised (the commit stands).
        """
        if self.is_sqlite:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                connection.execute(text(f"ANALYZE {_QUEUE}"))
        except SQLAlchemyError as exc:
            log.warning("queue statistics not refreshed: %s", type(exc).__name__)

    def vacuum_queue(self) -> None:
        """``VACUUM`` the reconcile queue on PostgreSQL, after the commit that brought this
        process's finished keys to :data:`VACUUM_AFTER_ROWS`.

        A drain deletes keys in the order it claims them, so every claim's index walk starts
        at the finished keys' dead entries; without vacuuming (autovacuum may be off, or
        behind) each claim steps over all of them, and a drain costs more per key the larger
        it is. ``SKIP_LOCKED``: a vacuum already running elsewhere is not waited for. Best
        effort: a failure is logged, never raised (the commit stands).
        """
        if self.is_sqlite:
            return
        try:
            with self.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.execute(text(f"VACUUM (ANALYZE, SKIP_LOCKED) {_QUEUE}"))
        except SQLAlchemyError as exc:
            log.warning("queue not vacuumed: %s", type(exc).__name__)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only; nothing is committed."""
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    def check(self) -> None:
        """Connect once, so a database that cannot be reached is one clear SettingsError at
        start instead of a traceback at the first request."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise SettingsError(
                f"HEADWATER_DATABASE_URL: cannot connect to {mask_database_url(self.url)}: "
                f"{reason[0] if reason else type(exc).__name__}"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()


#: Seconds to wait for a PostgreSQL server before giving up (unless the URL sets its own).
CONNECT_TIMEOUT = 10
#: SQLite connections a process keeps open (and as many more it may open for a while).
SQLITE_POOL_SIZE = 20


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for an in-memory database."""
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _create_sqlite_file(url: str) -> None:
    """Create a missing SQLite file readable by its owner only (0600); SQLite gives its WAL and
    shared-memory files the same mode. Its folder must exist (SettingsError otherwise)."""
    path = _sqlite_path(url)
    if path is None:
        return
    if not path.parent.is_dir():
        raise SettingsError(
            f"HEADWATER_DATABASE_URL: the folder {str(path.parent)!r} of the SQLite file does "
            "not exist"
        )
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing database keeps its mode
    except OSError as exc:
        raise SettingsError(
            f"HEADWATER_DATABASE_URL: cannot create the SQLite file {str(path)!r}: {exc.strerror}"
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy drive transactions (pysqlite's own BEGIN handling is off).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that later writes can fail with
    # "database is locked" instead of waiting, which would surface as a 500.
    if connection.get_execution_options().get("headwater_readonly"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
