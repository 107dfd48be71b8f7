"""``bulk``: fewer requests per account: batched look-ups and SCIM Bulk, against scim2-server.

A group of N users is assigned to an app whose downstream is a scim2-server subprocess that
announces Bulk (1,000 operations, 1 MiB per request) and takes filters joined by ``or``.
Headwater runs twice on SQLite, with the worker in process:

* **batched look-ups** (``lookupBatchSize`` 100, ``bulkSupport`` unsupported): one look-up per
  100 new accounts, then one ``POST /Users`` each: requests per new account (goal at most 1.05);
* **Bulk** (Bulk as announced), with one look-up per account, and with batched look-ups:
  the creates gathered into Bulk requests;
* **Bulk, create first** (``lookupBeforeCreate`` false): the creates in Bulk requests with no
  look-up before them (an account the app already has is answered 409, then looked up).

At most 2,000 users (``MAX_USERS``): scim2-server indexes a single ``userName eq`` but walks
every user for a filter joined by ``or``, so batched look-ups cost it O(N²) CPU in all.

Floors, in the same run, from a bare ``httpx.AsyncClient`` with the app's 8 lanes against a
fresh server: **one request per account** (a ``POST /Users`` each, no look-up) and the
``provision`` benchmark's **look-up + create** per account. The ratios are Headwater's wall
time over the floors'; Bulk's goal is at most 0.6 of the one-request floor.
``python -m bench.bulk [--quick] [--users N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    Databases,
    IncompleteRun,
    Meter,
    Mode,
    Report,
    RequestCounter,
    Usage,
    analyze,
    login_of,
    scim_user_body,
)
from bench.provision import floor_provision, pending, scim_total
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    SCIM_HEADERS,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
)

__all__ = ["run"]

NAME = "bulk"
LOOKUP_BATCH = 100
#: See the module's docstring: the downstream's cost of batched look-ups grows as N².
MAX_USERS = 2000
BULK = ["--bulk"]


@dataclass
class Result:
    usage: Usage
    requests: Counter[str]


def _bodies(count: int) -> list[dict[str, Any]]:
    return [
        scim_user_body(login_of("user", i), f"00ufloor{i:011d}", f"User {i:06d}")
        for i in range(count)
    ]


async def _create_only(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    """One ``POST /Users`` per account, ``concurrency`` at a time, with a bare client."""
    sent = 0
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(
        base_url=base_url + "/", limits=limits, timeout=60, headers=SCIM_HEADERS
    ) as client:

        async def lane() -> None:
            nonlocal sent
            for body in queue:
                created = await client.post("Users", content=json.dumps(body).encode())
                sent += 1
                if created.status_code != 201:
                    raise RuntimeError(f"create failed: {created.status_code}")

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return sent


def run_floor(count: int, concurrency: int, *, lookup: bool) -> Result:
    bodies = _bodies(count)
    with ScimServerProcess(extra_args=BULK) as server:
        assert server.pid is not None
        with Meter({"scim": server.pid}) as meter:
            if lookup:
                counts = asyncio.run(floor_provision(server.base_url, bodies, concurrency))
            else:
                counts = Counter(
                    {"POST /Users": asyncio.run(_create_only(server.base_url, bodies, concurrency))}
                )
        converged = scim_total(server.base_url)
    if converged != count:
        raise IncompleteRun(f"{NAME}: floor left {converged:,} of {count:,} accounts")
    return Result(meter.usage, counts)


def run_headwater(ctx: Context, count: int, **settings: Any) -> Result:
    url = ctx.databases.sqlite()
    runtime = make_runtime(url, ctx.data_dir(f"bulk-{ctx.databases._count}"), secret_key=SECRET_KEY)
    try:
        group = create_group(runtime, "Everyone")
        create_users(runtime, count, digits=DIGITS, group_ids=[group])
        analyze(runtime)
        counter = RequestCounter()
        runtime.connectors.hooks.append(counter)
        with ScimServerProcess(extra_args=BULK) as server:
            assert server.pid is not None
            app_id = create_scim_app(runtime, server.base_url, "Bench Bulk", **settings)
            converge(runtime, timeout=3600, settled=False)
            counter.counts.clear()
            with Meter({"scim": server.pid}) as meter:
                assign_group(runtime, app_id, group)
                converge(runtime, timeout=3600, settled=False)
            left = pending(runtime)
            if left or counter.failures:
                raise IncompleteRun(
                    f"{NAME}: headwater did not converge: {left} keys pending, "
                    f"{counter.failures} failed requests"
                )
            converged = scim_total(server.base_url)
        if converged != count:
            raise IncompleteRun(f"{NAME}: headwater left {converged:,} of {count:,} accounts")
        return Result(meter.usage, Counter(counter.counts))
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items()))


def run(ctx: Context, users: int | None = None) -> None:
    report = ctx.report
    count = users or min(ctx.mode.provision_users, MAX_USERS)
    concurrency = ProvisioningSettings().max_concurrency
    report.section(
        f"bulk: assign a group of {count:,} users; batched look-ups and SCIM Bulk (SQLite)"
    )
    if count < ctx.mode.provision_users and users is None:
        report.note(f"{count:,} users, not {ctx.mode.provision_users:,}: see bench/bulk.py")
    one = run_floor(count, concurrency, lookup=False)
    two = run_floor(count, concurrency, lookup=True)
    lookups = run_headwater(ctx, count, lookup_batch_size=LOOKUP_BATCH, bulk_support="unsupported")
    bulk_alone = run_headwater(ctx, count)
    bulk = run_headwater(ctx, count, lookup_batch_size=LOOKUP_BATCH)
    first = run_headwater(ctx, count, lookup_before_create=False)
    for label, result in (
        (f"floor: one request per account (bare httpx, {concurrency} lanes)", one),
        (f"floor: look-up + create per account (bare httpx, {concurrency} lanes)", two),
        ("headwater: batched look-ups", lookups),
        ("headwater: Bulk, one look-up per account", bulk_alone),
        ("headwater: Bulk + batched look-ups", bulk),
        ("headwater: Bulk, create first", first),
    ):
        report.row(
            NAME,
            label,
            f"{result.usage.describe()}, {count / result.usage.wall:7.1f} accounts/s",
            usage=result.usage.as_dict(),
            requests=dict(result.requests),
            users=count,
        )
        report.line(f"{label} requests: {_describe(result.requests)}")
    per_account = sum(lookups.requests.values()) / count
    report.ratio(
        NAME,
        "requests per new account with batched look-ups",
        per_account,
        f"{sum(lookups.requests.values()):,} requests for {count:,} accounts; goal at most 1.05",
    )
    report.ratio(
        NAME,
        "batched look-ups / look-up + create floor wall time",
        lookups.usage.wall / two.usage.wall,
        f"{lookups.usage.wall:.1f} s vs {two.usage.wall:.1f} s",
    )
    for label, result in (
        ("Bulk, one look-up per account", bulk_alone),
        ("Bulk + batched look-ups", bulk),
        ("Bulk, create first", first),
    ):
        report.ratio(
            NAME,
            f"{label} / look-up + create floor wall time",
            result.usage.wall / two.usage.wall,
            f"{result.usage.wall:.1f} s vs {two.usage.wall:.1f} s",
        )
        report.ratio(
            NAME,
            f"{label} / POST-only floor wall time",
            result.usage.wall / one.usage.wall,
            f"{result.usage.wall:.1f} s vs {one.usage.wall:.1f} s; goal at most 0.6",
        )
    report.ratio(
        NAME,
        "requests per new account with Bulk",
        sum(bulk.requests.values()) / count,
        f"{_describe(bulk.requests)}",
    )
    report.ratio(
        NAME,
        "requests per new account with Bulk, create first",
        sum(first.requests.values()) / count,
        f"{_describe(first.requests)}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 users instead of 10,000")
    parser.add_argument("--users", type=int, help=f"users in the group (default {MAX_USERS:,})")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)), args.users)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
