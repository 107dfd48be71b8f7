"""Several `headwater worker` processes on one PostgreSQL database: they share the keys without
ever reconciling one twice at the same time, and the downstream ends exactly as desired."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.fernet import Fernet
from tests.conftest import make_runtime
from tests.engine.faultkit import (
    assign_group,
    creates_per_user_name,
    downstream_state,
    proxied_downstream,
    seed_app,
    seed_group,
    seed_users,
)

from headwater.db import outbox
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread

pytestmark = pytest.mark.postgres


@contextmanager
def workers(
    url: str, data_dir: Path, key: str, count: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(
        os.environ,
        HEADWATER_DATABASE_URL=url,
        HEADWATER_SECRET_KEY=key,
        HEADWATER_DATA_DIR=str(data_dir),
        HEADWATER_WORKER_BATCH_SIZE="50",
        HEADWATER_IDLE_POLL_SECONDS="0.5",
    )
    # Workers log a line per key: to files, since an unread pipe would fill and block them.
    logs = [(data_dir / f"worker-{n}.log").open("wb") for n in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "headwater", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for log in logs
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def wait_until_drained(runtime: Runtime, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.database.read() as session:
            if outbox.pending_count(session) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("keys still pending")


def lookups_per_user_name(proxy: FaultProxyThread) -> Counter[str]:
    seen: Counter[str] = Counter()
    for entry in proxy.requests("GET", r"/Users$"):
        (expression,) = parse_qs(entry.query).get("filter", [""])
        if expression.startswith("userName eq "):
            seen[expression.split('"')[1]] += 1
    return seen


@pytest.fixture
def pg_runtime(pg_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    runtime = make_runtime(pg_url, tmp_path)
    yield runtime, Fernet.generate_key().decode()
    runtime.close()


def test_three_workers_one_app(
    pg_runtime: tuple[Runtime, str], pg_url: str, tmp_path: Path
) -> None:
    runtime, key = pg_runtime
    with proxied_downstream() as (server, proxy):
        users = seed_users(runtime, 900)
        app_id = seed_app(runtime, proxy.base_url, max_concurrency=12)
        with workers(pg_url, tmp_path, key, 3) as processes:
            time.sleep(1.0)
            assign_group(runtime, app_id, seed_group(runtime, "All", users))
            wait_until_drained(runtime)
            assert all(p.poll() is None for p in processes), "a worker died"
        accounts, _ = downstream_state(server.base_url)
        assert len({a["userName"] for a in accounts}) == len(accounts) == 900
        assert set(creates_per_user_name(proxy).values()) == {1}
        # One lookup per user: no key was ever reconciled by two workers at once.
        assert set(lookups_per_user_name(proxy).values()) == {1}
        assert not [e for e in proxy.requests() if e.status == 409]


def test_three_workers_several_apps(
    pg_runtime: tuple[Runtime, str], pg_url: str, tmp_path: Path
) -> None:
    runtime, key = pg_runtime
    with ExitStack() as stack:
        downstreams = [stack.enter_context(proxied_downstream(seed=n)) for n in range(3)]
        users = seed_users(runtime, 300)
        group = seed_group(runtime, "All", users)
        apps = [seed_app(runtime, proxy.base_url) for _, proxy in downstreams]
        with workers(pg_url, tmp_path, key, 3):
            time.sleep(1.0)
            for app_id in apps:
                assign_group(runtime, app_id, group)
            wait_until_drained(runtime)
        for server, proxy in downstreams:
            accounts, _ = downstream_state(server.base_url)
            assert len(accounts) == 300
            assert set(creates_per_user_name(proxy).values()) == {1}
            assert set(lookups_per_user_name(proxy).values()) == {1}
