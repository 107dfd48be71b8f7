"""``workers`` (PostgreSQL): throughput with 1, 2 and 4 ``headwater worker`` processes, and the
latency from an API membership change to the downstream request on an idle system.

Throughput: N users assigned at once through the API; worker subprocesses (the real
deployment: ``python -m headwater worker`` on the same database) provision them into a fresh
scim2-server until no key is pending. The per-app limits (8 concurrent requests) are shared by
the live workers, so more workers add CPU for Headwater's own work, not load on the app. A run
that leaves fewer than N accounts downstream fails the benchmark (``IncompleteRun``).

Latency: one idle worker; a fault proxy (no faults) in front of scim2-server timestamps every
request it receives. Each change is ``PUT /api/v1/groups/{g}/users/{u}`` on a group assigned to
the app; the latency is from the start of that call to the arrival of the first downstream
request for the user (the ``userName`` lookup). Workers wake on LISTEN/NOTIFY. Baseline, in
the same run and with the same worker: changes alternate with changes whose NOTIFY is
suppressed in this process (the in-process API's ``outbox.notify`` is swapped for a counter),
so the worker only finds them at its next idle poll (``idle_poll_seconds``, 1 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import unquote

from sqlalchemy import select

from bench.common import (
    DIGITS,
    MIB,
    SECRET_KEY,
    Context,
    Databases,
    Meter,
    Mode,
    PostgresUnavailable,
    Report,
    Usage,
    analyze,
    fmt_ms,
    headwater_env,
    login_of,
    median,
    peak_rss,
    percentile,
    pg_database,
    require_complete,
    scim_user_body,
)
from bench.provision import floor_provision, pending, scim_total
from bench.sink import SinkProcess
from headwater.config import Settings
from headwater.db import outbox
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import LOOPBACK_ALLOW, ScimServerProcess
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
    #: Each worker process's peak resident set (``VmHWM``, its whole life), in bytes.
    peak_rss: list[int] = field(default_factory=list)

    def rss_text(self) -> str:
        return "peak RSS " + ", ".join(f"{rss / MIB:.0f}" for rss in self.peak_rss) + " MiB"

    def rss_dict(self) -> dict[str, Any]:
        return {"worker_peak_rss_mib": [rss / MIB for rss in self.peak_rss]}


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
    env = headwater_env(url, log_dir, HEADWATER_OUTBOUND_ALLOW=LOOPBACK_ALLOW)
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
        deadline = time.monotonic() + 300  # a busy machine starts Python slowly
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


#: The latency-bound downstream: every request waits this long in the sink.
LATENCY = 0.1
#: The app's concurrency for the latency-bound runs (shared by the live workers).
LATENCY_CONCURRENCY = 32


def _throughput(
    ctx: Context, count: int, users: int, *, latency: float = 0.0, concurrency: int = 8
) -> Throughput:
    """``users`` accounts by ``count`` worker processes; with ``latency``, every downstream
    request waits that long in a canned sink (a far-away app), and the app allows
    ``concurrency``."""
    url = ctx.databases.postgres()
    runtime = make_runtime(url, ctx.data_dir(f"workers-{count}"), secret_key=SECRET_KEY)
    try:
        group_id = create_group(runtime, "Everyone")
        create_users(runtime, users, digits=DIGITS, group_ids=[group_id])
        analyze(runtime)
        # A far-away app answers at once after its latency: a canned sink in its own process,
        # so that neither its cost nor the wait lands in this process (see ``bench.sink``).
        downstream = SinkProcess(latency) if latency else ScimServerProcess()
        with downstream, api_client(runtime, raise_server_exceptions=True) as client:
            assert downstream.pid is not None
            target = downstream.base_url
            app_id = create_scim_app(runtime, target, "Bench SCIM", max_concurrency=concurrency)
            settle = ctx.mode.name != "quick"
            log_dir = ctx.data_dir(f"workers-{count}-{int(latency * 1000)}-logs")
            with worker_processes(runtime, url, count, log_dir, settle=settle) as processes:
                pids = {"sink" if latency else "scim": downstream.pid}
                pids |= {f"w{i}": p.pid for i, p in enumerate(processes)}
                with Meter(pids, postgres=pg_database(runtime)) as meter:
                    assignment = {"priority": 0}
                    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group_id}", json=assignment))
                    while pending(runtime):
                        time.sleep(0.02)
                peaks = [peak_rss(p.pid) for p in processes]
            converged = scim_total(downstream.base_url)
        what = f"{NAME}: {count} worker process{'es' if count > 1 else ''}"
        require_complete(what, converged, users, "accounts")
        return Throughput(count, meter.usage, converged, peaks)
    finally:
        runtime.close()
        ctx.databases.drop(url)


@dataclass
class Latencies:
    """Seconds from the API call, and from its answer, to the first downstream request."""

    from_call: list[float] = field(default_factory=list)
    from_answer: list[float] = field(default_factory=list)
    #: Calls of ``outbox.notify`` seen in this process while measuring (0 would mean the
    #: baseline suppressed nothing, and the comparison would be meaningless).
    notify_calls: int = 0


@contextmanager
def _notify(into: Latencies, *, deliver: bool) -> Iterator[None]:
    """Count this process's ``outbox.notify`` calls in ``into``; unless ``deliver``, drop them
    (the idle worker then learns of the change only at its next poll)."""
    original = outbox.notify

    def counted(session: Any) -> None:
        into.notify_calls += 1
        if deliver:
            original(session)

    with mock.patch.object(outbox, "notify", counted):
        yield


def _latency(ctx: Context, changes: int, poll: float) -> tuple[Latencies, Latencies]:
    """``changes`` notified changes and ``changes`` poll-only changes, alternating. Before each,
    a random pause spanning a whole poll interval: a worker restarts its idle wait whenever it
    finishes some work, so fixed short pauses would always land at the same point of its cycle."""
    url = ctx.databases.postgres()
    runtime = make_runtime(url, ctx.data_dir("latency"), secret_key=SECRET_KEY)
    rng = random.Random(11)
    notified, polled = Latencies(), Latencies()
    try:
        user_ids = create_users(runtime, 2 * changes, prefix="lat", digits=DIGITS)
        group_id = create_group(runtime, "Latency")
        with (
            ScimServerProcess() as server,
            FaultProxyThread(server.base_url) as proxy,
            api_client(runtime, raise_server_exceptions=True) as client,
        ):
            app_id = create_scim_app(runtime, proxy.base_url, "Bench SCIM")
            assign_group(runtime, app_id, group_id)
            log_dir = ctx.data_dir("latency-logs")
            with worker_processes(runtime, url, 1, log_dir, settle=False):
                time.sleep(0.5)  # the LISTEN connection is up; the worker is idle
                for index, user_id in enumerate(user_ids):
                    into = notified if index % 2 == 0 else polled
                    login = login_of("lat", index)
                    time.sleep(rng.uniform(0.05, 0.05 + poll))
                    with _notify(into, deliver=into is notified):
                        started = time.time()
                        ok(client.put(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)
                        answered = time.time()
                    arrived = _wait_for_request(proxy, login)
                    into.from_call.append(arrived - started)
                    into.from_answer.append(arrived - answered)
                    _wait_until_created(proxy, login)
            if pending(runtime):
                raise RuntimeError("latency run left keys pending")
        for latencies in (notified, polled):
            if latencies.notify_calls < changes:
                raise RuntimeError(
                    f"outbox.notify was called {latencies.notify_calls} times for {changes} "
                    "changes: the API no longer notifies through it, so the poll-only baseline "
                    "would not differ from the measured case"
                )
        return notified, polled
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
            f"workers {workers_cpu * 1000 / users:.2f} ms cpu/account, {result.rss_text()}",
            workers=count,
            usage=result.usage.as_dict(),
            accounts=result.converged,
            users=users,
            **result.rss_dict(),
        )
    base = results[0].usage.wall
    for result in results[1:]:
        report.ratio(
            NAME,
            f"throughput {result.workers} workers / 1 worker",
            base / result.usage.wall,
            f"{users / result.usage.wall:.0f} vs {users / base:.0f} accounts/s",
        )
    latency_bound(ctx, users)
    changes = ctx.mode.latency_changes
    poll = _idle_poll()
    report.line(
        f"idle latency: API membership change -> first downstream request, one idle worker; "
        f"{changes} changes woken by NOTIFY alternate with {changes} whose NOTIFY is dropped "
        f"(the worker finds them at its next idle poll, every {poll:g} s): the baseline; "
        f"random pauses of up to {poll:g} s before each change"
    )
    notified, polled = _latency(ctx, changes, poll)
    for label, values in (
        ("from the API call", notified.from_call),
        ("from the API answer", notified.from_answer),
        ("from the API call, poll only", polled.from_call),
        ("from the API answer, poll only", polled.from_answer),
    ):
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
    woken, baseline = median(notified.from_call), median(polled.from_call)
    report.ratio(
        NAME,
        "idle latency p50, NOTIFY / idle poll only",
        woken / baseline,
        f"{woken * 1000:.0f} ms vs {baseline * 1000:.0f} ms from the API call to the first "
        f"downstream request: the same idle worker woken by LISTEN/NOTIFY, and finding the "
        f"change at its next {poll:g} s poll when the NOTIFY is dropped",
    )


def latency_bound(ctx: Context, users: int) -> None:
    """Throughput for each worker count against a far-away app: every request waits
    ``LATENCY`` in a proxy and the app allows ``LATENCY_CONCURRENCY`` at once."""
    report = ctx.report
    ceiling = LATENCY_CONCURRENCY / (2 * LATENCY)
    report.line(
        f"latency-bound: every request waits {LATENCY * 1000:.0f} ms in a canned sink (its own "
        f"process), the app allows {LATENCY_CONCURRENCY} at once: at most {ceiling:.0f} "
        "accounts/s (a lookup and a create each), whatever the number of workers"
    )
    # What this machine allows now: a bare client sending the same requests to the same sink.
    bodies = [
        scim_user_body(login_of("user", i), f"00ufloor{i:011d}", f"User {i:06d}")
        for i in range(users)
    ]
    with SinkProcess(LATENCY) as sink:
        with Meter({"sink": sink.pid}) as meter:
            asyncio.run(floor_provision(sink.base_url, bodies, LATENCY_CONCURRENCY))
        require_complete(
            f"{NAME}: latency-bound floor", scim_total(sink.base_url), users, "accounts"
        )
    floor_rate = users / meter.usage.wall
    report.row(
        NAME,
        f"latency-bound floor (bare httpx, {LATENCY_CONCURRENCY} lanes)",
        f"{meter.usage.describe()}, {floor_rate:7.1f} accounts/s",
        latency_bound=True,
        floor=True,
        accounts_per_second=floor_rate,
        usage=meter.usage.as_dict(),
        users=users,
    )
    report.ratio(
        NAME,
        "latency-bound floor / concurrency / latency",
        floor_rate / ceiling,
        f"{floor_rate:.0f} vs {ceiling:.0f} accounts/s: below 0.85x, this machine cannot show "
        "the latency-bound regime now, whatever the workers do",
    )
    for count in ctx.mode.worker_counts:
        result = _throughput(ctx, count, users, latency=LATENCY, concurrency=LATENCY_CONCURRENCY)
        rate = users / result.usage.wall
        report.row(
            NAME,
            f"latency-bound, {count} worker process{'es' if count > 1 else ''}",
            f"{result.usage.describe()}, {rate:7.1f} accounts/s, {result.rss_text()}",
            workers=count,
            latency_bound=True,
            accounts_per_second=rate,
            usage=result.usage.as_dict(),
            accounts=result.converged,
            users=users,
            **result.rss_dict(),
        )
        report.ratio(
            NAME,
            f"latency-bound throughput {count} worker{'s' if count > 1 else ''} / "
            "concurrency / latency",
            rate / ceiling,
            f"{rate:.0f} vs {ceiling:.0f} accounts/s; goal within 15% (0.85x or more)",
        )
        report.ratio(
            NAME,
            f"latency-bound throughput {count} worker{'s' if count > 1 else ''} / floor",
            rate / floor_rate,
            f"{rate:.0f} vs {floor_rate:.0f} accounts/s for the bare client in the same run",
        )


def _idle_poll() -> float:
    """The idle poll of the worker subprocesses (they read the same environment)."""
    return Settings().idle_poll_seconds


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.workers --latency-bound [--users N] [--json FILE]``: only the
    latency-bound throughput (1, 2 and 4 workers), which the machine's load moves little."""
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=main.__doc__)
    parser.add_argument(
        "--latency-bound", action="store_true", required=True, help="the latency-bound runs only"
    )
    parser.add_argument("--users", type=int, default=3_000, help="accounts per run")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=False, full=False)
    report = Report()
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    report.section(f"workers (PostgreSQL), latency-bound: {args.users:,} accounts")
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            latency_bound(Context(mode, report, databases, Path(scratch)), args.users)
        finally:
            databases.close()
    if args.json is not None:
        meta = {"load_before": load, "load_after": os.getloadavg(), "users": args.users}
        report.dump(args.json, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
