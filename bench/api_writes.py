"""``api_writes``: ``POST /api/v1/users`` over HTTP, 8 concurrent clients, SQLite and PostgreSQL.

Real ``headwater serve --no-worker`` processes (one; on PostgreSQL also two, the clients split
between them as behind a load balancer) serve the API; 8 ``httpx.AsyncClient`` clients, each on
its own keep-alive connection, send requests back to back for a fixed time. Baseline, in the same
run and against the same processes: ``GET /api/v1/users/{id}`` (authentication, one primary-key
read, rendering), so the ratio of the two rates is the write path's own cost. Phases alternate
(read, write, read, write) so a change in the machine's load hits both alike.

``python -m bench.api_writes [--seconds S] [--profile DIR]`` runs it alone; ``--profile`` runs
the first server under cProfile and writes its profile to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    Databases,
    IncompleteRun,
    Mode,
    PostgresUnavailable,
    Report,
    _proc_cpu,
    fmt_ms,
    served_api,
)
from headwater.testing.toolkit import api_token, create_users, make_runtime

__all__ = ["run"]

NAME = "api_writes"
CLIENTS = 8
SEEDED = 200


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def _rate(
    bases: list[str], pids: list[int], token: str, call: Call, seconds: float, expect: int
) -> tuple[float, float]:
    """Requests per second that ``CLIENTS`` clients complete in ``seconds`` (each client on one
    base URL, round robin), and the servers' CPU seconds per request; any other status than
    ``expect`` stops the run."""
    headers = {"Authorization": f"SSWS {token}", "Accept": "application/json"}
    done = [0]
    deadline = 0.0

    async def client(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            await call(http)  # open the connection before the clock starts
            await ready.wait()
            while time.perf_counter() < deadline:
                response = await call(http)
                if response.status_code != expect:
                    raise IncompleteRun(
                        f"{NAME}: {response.request.method} {response.request.url.path} "
                        f"answered {response.status_code}: {response.text[:300]}"
                    )
                done[0] += 1

    ready = asyncio.Event()
    lanes = zip(itertools.cycle(bases), range(CLIENTS), strict=False)
    tasks = [asyncio.create_task(client(base)) for base, _ in lanes]
    await asyncio.sleep(0.5)
    cpu = sum(_proc_cpu(pid) for pid in pids)
    started = time.perf_counter()
    deadline = started + seconds
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    cpu = sum(_proc_cpu(pid) for pid in pids) - cpu
    if done[0] == 0:
        raise IncompleteRun(f"{NAME}: no request completed in {seconds} s")
    return done[0] / elapsed, cpu / done[0]


def _measure(
    ctx: Context,
    label: str,
    servers: list[tuple[str, int]],
    token: str,
    user_ids: list[str],
    seconds: float,
    rounds: int,
) -> None:
    bases, pids = [base for base, _ in servers], [pid for _, pid in servers]
    rng = random.Random(7)
    counter = itertools.count()
    run_tag = f"{os.getpid()}{int(time.time() * 1000) % 10**6}"

    async def read(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get(f"/api/v1/users/{rng.choice(user_ids)}")

    async def write(http: httpx.AsyncClient) -> httpx.Response:
        login = f"w{run_tag}-{label.replace(' ', '')}-{next(counter):07d}@example.com"
        body = {"profile": {"login": login, "email": login, "firstName": "New", "lastName": "U"}}
        return await http.post("/api/v1/users", json=body)

    reads: list[tuple[float, float]] = []
    writes: list[tuple[float, float]] = []
    for _ in range(rounds):
        reads.append(asyncio.run(_rate(bases, pids, token, read, seconds, 200)))
        writes.append(asyncio.run(_rate(bases, pids, token, write, seconds, 200)))
    get, post = max(reads), max(writes)
    for op, what, (rate, cpu), runs in (
        ("get_user", "GET /users/{id}", get, reads),
        ("create_user", "POST /users", post, writes),
    ):
        ctx.report.row(
            NAME,
            f"{label} {what}",
            f"{rate:8.0f} req/s  server cpu {fmt_ms(cpu)}/req  ({CLIENTS} clients, best of "
            f"{len(runs)} x {seconds:.0f} s: {', '.join(f'{r:.0f}' for r, _ in runs)})",
            op=op,
            target=label,
            rate=rate,
            server_cpu_s=cpu,
        )
    ctx.report.ratio(
        NAME,
        f"{label} POST users/s / GET user/s",
        post[0] / get[0],
        "the write path's cost against an authenticated read (1 would be free)",
    )
    ctx.report.ratio(
        NAME,
        f"{label} server CPU per POST / per GET",
        post[1] / get[1],
        "CPU the server spends on a create over a read (load-independent)",
    )


def _seed(url: str, data_dir: Path) -> tuple[str, list[str]]:
    runtime = make_runtime(url, data_dir, secret_key=SECRET_KEY)
    try:
        user_ids = create_users(runtime, SEEDED, prefix="seed", digits=DIGITS)
        token = api_token(runtime, "bench-writes")
    finally:
        runtime.close()
    return token, user_ids


def _bench(
    ctx: Context, db: str, url: str, processes: int, seconds: float, profile: Path | None
) -> None:
    rounds = 1 if ctx.mode.name == "quick" else 2
    data_dir = ctx.data_dir(f"{NAME}-{db}-{processes}")
    token, user_ids = _seed(url, data_dir)
    label = f"[{db}, {processes} serve process{'es' if processes > 1 else ''}]"
    with ExitStack() as stack:
        servers = [
            stack.enter_context(served_api(url, data_dir, profile if index == 0 else None))
            for index in range(processes)
        ]
        _measure(ctx, label, servers, token, user_ids, seconds, rounds)


def run(ctx: Context, *, seconds: float | None = None, profile: Path | None = None) -> None:
    """SQLite with one ``serve`` process; PostgreSQL with one and (not in the quick run) two."""
    phase = seconds if seconds is not None else (1.0 if ctx.mode.name == "quick" else 8.0)
    ctx.report.section(f"{NAME}: POST /api/v1/users over HTTP, {CLIENTS} clients")
    _bench(ctx, "sqlite", ctx.databases.sqlite(), 1, phase, profile)
    # The quick run (the smoke test) keeps to one process: a second costs a start-up and a seed.
    for processes in (1,) if ctx.mode.name == "quick" else (1, 2):
        try:
            url = ctx.databases.postgres()
        except PostgresUnavailable as exc:
            ctx.report.note(f"PostgreSQL skipped: {exc}")
            return
        try:
            _bench(ctx, "postgresql", url, processes, phase, None)
        finally:
            ctx.databases.drop(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_writes", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--profile", type=Path, help="cProfile the SQLite server into this file")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=False, full=False)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        ctx = Context(mode, report, databases, Path(scratch))
        try:
            if args.only == "sqlite":
                ctx.report.section(f"{NAME}: POST /api/v1/users over HTTP, {CLIENTS} clients")
                _bench(ctx, "sqlite", databases.sqlite(), 1, args.seconds, args.profile)
            elif args.only == "postgresql":
                ctx.report.section(f"{NAME}: POST /api/v1/users over HTTP, {CLIENTS} clients")
                for processes in (1, 2):
                    url = databases.postgres()
                    try:
                        _bench(ctx, "postgresql", url, processes, args.seconds, args.profile)
                    finally:
                        databases.drop(url)
            else:
                run(ctx, seconds=args.seconds, profile=args.profile)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
