"""``engine``: what the engine itself costs per account, against a downstream that costs nothing.

The downstream is a canned-answer ASGI app in this process (no sockets, no parsing beyond the
path: every lookup finds nobody, every create answers the user sent, reads answer the users
created), so nearly all CPU spent is Headwater's: claiming keys, reading the snapshot,
planning, sending through httpx, recording. Figures: CPU per account (goal 0.5 ms), account
operations per second of CPU, SQL statements per account (goal 3) and downstream requests per
account, for a group of N users assigned at once, on SQLite and PostgreSQL; then a full
re-reconcile of the converged app: downstream reads per 100 accounts (goal 1) and writes
(goal 0).

Three ways of sending the creates: one look-up per account, look-ups in batches of 100, and
**Bulk + create first** (the sink announces Bulk; ``lookupBeforeCreate`` false: no look-up,
the creates gathered into Bulk requests). ``python -m bench.engine [--quick] [--users N]
[--db sqlite|postgresql]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    Databases,
    Mode,
    PostgresUnavailable,
    Report,
    analyze,
    require_complete,
)
from bench.sink import CannedScim
from headwater.db import outbox
from headwater.db.engine import Database
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    queued,
)

__all__ = ["run"]

NAME = "engine"
SINK = "http://sink.bench"

_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


class Statements:
    """Counts SQL statements run on a database while active: each call to the driver, so an
    ``executemany`` (many rows, one statement) counts once."""

    def __init__(self, database: Database) -> None:
        self.engine = database.engine
        self.count = 0

    def _note(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)


#: Names per batched look-up in the second run (the sink takes filters joined by ``or``).
LOOKUP_BATCH = 100


@dataclass(frozen=True)
class Sending:
    """How the creates are sent: the app's settings, and whether the sink announces Bulk."""

    label: str
    lookup_batch_size: int = 0
    bulk: bool = False
    lookup_before_create: bool = True


SENDINGS = (
    Sending("one look-up per account"),
    Sending(f"look-ups in batches of {LOOKUP_BATCH}", lookup_batch_size=LOOKUP_BATCH),
    Sending("Bulk + create first", bulk=True, lookup_before_create=False),
)


def measure(ctx: Context, url: str, count: int, sending: Sending = SENDINGS[0]) -> dict[str, float]:
    import httpx

    runtime: Runtime = make_runtime(
        url, ctx.data_dir(f"engine-{ctx.databases._count}"), secret_key=SECRET_KEY
    )
    try:
        sink = CannedScim(bulk=sending.bulk)
        runtime.connectors.transports[SINK] = httpx.ASGITransport(app=sink)
        group = create_group(runtime, "Everyone")
        create_users(runtime, count, digits=DIGITS, group_ids=[group])
        app_id = create_scim_app(
            runtime,
            f"{SINK}/scim/v2",
            "Sink",
            lookup_batch_size=sending.lookup_batch_size,
            lookup_before_create=sending.lookup_before_create,
        )
        analyze(runtime)
        sink.requests.clear()
        assign_group(runtime, app_id, group)
        with Statements(runtime.database) as statements:
            cpu, wall = time.process_time(), time.perf_counter()
            converge(runtime, timeout=3600, settled=False)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        require_complete(
            f"{NAME}[{runtime.database.dialect}]", sink.created, count, "accounts created"
        )
        if queued(runtime):
            raise AssertionError("keys left pending")
        requests = sum(sink.requests.values())
        again = rereconcile(runtime, sink, app_id)
        return {
            **again,
            "cpu_ms_per_account": cpu * 1000 / count,
            "accounts_per_cpu_second": count / cpu,
            "wall": wall,
            "statements_per_account": statements.count / count,
            "requests_per_account": requests / count,
        }
    finally:
        runtime.close()
        ctx.databases.drop(url)


def floor(count: int, lanes: int = 8) -> float:
    """CPU per account (ms) of a bare ``httpx.AsyncClient`` sending the same look-up and create
    per account to the same sink, ``lanes`` at a time: what the HTTP client alone costs."""

    import httpx

    async def main() -> float:
        sink = CannedScim()
        transport = httpx.ASGITransport(app=sink)
        async with httpx.AsyncClient(transport=transport, base_url=f"{SINK}/scim/v2") as client:
            limit = asyncio.Semaphore(lanes)

            async def one(i: int) -> None:
                name = f"user{i:0{DIGITS}d}@example.com"
                async with limit:
                    found = await client.get(
                        "/Users", params={"filter": f'userName eq "{name}"', "count": 2}
                    )
                    found.json()
                    body = {"schemas": [_USER], "userName": name, "active": True}
                    created = await client.post("/Users", content=json.dumps(body).encode())
                    created.json()

            cpu = time.process_time()
            await asyncio.gather(*(one(i) for i in range(count)))
            return (time.process_time() - cpu) * 1000 / count

    return asyncio.run(main())


def rereconcile(runtime: Runtime, sink: CannedScim, app_id: str) -> dict[str, float]:
    """A full reconcile of the converged app, as the schedule starts one (every key observing,
    plus the unmanaged-account survey): downstream reads and writes per 100 accounts. The
    accounts are read back from one listing (``GET /Users`` pages) that the survey reuses."""
    accounts = len(sink.users)
    sink.requests.clear()
    with runtime.database.transaction() as session:
        outbox.enqueue_app(session, app_id, observe=True)
        outbox.enqueue_keys(session, [(app_id, KeyKind.IMPORT, app_id)])
    cpu = time.process_time()
    converge(runtime, timeout=3600, settled=False)
    cpu = time.process_time() - cpu
    reads = sum(n for name, n in sink.requests.items() if name.startswith("GET "))
    return {
        "rereconcile_reads_per_100": reads * 100 / accounts,
        "rereconcile_reads_by_id": float(sink.requests["GET /Users/{id}"]),
        "rereconcile_writes": float(sum(sink.requests.values()) - reads),
        "rereconcile_cpu_ms_per_account": cpu * 1000 / accounts,
    }


def run(
    ctx: Context, users: int | None = None, databases: tuple[str, ...] = ("sqlite", "postgresql")
) -> None:
    report, count = ctx.report, users or ctx.mode.provision_users
    report.section(f"engine: {count:,} accounts into a zero-cost SCIM sink (CPU of this process)")
    for db in databases:
        for sending in SENDINGS:
            try:
                url = ctx.databases.sqlite() if db == "sqlite" else ctx.databases.postgres()
            except PostgresUnavailable as exc:
                report.note(f"PostgreSQL skipped: {exc}")
                break
            _report(ctx, f"{db}, {sending.label}", measure(ctx, url, count, sending))
    bare = floor(count)
    report.row(
        NAME,
        "floor: bare httpx, look-up + create per account, 8 lanes",
        f"{bare:.3f} ms CPU per account (the HTTP client's share of the figures above)",
        floor_cpu_ms_per_account=bare,
    )


def _report(ctx: Context, how: str, figures: dict[str, float]) -> None:
    report = ctx.report
    report.row(
        NAME,
        f"{how}: CPU per account",
        f"{figures['cpu_ms_per_account']:.3f} ms  ({figures['accounts_per_cpu_second']:,.0f} "
        f"accounts per CPU second, wall {figures['wall']:.1f} s)",
        **figures,
    )
    report.row(
        NAME,
        f"{how}: per account",
        f"{figures['statements_per_account']:.2f} SQL statements, "
        f"{figures['requests_per_account']:.2f} downstream requests",
    )
    report.row(
        NAME,
        f"{how}: re-reconcile of the converged app",
        f"{figures['rereconcile_reads_per_100']:.2f} read requests per 100 accounts "
        f"(goal 1; {figures['rereconcile_reads_by_id']:.0f} of them by id), "
        f"{figures['rereconcile_writes']:.0f} writes, "
        f"{figures['rereconcile_cpu_ms_per_account']:.3f} ms CPU per account",
    )
    report.ratio(
        NAME,
        f"{how}: CPU per account / 0.5 ms goal",
        figures["cpu_ms_per_account"] / 0.5,
        "the issue's goal is at most 1.00x",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the smoke test's sizes")
    parser.add_argument("--users", type=int, help="accounts in the group (default: the mode's)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql"), action="append", help="default: both"
    )
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            ctx = Context(mode, Report(), databases, Path(scratch))
            run(ctx, args.users, tuple(args.db or ("sqlite", "postgresql")))
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
