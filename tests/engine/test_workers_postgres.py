"""Several `headwater worker` processes on one PostgreSQL database: they share the keys without
ever reconciling one twice at the same time, every one of them does some of the work, and the
downstream ends exactly as desired."""

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
from sqlalchemy import text

from headwater.db import outbox
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.toolkit import (
    LOOPBACK_ALLOW,
    ScimReader,
    assign_group,
    create_group,
    create_scim_app,
    create_users,
    creates_per_user_name,
    make_runtime,
    proxied_scim_server,
    wait_for,
)

pytestmark = pytest.mark.postgres

#: A test-only audit of finished keys: the outbox deletes a key when a worker finishes it, and
#: at that moment the row still names the worker that claimed it (``claimed_by``).
FINISHED_KEYS_AUDIT = """
CREATE TABLE test_finished_keys (
    worker_id text, app_id text, kind text, subject_id text
);
CREATE FUNCTION test_note_finished_key() RETURNS trigger AS $$
BEGIN
    INSERT INTO test_finished_keys VALUES (OLD.claimed_by, OLD.app_id, OLD.kind, OLD.subject_id);
    RETURN OLD;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER test_finished_keys AFTER DELETE ON reconcile_keys
    FOR EACH ROW EXECUTE FUNCTION test_note_finished_key();
"""


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
        HEADWATER_OUTBOUND_ALLOW=LOOPBACK_ALLOW,
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


def drained(runtime: Runtime) -> bool:
    with runtime.database.read() as session:
        return outbox.pending_count(session) == 0


def finished_keys(runtime: Runtime) -> list[tuple[str | None, str, str, str]]:
    """(worker, app, kind, subject) of every key a worker finished, from the audit table."""
    with runtime.database.read() as session:
        rows = session.execute(
            text("SELECT worker_id, app_id, kind, subject_id FROM test_finished_keys")
        ).all()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def lookups_per_user_name(proxy: FaultProxyThread) -> Counter[str]:
    seen: Counter[str] = Counter()
    for entry in proxy.requests("GET", r"/Users$"):
        (expression,) = parse_qs(entry.query).get("filter", [""])
        if expression.startswith("userName eq "):
            seen[expression.split('"')[1]] += 1
    return seen


@pytest.fixture
def pg_runtime(pg_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    """A runtime sharing its key with the workers, and the finished-keys audit installed."""
    key = Fernet.generate_key().decode()
    runtime = make_runtime(pg_url, tmp_path, secret_key=key)
    with runtime.database.engine.begin() as conn:
        conn.execute(text(FINISHED_KEYS_AUDIT))
    yield runtime, key
    runtime.close()


def assert_shared_work(
    runtime: Runtime, expected: set[tuple[str, str, str]], worker_count: int
) -> None:
    """Each expected key was finished exactly once, by a worker, and at least two of the
    ``worker_count`` workers finished some."""
    finished = finished_keys(runtime)
    assert all(worker for worker, *_ in finished), "a key was finished by no worker"
    per_key = Counter((app, kind, subject) for _, app, kind, subject in finished)
    assert set(per_key) == expected
    assert set(per_key.values()) == {1}, "a key was finished twice"
    per_worker = Counter(worker for worker, *_ in finished)
    assert len(per_worker) <= worker_count
    assert len(per_worker) >= 2, f"only one worker did any work: {dict(per_worker)}"


def test_three_workers_one_app(
    pg_runtime: tuple[Runtime, str], pg_url: str, tmp_path: Path
) -> None:
    runtime, key = pg_runtime
    with proxied_scim_server() as (server, proxy):
        group = create_group(runtime, "All")
        users = create_users(runtime, 900, group_ids=[group])
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty", max_concurrency=12)
        with workers(pg_url, tmp_path, key, 3) as processes:
            time.sleep(1.0)
            assign_group(runtime, app_id, group)
            wait_for(lambda: drained(runtime), "the keys to drain", timeout=240, interval=0.2)
            assert all(p.poll() is None for p in processes), "a worker died"
        accounts = ScimReader(server.base_url).users()
        assert len({a["userName"] for a in accounts}) == len(accounts) == 900
        assert set(creates_per_user_name(proxy).values()) == {1}
        # One lookup per user: no key was ever reconciled by two workers at once.
        assert set(lookups_per_user_name(proxy).values()) == {1}
        assert not [e for e in proxy.requests() if e.status == 409]
        assert_shared_work(runtime, {(app_id, "user", user) for user in users}, 3)


def test_three_workers_several_apps(
    pg_runtime: tuple[Runtime, str], pg_url: str, tmp_path: Path
) -> None:
    runtime, key = pg_runtime
    with ExitStack() as stack:
        downstreams = [stack.enter_context(proxied_scim_server(seed=n)) for n in range(3)]
        group = create_group(runtime, "All")
        users = create_users(runtime, 300, group_ids=[group])
        apps = [
            create_scim_app(runtime, proxy.base_url, f"Faulty {n}")
            for n, (_, proxy) in enumerate(downstreams)
        ]
        with workers(pg_url, tmp_path, key, 3):
            time.sleep(1.0)
            for app_id in apps:
                assign_group(runtime, app_id, group)
            wait_for(lambda: drained(runtime), "the keys to drain", timeout=240, interval=0.2)
        for server, proxy in downstreams:
            accounts = ScimReader(server.base_url).users()
            assert len(accounts) == 300
            assert set(creates_per_user_name(proxy).values()) == {1}
            assert set(lookups_per_user_name(proxy).values()) == {1}
        expected = {(app_id, "user", user) for app_id in apps for user in users}
        assert_shared_work(runtime, expected, 3)
