"""The handlers' thread pool is sized when the server starts: a few threads on SQLite, where a
handler's time is this interpreter's own work, anyio's forty on PostgreSQL, where handlers
wait for the server; ``HEADWATER_API_THREADS`` decides when set (decision 55)."""

from __future__ import annotations

from pathlib import Path

from anyio import to_thread
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.server import POSTGRESQL_API_THREADS, SQLITE_API_THREADS, create_app
from headwater.testing.toolkit import make_runtime


def _threads_while_serving(runtime: Runtime) -> int:
    with TestClient(create_app(runtime, start_worker=False)) as client:
        assert client.get("/api/v1/users").status_code == 401  # the app is up and answering
        portal = client.portal
        assert portal is not None
        return int(portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens))


def test_the_default_follows_the_database(runtime: Runtime) -> None:
    expected = SQLITE_API_THREADS if runtime.database.is_sqlite else POSTGRESQL_API_THREADS
    assert _threads_while_serving(runtime) == expected


def test_the_setting_decides_when_set(tmp_path: Path) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hw.db'}", tmp_path, api_threads=7)
    try:
        assert _threads_while_serving(runtime) == 7
    finally:
        runtime.close()
