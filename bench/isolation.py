"""``isolation`` (SQLite): a healthy app's provisioning latency beside an app whose downstream
never answers.

One worker runs its own loop (as ``headwater serve`` embeds it). Each change creates a user in a
group assigned to the healthy app (a scim2-server subprocess); the latency is from the change to
the account being recorded ACTIVE. Baseline: the same changes with only the healthy app. Then a
second app, whose downstream accepts connections and never answers (request timeout 10 s), is
assigned the same group, so every change also queues a key that hangs for the whole timeout.
The ratio compares the healthy app's p99 with and without its hanging neighbour, in one run.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select, update

from bench.common import SECRET_KEY, Context, fmt_ms, median, percentile, require_complete
from headwater.db import tables as t
from headwater.domain.states import LinkState
from headwater.engine.worker import Worker
from headwater.runtime import Runtime
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    assign_group,
    create_group,
    create_scim_app,
    create_user,
    make_runtime,
)

__all__ = ["run"]

HANGING_TIMEOUT = 10


@contextmanager
def _running(worker: Worker) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run(stop)))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        loop.close()


@contextmanager
def _silent_server() -> Iterator[int]:
    """Accepts connections and requests, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
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


def _active(runtime: Runtime, app_id: str, user_id: str) -> bool:
    with runtime.database.read() as session:
        state = session.execute(
            select(t.AppUserLink.state).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.user_id == user_id
            )
        ).scalar_one_or_none()
    return state == LinkState.ACTIVE


def _latencies(
    runtime: Runtime, app_id: str, group_id: str, prefix: str, changes: int
) -> list[float]:
    """Create ``changes`` users one after the other in the group; time each until ACTIVE."""
    found: list[float] = []
    for n in range(changes):
        started = time.perf_counter()
        user_id = create_user(runtime, f"{prefix}{n:04}@example.com", group_ids=[group_id])
        deadline = started + 60
        while not _active(runtime, app_id, user_id):
            if time.perf_counter() > deadline:
                break
            time.sleep(0.005)
        else:
            found.append(time.perf_counter() - started)
    require_complete("isolation", len(found), changes, "accounts")
    return found


def run(ctx: Context) -> None:
    report = ctx.report
    changes = ctx.mode.latency_changes
    report.section(f"isolation: a healthy app beside a hanging one ({changes} changes each)")
    runtime = make_runtime(
        f"sqlite:///{ctx.data_dir('isolation') / 'hw.db'}",
        ctx.data_dir("isolation"),
        secret_key=SECRET_KEY,
        idle_poll_seconds=0.05,
    )
    try:
        with ScimServerProcess() as server, _silent_server() as port:
            team = create_group(runtime, "Team")
            healthy = create_scim_app(runtime, server.base_url, "Healthy")
            assign_group(runtime, healthy, team)
            hanging = create_scim_app(
                runtime,
                f"http://127.0.0.1:{port}/scim/v2",
                "Hanging",
                enabled=False,
                request_timeout=HANGING_TIMEOUT,
            )
            with runtime.database.transaction() as session:  # switched on, untested
                session.execute(
                    update(t.AppConnection)
                    .where(t.AppConnection.app_id == hanging)
                    .values(status="ENABLED")
                )
            with _running(runtime.worker()):
                alone = _latencies(runtime, healthy, team, "alone", changes)
                assign_group(runtime, hanging, team)
                time.sleep(0.5)
                beside = _latencies(runtime, healthy, team, "beside", changes)
    finally:
        runtime.close()
    for name, values in (("alone", alone), ("beside a hanging app", beside)):
        report.row(
            "isolation",
            f"healthy app, {name}",
            f"p50 {fmt_ms(median(values))}  p99 {fmt_ms(percentile(values, 99))}",
            p50=median(values),
            p99=percentile(values, 99),
            changes=len(values),
        )
    report.ratio(
        "isolation",
        "healthy app p99, beside a hanging app / alone",
        percentile(beside, 99) / percentile(alone, 99),
        f"goal <= 1.5; the hanging app's requests wait {HANGING_TIMEOUT} s each",
    )
