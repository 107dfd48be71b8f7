"""``workers`` (PostgreSQL): throughput with 1, 2 and 4 ``headwater worker`` processes, and the
latency from an API membership change to the downstream request on an idle system.

Throughput: N users assigned at once through the API; worker subprocesses (the real
deployment: ``python -m headwater worker`` on the same database) provision them into a fresh
scim2-server until no key is pending. The per-app limits (8 concurrent requests) are shared by
the live workers, so more workers add CPU for Headwater's own work, not load on the app.

Latency: one idle worker; a fault proxy (no faults) in front of scim2-server timestamps every
request it receives. Each change is ``PUT /api/v1/groups/{g}/users/{u}`` on a group assigned to
the app; the latency is from the start of that call to the arrival of the first downstream
request for the user (the ``userName`` lookup). Workers wake on LISTEN/NOTIFY.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    Meter,
    PostgresUnavailable,
    Usage,
    analyze,
    fmt_ms,
    login_of,
    median,
    percentile,
    pg_database,
)
from bench.provision import pending, scim_total
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    api_client,
    assign_group,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    ok,
)

__all__ = ["run"]

NAME = "workers"
HEARTBEAT_SECONDS = 10.0


@dataclass
class Throughput:
    workers: int
    usage: Usage
    converged: int


def _live_workers(runtime: Runtime) -> list[tuple[str, float]]:
    with runtime.database.read() as session:
        rows = session.execute(select(t.WorkerHeartbeat.id, t.WorkerHeartbeat.last_seen)).all()
    return [(row.id, row.last_seen.timestamp()) for row in rows]


@contextmanager
def worker_processes(
    runtime: Runtime, url: str, count: int, log_dir: Path, *, settle: bool
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``count`` ``headwater worker`` processes and wait until they all heartbeat.

    With ``settle``, also wait until every worker has refreshed its share of the per-app limits
    after the last one started (heartbeats come every 10 s).
    """
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env.update(
        HEADWATER_DATABASE_URL=url,
        HEADWATER_SECRET_KEY=SECRET_KEY,
        HEADWATER_DATA_DIR=str(log_dir),
        PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p),
    )
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for index in range(count):
            log = (log_dir / f"worker-{index}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "headwater", "worker"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 60
        while len(_live_workers(runtime)) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"workers did not start; see {log_dir}")
            time.sleep(0.05)
        if settle and count > 1:
            all_up = time.time()
            while min(seen for _, seen in _live_workers(runtime)) < all_up:
                if time.monotonic() > deadline + HEARTBEAT_SECONDS:
                    raise RuntimeError("workers did not refresh their heartbeat")
                time.sleep(0.1)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _throughput(ctx: Context, count: int, users: int) -> Throughput:
    url = ctx.databases.postgres()
    runtime = make_runtime(url, ctx.data_dir(f"workers-{count}"), secret_key=SECRET_KEY)
    try:
        group_id = create_group(runtime, "Everyone")
        create_users(runtime, users, digits=DIGITS, group_ids=[group_id])
        analyze(runtime)
        with (
            ScimServerProcess() as server,
            api_client(runtime, raise_server_exceptions=True) as client,
        ):
            assert server.pid is not None
            app_id = create_scim_app(runtime, server.base_url, "Bench SCIM")
            settle = ctx.mode.name != "quick"
            log_dir = ctx.data_dir(f"workers-{count}-logs")
            with worker_processes(runtime, url, count, log_dir, settle=settle) as processes:
                pids = {"scim": server.pid} | {f"w{i}": p.pid for i, p in enumerate(processes)}
                with Meter(pids, postgres=pg_database(runtime)) as meter:
                    assignment = {"priority": 0}
                    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group_id}", json=assignment))
                    while pending(runtime):
                        time.sleep(0.02)
            converged = scim_total(server.base_url)
        return Throughput(count, meter.usage, converged)
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _latency(ctx: Context, changes: int) -> tuple[list[float], list[float]]:
    """Seconds from the API call (and from its response) to the first downstream request."""
    url = ctx.databases.postgres()
    runtime = make_runtime(url, ctx.data_dir("latency"), secret_key=SECRET_KEY)
    rng = random.Random(11)
    try:
        user_ids = create_users(runtime, changes, prefix="lat", digits=DIGITS)
        group_id = create_group(runtime, "Latency")
        with (
            ScimServerProcess() as server,
            FaultProxyThread(server.base_url) as proxy,
            api_client(runtime, raise_server_exceptions=True) as client,
        ):
            app_id = create_scim_app(runtime, proxy.base_url, "Bench SCIM")
            assign_group(runtime, app_id, group_id)
            log_dir = ctx.data_dir("latency-logs")
            from_call: list[float] = []
            from_commit: list[float] = []
            with worker_processes(runtime, url, 1, log_dir, settle=False):
                time.sleep(0.5)  # the LISTEN connection is up; the worker is idle
                for index, user_id in enumerate(user_ids):
                    login = login_of("lat", index)
                    time.sleep(rng.uniform(0.05, 0.25))
                    started = time.time()
                    ok(client.put(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)
                    answered = time.time()
                    arrived = _wait_for_request(proxy, login)
                    from_call.append(arrived - started)
                    from_commit.append(arrived - answered)
                    _wait_until_created(proxy, login)
            if pending(runtime):
                raise RuntimeError("latency run left keys pending")
        return from_call, from_commit
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _wait_for_request(proxy: FaultProxyThread, login: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in proxy.requests("GET", r"/Users$"):
            if login in unquote(entry.query):
                return entry.time
        time.sleep(0.001)
    raise RuntimeError(f"no downstream request for {login} within {timeout} s")


def _wait_until_created(proxy: FaultProxyThread, login: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in proxy.requests("POST", r"/Users$"):
            if entry.done and login.encode() in entry.body:
                return
        time.sleep(0.005)
    raise RuntimeError(f"{login} was not created within {timeout} s")


def run(ctx: Context) -> None:
    """Throughput for each worker count, then the idle latency."""
    report, users = ctx.report, ctx.mode.worker_users
    report.section(f"workers (PostgreSQL): {users:,} accounts by 1..N worker processes")
    try:
        ctx.databases.postgres()
    except PostgresUnavailable as exc:
        report.note(f"skipped: PostgreSQL unavailable ({exc})")
        return
    if ctx.mode.name == "quick":
        report.note("quick mode: workers are not given time to share the per-app limits")
    results: list[Throughput] = []
    for count in ctx.mode.worker_counts:
        result = _throughput(ctx, count, users)
        results.append(result)
        workers_cpu = sum(v for k, v in result.usage.cpu_procs.items() if k.startswith("w"))
        report.row(
            NAME,
            f"{count} worker process{'es' if count > 1 else ''}",
            f"{result.usage.describe()}, {users / result.usage.wall:7.1f} accounts/s, "
            f"workers {workers_cpu * 1000 / users:.2f} ms cpu/account",
            workers=count,
            usage=result.usage.as_dict(),
            accounts=result.converged,
            users=users,
        )
        if result.converged != users:
            report.note(f"downstream holds {result.converged} of {users} accounts")
    base = results[0].usage.wall
    for result in results[1:]:
        report.ratio(
            NAME,
            f"throughput {result.workers} workers / 1 worker",
            base / result.usage.wall,
            f"{users / result.usage.wall:.0f} vs {users / base:.0f} accounts/s",
        )
    from_call, from_commit = _latency(ctx, ctx.mode.latency_changes)
    for label, values in (("from the API call", from_call), ("from the API answer", from_commit)):
        report.row(
            NAME,
            f"latency {label}",
            f"p50 {fmt_ms(median(values))}  p99 {fmt_ms(percentile(values, 99))}  "
            f"max {fmt_ms(max(values))}  (n={len(values)})",
            p50_s=median(values),
            p99_s=percentile(values, 99),
            max_s=max(values),
            n=len(values),
            measured=label,
        )
    report.ratio(
        NAME,
        "idle latency p50 / poll interval",
        median(from_call) / 1.0,
        "LISTEN/NOTIFY vs the 1 s idle poll a worker falls back to",
    )
