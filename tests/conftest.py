"""Shared fixtures: a runtime on SQLite or PostgreSQL, an API client, a token, a live server.

Both databases are migrated once per session, into a template. Each SQLite test gets a copy of
the template file. PostgreSQL (``HEADWATER_TEST_PG_URL``, default the local server on
127.0.0.1:5432): each test gets an empty database shaped like the template, a copy (``CREATE
DATABASE ... TEMPLATE``) or one an earlier test used, emptied of its rows. With ``CI=true`` an
unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.runtime import Runtime
from headwater.testing.toolkit import IN_CI, LiveServer, api_client, make_runtime, require_module
from headwater.testing.toolkit import api_token as new_api_token

# pytest-xdist's workers inherit a made-up 80x24 terminal in COLUMNS and LINES; the commands
# under test would wrap their output to it. Without them, output to a pipe is not wrapped.
for _fake_terminal_size in ("COLUMNS", "LINES"):
    os.environ.pop(_fake_terminal_size, None)

PG_URL = os.environ.get(
    "HEADWATER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long-running tests (marked ``slow``) first, otherwise in collection order.

    pytest-xdist hands tests out in this order: the longest start while every worker still has
    work, instead of one of them running alone at the end while the others sit idle.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _admin_engine() -> Engine:
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a migrated template database, made once per test session."""
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"hw_template_{os.getpid()}"
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    upgrade(database)
    database.dispose()
    yield name
    while _free_databases:
        _drop_pg_database(_free_databases.pop())
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


#: This process's emptied databases, ready for the next test (see :func:`_release_pg_database`).
_free_databases: list[str] = []


def _database_url(name: str) -> str:
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _pg_database(template: str) -> tuple[str, str]:
    """A migrated, empty database: one a finished test left emptied, or a copy of the template."""
    if _free_databases:
        name = _free_databases.pop()
        return name, _database_url(name)
    name = f"hw_test_{os.getpid()}_{next(_counter)}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    return name, _database_url(name)


def _release_pg_database(name: str, template: str) -> None:
    """Empty a finished test's database for the next one, or drop it if it can't be trusted.

    ``DROP DATABASE`` forces a checkpoint (about a second on a busy server, once per test);
    deleting every row costs a fraction of that. A database whose tables or schema
    revision differ from the template's (a test that migrated it) is dropped instead.
    """
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        expected = _template_shape(template)
        engine = create_engine(_database_url(name), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                if _database_shape(conn) != expected:
                    raise _Untrusted(name)
                # DELETE with foreign-key triggers off: cheaper than TRUNCATE on tiny tables,
                # which makes and fsyncs new files for every table.
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text("SET LOCAL synchronous_commit = off"))
                for table in expected[0]:
                    conn.execute(text(f'DELETE FROM "{table}"'))
                for sequence in expected[2]:
                    conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
        finally:
            engine.dispose()
        _free_databases.append(name)
    except Exception:
        _drop_pg_database(name)
    finally:
        admin.dispose()


class _Untrusted(Exception):
    """A database no longer shaped like the template."""


_template_shapes: dict[str, tuple[tuple[str, ...], str | None, tuple[str, ...]]] = {}


def _database_shape(conn: Connection) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """The tables (``alembic_version`` aside), schema revision and sequences of a database."""
    tables = conn.execute(
        text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename"
        )
    ).scalars()
    version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    sequences = conn.execute(
        text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1")
    ).scalars()
    return tuple(tables), version, tuple(sequences)


def _template_shape(template: str) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    if template not in _template_shapes:
        engine = create_engine(_database_url(template), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                _template_shapes[template] = _database_shape(conn)
        finally:
            engine.dispose()
    return _template_shapes[template]


def _drop_pg_database(name: str) -> None:
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield _sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
        return
    template = request.getfixturevalue("pg_template")
    name, url = _pg_database(template)
    yield url
    _release_pg_database(name, template)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database URL."""
    template = request.getfixturevalue("pg_template")
    name, url = _pg_database(template)
    yield url
    _release_pg_database(name, template)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per test session (a copy costs a tenth of migrating)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hw.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


def _sqlite_copy(template: Path, folder: Path) -> str:
    """The URL of a fresh copy of the migrated template in ``folder``."""
    path = folder / "hw.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def runtime(any_db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on each database (tests using it run twice)."""
    rt = make_runtime(any_db_url, tmp_path)
    yield rt
    rt.close()


@pytest.fixture
def fast_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """SQLite, with retries measured in tens of milliseconds (the fault tests)."""
    rt = make_runtime(f"sqlite:///{tmp_path / 'hw.db'}", tmp_path, retry_base_seconds=0.02)
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(sqlite_url, tmp_path)
    yield rt
    rt.close()


@pytest.fixture
def api_token(runtime: Runtime) -> str:
    return new_api_token(runtime, "test-token")


@pytest.fixture
def client(runtime: Runtime, api_token: str) -> Iterator[TestClient]:
    """An authenticated in-process API client."""
    with api_client(runtime, api_token) as test_client:
        yield test_client


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    with LiveServer(runtime) as server:
        yield server


@pytest.fixture
def okta_client(live_server: LiveServer, api_token: str):  # type: ignore[no-untyped-def]
    """The official Okta SDK pointed at the live server (plain HTTP allowed for tests)."""
    os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"] = "true"
    okta_client_module = require_module("okta.client")
    return okta_client_module.Client(
        {
            "orgUrl": live_server.url,
            "token": api_token,
            "authorizationMode": "SSWS",
            "cache": {"enabled": False},
            "rateLimit": {"maxRetries": 0},
            "logging": {"enabled": False},
        }
    )
