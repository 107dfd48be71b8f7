"""No app can stop provisioning for the others: a setting, an unexpected error in one app's
reconcile, a downstream that never answers, a worker that died holding leases."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from headwater import clock
from headwater.db import leases
from headwater.db import tables as t
from headwater.domain.states import LinkState
from headwater.engine import reconciler, schedule
from headwater.engine.worker import Worker
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    create_group,
    create_scim_app,
    create_users,
    event_types,
    queued,
    run_async,
    wait_for,
)


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """The worker's own loop (``run``) in a thread, as ``headwater worker`` runs it."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run(stop)))
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


def active_links(runtime: Runtime, app_id: str) -> int:
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.AppUserLink.user_id).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.state == LinkState.ACTIVE
            )
        )
        return len(rows.all())


@contextmanager
def silent_server() -> Iterator[int]:
    """A downstream that accepts connections and requests and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_stored_setting_out_of_bounds_cannot_stop_the_schedule(runtime: Runtime) -> None:
    """A row written before the bounds existed (an interval that overflows a date) is read
    within bounds: the schedule runs, nothing raises."""
    downstream = InProcessScim("bounds.test").serve(runtime)
    app_id = create_scim_app(runtime, downstream.base_url)
    with runtime.database.transaction() as session:
        row = session.get(t.App, app_id)
        assert row is not None
        row.provisioning = {**row.provisioning, "full_reconcile_interval": 86_400_000_000_000}
        row.last_full_reconcile = clock.utcnow() - timedelta(days=400)
    assert schedule.start_full_reconciles(runtime.database) == 1


def test_one_app_failing_does_not_stop_the_others(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy_scim = InProcessScim("healthy.test").serve(runtime)
    broken_scim = InProcessScim("broken.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 5, group_ids=[team])
    healthy = create_scim_app(runtime, healthy_scim.base_url, "Healthy")
    broken = create_scim_app(runtime, broken_scim.base_url, "Broken")
    real = reconciler._load

    def load(database: Any, app: Any, keys: Any) -> Any:
        if app.id == broken:
            raise OverflowError("date value out of range")
        return real(database, app, keys)

    monkeypatch.setattr(reconciler, "_load", load)
    assign_group(runtime, broken, team)
    assign_group(runtime, healthy, team)
    with running(runtime.worker()) as worker:
        wait_for(lambda: active_links(runtime, healthy) == 5, "the healthy app to converge")
        wait_for(lambda: worker.last_error, "the failure to be recorded")
    assert worker.last_error is not None
    assert worker.last_error["appId"] == broken
    assert "OverflowError" in worker.last_error["message"]
    left = queued(runtime)
    assert {k.app_id for k in left} == {broken} and len(left) == 5, "kept for later"
    assert "app.headwater.reconcile.failed" in event_types(runtime, target_id=broken)
    failures = runtime.metrics.reconcile_failures.labels(broken)._value.get()
    assert failures >= 1


def test_a_hanging_downstream_holds_only_its_own_keys(runtime: Runtime) -> None:
    """An app whose downstream never answers (request timeout 10 s) beside a healthy one: the
    healthy app converges in well under that timeout, and keeps converging after."""
    healthy_scim = InProcessScim("fast.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 20, group_ids=[team])
    with silent_server() as port:
        healthy = create_scim_app(runtime, healthy_scim.base_url, "Healthy")
        hanging = create_scim_app(
            runtime,
            f"http://127.0.0.1:{port}/scim/v2",
            "Hanging",
            enabled=False,
            request_timeout=10,
            connect_timeout=2,
        )
        with runtime.database.transaction() as session:  # switched on without a test
            session.execute(
                update(t.AppConnection)
                .where(t.AppConnection.app_id == hanging)
                .values(status="ENABLED")
            )
        with running(runtime.worker()):
            assign_group(runtime, hanging, team)
            time.sleep(0.5)  # the hanging app's lane is now waiting on its downstream
            started = time.monotonic()
            assign_group(runtime, healthy, team)
            wait_for(lambda: active_links(runtime, healthy) == 20, "the healthy app", timeout=9)
            took = time.monotonic() - started
            more = create_users(runtime, 3, prefix="late", group_ids=[team])
            wait_for(lambda: active_links(runtime, healthy) == 23, "later changes", timeout=9)
        assert took < 5, f"the healthy app waited {took:.1f} s behind the hanging one"
        assert len(more) == 3
        assert active_links(runtime, hanging) == 0


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_restarted_worker_takes_over_its_dead_predecessors_leases_at_once(
    runtime: Runtime,
) -> None:
    """A predecessor on this host was killed holding leases for two minutes: its process is
    gone, so the new worker releases them on its first heartbeat instead of waiting."""
    downstream = InProcessScim("restart.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 3, group_ids=[team])
    app_id = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app_id, team)
    dead = f"{socket.gethostname()}:{_dead_pid()}:feed"
    with runtime.database.transaction() as session:
        leases.beat(session, dead)
        claimed = leases.claim(session, dead, limit=10, lease_seconds=120)
    assert len(claimed) == 3
    with runtime.database.transaction() as session:
        assert leases.claim(session, "someone-else", limit=10, lease_seconds=120) == []
    worker = runtime.worker()
    worker.heartbeat()
    with runtime.database.transaction() as session:
        assert {row[0] for row in leases.workers(session)} == {worker.worker_id}
    assert len(worker._claim()) == 3


def test_a_live_neighbour_keeps_its_leases(runtime: Runtime) -> None:
    downstream = InProcessScim("neighbour.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 2, group_ids=[team])
    app_id = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app_id, team)
    neighbour = f"{socket.gethostname()}:{os.getppid()}:beef"  # a process that is alive
    with runtime.database.transaction() as session:
        leases.beat(session, neighbour)
        assert len(leases.claim(session, neighbour, limit=10, lease_seconds=120)) == 2
    worker = runtime.worker()
    worker.heartbeat()
    assert worker._claim() == []


def test_a_closed_worker_no_longer_counts_against_the_next_ones_share(runtime: Runtime) -> None:
    """A worker that stepped and closed signs off: the next one takes the whole batch instead
    of half of it as if a neighbour were still alive."""
    downstream = InProcessScim("share.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 4, group_ids=[team])
    app_id = create_scim_app(runtime, downstream.base_url)

    async def step_and_close() -> int:
        worker = runtime.worker()
        try:
            return await worker.step()
        finally:
            await worker.aclose()

    assign_group(runtime, app_id, team)
    assert run_async(step_and_close) == 4
    with runtime.database.read() as session:
        assert leases.workers(session) == []
    create_users(runtime, 4, prefix="more", group_ids=[team])
    assert run_async(step_and_close) == 4
