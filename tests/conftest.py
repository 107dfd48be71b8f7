"""Shared fixtures: a runtime on SQLite or PostgreSQL, an API client, a token, a live server.

PostgreSQL: ``HEADWATER_TEST_PG_URL`` (default: the local server on 127.0.0.1:5432). A template
database is migrated once per session; each test gets a fresh copy (``CREATE DATABASE ...
TEMPLATE``). With ``CI=true`` an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

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
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _pg_database(template: str) -> tuple[str, str]:
    name = f"hw_test_{os.getpid()}_{next(_counter)}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    return name, make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(name: str) -> None:
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hw.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name, url = _pg_database(template)
    yield url
    _drop_pg_database(name)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database URL."""
    template = request.getfixturevalue("pg_template")
    name, url = _pg_database(template)
    yield url
    _drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hw.db'}"


@pytest.fixture
def runtime(any_db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on each database (tests using it run twice)."""
    rt = make_runtime(any_db_url, tmp_path)
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
