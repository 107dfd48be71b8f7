"""``signin``: the API's latency while 40 clients flood the console's sign-in form.

A real ``headwater serve --no-worker`` process on SQLite serves the API and the console. The
API's reads (``GET /api/v1/users``, a page of 20) and writes (``POST /api/v1/groups``) are timed
one after another, first on a quiet server, then while 40 clients keep posting wrong passwords
to ``/console/login``, each attempt from a different address (``X-Forwarded-For`` from
loopback, as behind a reverse proxy): the worst case, where the per-address limit never helps
and only the sign-in's own bounded hashing pool stands between the flood and the API. The
ratios are the flood's p50 and p99 over the quiet ones, in one run (goal: p50 at most 1.5x).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections import Counter

import httpx

from bench.common import SECRET_KEY, Context, IncompleteRun, fmt_ms, percentile, served_api
from headwater.testing.toolkit import (
    ADMIN,
    api_token,
    create_admin,
    create_users,
    make_runtime,
)

__all__ = ["run"]

NAME = "signin"
FLOODERS = 40
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: No flood runs longer than this, whatever happens.
FLOOD_LIMIT_SECONDS = 600.0
#: Pause between two timed calls, so each phase spans seconds, not a burst.
PACE_SECONDS = 0.05


class Flood:
    """``FLOODERS`` clients posting wrong passwords until stopped, in a thread of their own."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self._stop = threading.Event()
        self._addresses = itertools.count(1)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._ready = threading.Event()

    def _address(self) -> str:
        number = next(self._addresses)
        return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"

    async def _one(self, started: asyncio.Event, count: list[int]) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            form = await client.get("/console/login")
            found = CSRF.search(form.text)
            if found is None:
                raise IncompleteRun(f"{NAME}: the sign-in form has no CSRF token")
            data = {"csrf_token": found[1], "username": ADMIN, "password": "wrong-password"}
            count[0] += 1
            if count[0] == FLOODERS:
                self._ready.set()
            await started.wait()
            deadline = time.monotonic() + FLOOD_LIMIT_SECONDS
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    response = await client.post(
                        "/console/login", data=data, headers={"X-Forwarded-For": self._address()}
                    )
                    self.statuses[response.status_code] += 1
                except httpx.HTTPError:
                    self.errors += 1

    async def _main(self) -> None:
        started = asyncio.Event()
        count = [0]
        tasks = [asyncio.create_task(self._one(started, count)) for _ in range(FLOODERS)]
        while not self._ready.is_set():
            await asyncio.sleep(0.05)
        started.set()
        await asyncio.gather(*tasks)

    def __enter__(self) -> Flood:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise IncompleteRun(f"{NAME}: the flooding clients did not get the sign-in form")
        time.sleep(1.0)  # the pool is saturated
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _measure(base: str, token: str, count: int, label: str) -> tuple[list[float], list[float]]:
    """``count`` reads and ``count`` writes, alternating, each timed."""
    reads: list[float] = []
    writes: list[float] = []
    headers = {"Authorization": f"SSWS {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for index in range(count):
            started = time.perf_counter()
            response = client.get("/api/v1/users", params={"limit": 20})
            reads.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise IncompleteRun(f"{NAME}: a read answered {response.status_code}")
            started = time.perf_counter()
            body = {"profile": {"name": f"{label} group {index}"}}
            response = client.post("/api/v1/groups", json=body)
            writes.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise IncompleteRun(f"{NAME}: a write answered {response.status_code}")
            time.sleep(PACE_SECONDS)
    return reads, writes


def _row(ctx: Context, name: str, values: list[float]) -> None:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    ctx.report.row(
        NAME,
        name,
        f"p50 {fmt_ms(p50)}  p99 {fmt_ms(p99)}  (n={len(values)})",
        p50_s=p50,
        p99_s=p99,
        n=len(values),
    )


def run(ctx: Context) -> None:
    ctx.report.section(f"{NAME}: API latency while {FLOODERS} clients flood the sign-in form")
    count = ctx.mode.signin_requests
    data_dir = ctx.data_dir(NAME)
    url = ctx.databases.sqlite()
    runtime = make_runtime(url, data_dir, secret_key=SECRET_KEY)
    try:
        create_users(runtime, 200, prefix="signin")
        create_admin(runtime)
        token = api_token(runtime, "bench")
    finally:
        runtime.close()
    with served_api(url, data_dir) as (base, _pid):
        _measure(base, token, 5, "warm-up")
        quiet_reads, quiet_writes = _measure(base, token, count, "quiet")
        with Flood(base) as flood:
            flood_reads, flood_writes = _measure(base, token, count, "flood")
    attempts = sum(flood.statuses.values())
    _row(ctx, "reads, quiet", quiet_reads)
    _row(ctx, "reads, sign-in flood", flood_reads)
    _row(ctx, "writes, quiet", quiet_writes)
    _row(ctx, "writes, sign-in flood", flood_writes)
    shown = ", ".join(f"{status}: {n}" for status, n in sorted(flood.statuses.items()))
    ctx.report.line(
        f"sign-in attempts during the flood: {attempts} ({shown}; errors {flood.errors})"
    )
    if attempts == 0:
        raise IncompleteRun(f"{NAME}: the flood made no sign-in attempt")
    for what, quiet, flooded in (
        ("read", quiet_reads, flood_reads),
        ("write", quiet_writes, flood_writes),
    ):
        for q in (50, 99):
            ctx.report.ratio(
                NAME,
                f"{what} p{q} under a sign-in flood / quiet",
                percentile(flooded, q) / percentile(quiet, q),
                f"{FLOODERS} clients, a new address per attempt; goal: p50 at most 1.5x",
            )
