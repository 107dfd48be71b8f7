"""``provision``: assign a group of N users to an app whose downstream is a scim2-server.

Headwater: the ``PUT /api/v1/apps/{app}/groups/{group}`` (one set-based enqueue of N keys) and
an in-process worker draining the keys until none is pending. Floor: a bare
``httpx.AsyncClient`` with the same concurrency sending the same requests (``GET /Users?filter=
userName eq "..."`` then ``POST /Users`` per user) to a fresh scim2-server. Both downstreams are
real subprocesses on loopback; the ratio is Headwater's wall time over the floor's. A second,
stricter floor sends the same requests with a bare ``aiohttp`` client, the pool Headwater's
outbound transport sends through (decision 50), at a sixth of httpx's CPU per request.

Every run must leave exactly N accounts downstream (and, for Headwater, no key pending and no
failed request); otherwise the benchmark fails with ``IncompleteRun`` rather than report a
ratio for less work.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    Databases,
    IncompleteRun,
    Meter,
    Mode,
    PostgresUnavailable,
    Report,
    RequestCounter,
    RssSampler,
    Usage,
    analyze,
    login_of,
    median,
    median_run,
    pg_database,
    require_complete,
    scim_user_body,
)
from headwater.db import outbox
from headwater.domain.settings import ProvisioningSettings
from headwater.runtime import Runtime
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    SCIM_HEADERS,
    api_client,
    converge,
    create_group,
    create_scim_app,
    import_users,
    make_runtime,
    ok,
)

__all__ = ["floor_provision", "run", "scim_total"]

NAME = "provision"


@dataclass
class Result:
    usage: Usage
    requests: Counter[str]
    converged: int
    #: The in-process worker's memory over the assignment and drain (None for the floor).
    rss: RssSampler | None = None


def scim_total(base_url: str, resource: str = "Users") -> int:
    """``totalResults`` of a resource listing, read straight from the downstream."""
    response = httpx.get(f"{base_url}/{resource}", params={"startIndex": 1, "count": 1})
    response.raise_for_status()
    return int(response.json()["totalResults"])


def _filter_path(login: str) -> str:
    params = {"filter": f'userName eq "{login}"', "startIndex": 1, "count": 2}
    return f"Users?{urlencode(params, quote_via=quote)}"


async def floor_provision(
    base_url: str, bodies: list[dict[str, Any]], concurrency: int
) -> Counter[str]:
    """Look up then create every user, ``concurrency`` at a time, with a bare client."""
    counts: Counter[str] = Counter()
    pending = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(
        base_url=base_url + "/", limits=limits, timeout=60, headers=SCIM_HEADERS
    ) as client:

        async def lane() -> None:
            for body in pending:
                found = await client.get(_filter_path(body["userName"]))
                counts["GET /Users"] += 1
                if found.status_code != 200:
                    raise RuntimeError(f"lookup failed: {found.status_code} {found.text[:200]}")
                if found.json().get("totalResults"):
                    continue
                created = await client.post("Users", content=json.dumps(body).encode())
                counts["POST /Users"] += 1
                if created.status_code != 201:
                    raise RuntimeError(f"create failed: {created.status_code} {created.text[:200]}")

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return counts


async def floor_provision_aiohttp(
    base_url: str, bodies: list[dict[str, Any]], concurrency: int
) -> Counter[str]:
    """:func:`floor_provision` with a bare aiohttp client."""
    counts: Counter[str] = Counter()
    pending = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(
        base_url + "/", connector=connector, headers=SCIM_HEADERS
    ) as client:

        async def lane() -> None:
            for body in pending:
                async with client.get(_filter_path(body["userName"])) as found:
                    counts["GET /Users"] += 1
                    if found.status != 200:
                        raise RuntimeError(f"lookup failed: {found.status} {await found.text()}")
                    if json.loads(await found.read()).get("totalResults"):
                        continue
                async with client.post("Users", data=json.dumps(body).encode()) as created:
                    counts["POST /Users"] += 1
                    if created.status != 201:
                        raise RuntimeError(
                            f"create failed: {created.status} {await created.text()}"
                        )
                    await created.read()

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return counts


def pending(runtime: Runtime) -> int:
    with runtime.database.read() as session:
        return outbox.pending_count(session)


def run_floor(count: int, concurrency: int, client: str = "httpx") -> Result:
    bodies = [
        scim_user_body(login_of("user", i), f"00ufloor{i:011d}", f"User {i:06d}")
        for i in range(count)
    ]
    with ScimServerProcess() as server:
        assert server.pid is not None
        with Meter({"scim": server.pid}) as meter:
            send = floor_provision if client == "httpx" else floor_provision_aiohttp
            counts = asyncio.run(send(server.base_url, bodies, concurrency))
        converged = scim_total(server.base_url)
    label = "floor" if client == "httpx" else f"{client} floor"
    require_complete(f"{NAME}: {label}", converged, count, "accounts")
    return Result(meter.usage, counts, converged)


def run_headwater(ctx: Context, url: str, count: int) -> tuple[Result, float]:
    """Returns the result and the seconds the assignment PUT itself took."""
    data_dir = ctx.data_dir(f"provision-{ctx.databases._count}")
    runtime = make_runtime(url, data_dir, secret_key=SECRET_KEY)
    try:
        group_id = create_group(runtime, "Everyone")
        import_users(runtime, count, digits=DIGITS, group_ids=[group_id])
        analyze(runtime)
        counter = RequestCounter()
        runtime.connectors.hooks.append(counter)
        with (
            ScimServerProcess() as server,
            api_client(runtime, raise_server_exceptions=True) as client,
        ):
            assert server.pid is not None
            app_id = create_scim_app(runtime, server.base_url, "Bench SCIM")
            converge(runtime, timeout=3600, settled=False)
            counter.counts.clear()
            with (
                RssSampler() as rss,
                Meter({"scim": server.pid}, postgres=pg_database(runtime)) as meter,
            ):
                with Meter() as put:  # the API call itself is measured too
                    assignment = {"priority": 0}
                    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group_id}", json=assignment))
                converge(runtime, timeout=3600, settled=False)
            left = pending(runtime)
            if left or counter.failures:
                raise IncompleteRun(
                    f"{NAME}: headwater[{runtime.database.dialect}] did not converge: "
                    f"{left} keys pending, {counter.failures} failed requests"
                )
            converged = scim_total(server.base_url)
        require_complete(
            f"{NAME}: headwater[{runtime.database.dialect}]", converged, count, "accounts"
        )
        result = Result(meter.usage, Counter(counter.counts), converged, rss)
        return result, put.usage.wall
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items()))


def _floor_row(
    report: Report,
    floor: Result,
    concurrency: int,
    count: int,
    floors: list[Result],
    client: str = "httpx",
) -> None:
    report.row(
        NAME,
        f"floor (bare {client}, {concurrency} lanes)",
        f"{floor.usage.describe()}, {count / floor.usage.wall:7.1f} accounts/s",
        usage=floor.usage.as_dict(),
        requests=dict(floor.requests),
        accounts=floor.converged,
        users=count,
        walls=[r.usage.wall for r in floors],
        cpu_ms_per_account=floor.usage.cpu_self * 1000 / count,
    )
    report.line(f"floor ({client}) requests: {_describe(floor.requests)}")


def run(ctx: Context, *, with_floor: bool = True) -> None:
    """Provision N users through Headwater on SQLite and PostgreSQL, interleaved with the floor
    (``with_floor=False``: Headwater alone, for sizes whose floor the time cannot afford)."""
    report, count, runs = ctx.report, ctx.mode.provision_users, ctx.mode.runs
    concurrency = ProvisioningSettings().max_concurrency
    report.section(
        f"provision: assign a group of {count:,} users to a scim2-server app "
        f"({runs} run{'s' if runs > 1 else ''} each, median shown)"
    )
    databases = list(ctx.mode.provision_databases)
    floors: list[Result] = []
    lean_floors: list[Result] = []
    results: dict[str, list[Result]] = {db: [] for db in databases}
    puts: dict[str, list[float]] = {db: [] for db in databases}
    for index in range(runs):
        if with_floor:
            floors.append(run_floor(count, concurrency))
            report.line(f"run {index + 1}: floor {floors[-1].usage.wall:.1f} s")
            lean_floors.append(run_floor(count, concurrency, "aiohttp"))
            report.line(f"run {index + 1}: aiohttp floor {lean_floors[-1].usage.wall:.1f} s")
        for db in list(databases):
            try:
                url = ctx.databases.sqlite() if db == "sqlite" else ctx.databases.postgres()
            except PostgresUnavailable as exc:
                report.note(f"PostgreSQL skipped: {exc}")
                databases.remove(db)
                continue
            result, put_seconds = run_headwater(ctx, url, count)
            results[db].append(result)
            puts[db].append(put_seconds)
            report.line(f"run {index + 1}: headwater[{db}] {result.usage.wall:.1f} s")
    floor = median_run(floors) if floors else None
    lean_floor = median_run(lean_floors) if lean_floors else None
    if floor is None or lean_floor is None:
        report.note("no floor: Headwater alone, no ratio to the floor")
    else:
        _floor_row(report, floor, concurrency, count, floors)
        _floor_row(report, lean_floor, concurrency, count, lean_floors, "aiohttp")
    for db in databases:
        result = median_run(results[db])
        wall = result.usage.wall
        report.row(
            NAME,
            f"headwater[{db}]",
            f"{result.usage.describe()}, {count / wall:7.1f} accounts/s",
            db=db,
            usage=result.usage.as_dict(),
            requests=dict(result.requests),
            accounts=result.converged,
            users=count,
            assignment_put_seconds=median(puts[db]),
            walls=[r.usage.wall for r in results[db]],
            cpu_ms_per_account=result.usage.cpu_self * 1000 / count,
            **(result.rss.as_dict() if result.rss else {}),
        )
        report.line(f"headwater[{db}] requests: {_describe(result.requests)}")
        report.line(
            f"headwater[{db}] assignment PUT (enqueues {count:,} keys): {median(puts[db]):.3f} s"
        )
        if result.rss is not None:
            report.line(
                f"headwater[{db}] memory of the process during the drain: {result.rss.describe()}"
            )
            report.line(
                f"headwater[{db}] CPU here {result.usage.cpu_self * 1000 / count:.2f} ms/account, "
                f"RSS growth {result.rss.growth / count:.0f} bytes/account"
            )
        if floor is None or lean_floor is None:
            continue
        report.ratio(
            NAME,
            f"headwater[{db}] / floor wall time",
            wall / floor.usage.wall,
            f"{wall:.1f} s vs {floor.usage.wall:.1f} s for {count:,} accounts; target < 1.5",
        )
        report.ratio(
            NAME,
            f"headwater[{db}] / floor client CPU",
            result.usage.cpu_self / max(floor.usage.cpu_self, 1e-9),
            f"{result.usage.cpu_self:.1f} s vs {floor.usage.cpu_self:.1f} s in the sending process",
        )
        report.ratio(
            NAME,
            f"headwater[{db}] / aiohttp floor wall time",
            wall / lean_floor.usage.wall,
            f"{wall:.1f} s vs {lean_floor.usage.wall:.1f} s with a bare aiohttp client",
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.provision --users N [--only sqlite|postgresql] [--no-floor]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.provision", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000, help="users in the group")
    parser.add_argument(
        "--only", action="append", choices=["sqlite", "postgresql"], help="databases (repeatable)"
    )
    parser.add_argument("--no-floor", action="store_true", help="Headwater alone, no floor run")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    mode = dataclasses.replace(
        Mode.pick(quick=False, full=True),
        provision_users=args.users,
        provision_databases=tuple(args.only or ("sqlite", "postgresql")),
    )
    report = Report()
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, report, databases, Path(scratch)), with_floor=not args.no_floor)
        finally:
            databases.close()
    if args.json is not None:
        report.dump(args.json, {"load_before": load, "load_after": os.getloadavg()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
