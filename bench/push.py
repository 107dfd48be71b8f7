"""``push``: Group Push of an N-member group whose members already have downstream accounts.

Setup (not timed): N directory users in one group that is assigned to the app, their accounts
created downstream (SCIM Bulk) and recorded as linked. Headwater: ``POST .../group-push/mappings``
then an in-process worker drained until no key is pending. Floor: a bare client sending the
same requests (find the group by name, create it, then the batched membership PATCHes, one at a
time) to a fresh scim2-server holding the same users. scim2-server copies the whole group on
every PATCH, so each PATCH costs time in proportion to the group's size; requests are counted.

``--runs N`` repeats floor and Headwater runs, interleaved; the run with the median wall time
is reported. Every run must leave the downstream group with exactly N members (and, for
Headwater, no key pending and no failed request); otherwise the benchmark fails with
``IncompleteRun`` rather than report a ratio for less work.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from sqlalchemy import insert

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    IncompleteRun,
    Meter,
    RequestCounter,
    Usage,
    analyze,
    login_of,
    median_run,
    pg_database,
    require_complete,
    scim_user_body,
)
from bench.provision import pending
from headwater import clock
from headwater.db import tables as t
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    SCIM_HEADERS,
    api_client,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    ok,
)

__all__ = ["bulk_create_users", "run"]

NAME = "push"
GROUP = "Pushed Staff"
BATCH = 100
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class Result:
    usage: Usage
    requests: Counter[str]
    members: int


def bulk_create_users(base_url: str, bodies: list[dict[str, Any]]) -> list[str]:
    """Create accounts downstream with ``POST /Bulk`` (100 per request); returns their ids."""
    created: list[str] = []
    with httpx.Client(base_url=base_url + "/", timeout=120, headers=SCIM_HEADERS) as client:
        for start in range(0, len(bodies), BATCH):
            operations = [
                {"method": "POST", "path": "/Users", "bulkId": str(i), "data": body}
                for i, body in enumerate(bodies[start : start + BATCH])
            ]
            response = client.post(
                "Bulk", content=json.dumps({"schemas": [BULK_SCHEMA], "Operations": operations})
            )
            response.raise_for_status()
            for result in response.json()["Operations"]:
                if not str(result.get("status", "")).startswith("201"):
                    raise RuntimeError(f"bulk create failed: {result}")
                created.append(result["location"].rstrip("/").rsplit("/", 1)[-1])
    return created


def group_members(base_url: str, name: str) -> int:
    """How many members the downstream group ``name`` holds (0 when it does not exist)."""
    params = {"filter": f'displayName eq "{name}"'}
    response = httpx.get(f"{base_url}/Groups", params=params, timeout=120)
    response.raise_for_status()
    resources = response.json().get("Resources") or []
    return len(resources[0].get("members") or []) if resources else 0


def _patch(op: str, members: list[str]) -> bytes:
    value = [{"value": member} for member in members]
    operation = {"op": op, "path": "members", "value": value}
    body = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
    return json.dumps(body).encode()


async def floor_push(base_url: str, member_ids: list[str]) -> Counter[str]:
    """Find the group, create it, then replace/add its members in batches of ``BATCH``."""
    counts: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=base_url + "/", timeout=600, headers=SCIM_HEADERS) as c:
        params = {"filter": f'displayName eq "{GROUP}"', "startIndex": 1, "count": 2}
        found = await c.get(f"Groups?{urlencode(params, quote_via=quote)}")
        counts["GET /Groups"] += 1
        found.raise_for_status()
        body = {"schemas": [GROUP_SCHEMA], "displayName": GROUP, "members": []}
        created = await c.post("Groups", content=json.dumps(body).encode())
        counts["POST /Groups"] += 1
        created.raise_for_status()
        group_id = created.json()["id"]
        for index, start in enumerate(range(0, len(member_ids), BATCH)):
            batch = member_ids[start : start + BATCH]
            response = await c.patch(
                f"Groups/{group_id}", content=_patch("replace" if index == 0 else "add", batch)
            )
            counts["PATCH /Groups/{id}"] += 1
            response.raise_for_status()
    return counts


def _bodies(count: int, user_ids: list[str]) -> list[dict[str, Any]]:
    return [scim_user_body(login_of("user", i), user_ids[i], f"User {i:06d}") for i in range(count)]


#: The accounts are seeded with ``POST /Bulk``, which the server then announces: the app is
#: told not to use Bulk, so the push is measured one request per change, as the floor sends.
SEED_WITH_BULK = ["--bulk"]


def run_floor(count: int) -> Result:
    with ScimServerProcess(extra_args=SEED_WITH_BULK) as server:
        assert server.pid is not None
        placeholder = [f"00ufloor{i:011d}" for i in range(count)]
        external = bulk_create_users(server.base_url, _bodies(count, placeholder))
        with Meter({"scim": server.pid}) as meter:
            counts = asyncio.run(floor_push(server.base_url, external))
        members = group_members(server.base_url, GROUP)
    require_complete(f"{NAME}: floor", members, count, "group members")
    return Result(meter.usage, counts, members)


def run_headwater(ctx: Context, url: str, count: int) -> Result:
    runtime = make_runtime(url, ctx.data_dir(f"push-{ctx.databases._count}"), secret_key=SECRET_KEY)
    try:
        group_id = create_group(runtime, GROUP)
        user_ids = create_users(runtime, count, digits=DIGITS, group_ids=[group_id])
        counter = RequestCounter()
        runtime.connectors.hooks.append(counter)
        with (
            ScimServerProcess(extra_args=SEED_WITH_BULK) as server,
            api_client(runtime, raise_server_exceptions=True) as client,
        ):
            assert server.pid is not None
            app_id = create_scim_app(
                runtime, server.base_url, "Bench SCIM", bulk_support="unsupported"
            )
            converge(runtime, timeout=3600, settled=False)
            external = bulk_create_users(server.base_url, _bodies(count, user_ids))
            _record_accounts(runtime, app_id, group_id, user_ids, external)
            analyze(runtime)
            counter.counts.clear()
            with Meter({"scim": server.pid}, postgres=pg_database(runtime)) as meter:
                body = {"sourceGroupId": group_id, "targetGroupName": GROUP}
                ok(client.post(f"/api/v1/apps/{app_id}/group-push/mappings", json=body), 201)
                converge(runtime, timeout=3600, settled=False)
            left = pending(runtime)
            if left or counter.failures:
                raise IncompleteRun(
                    f"{NAME}: headwater[sqlite] did not converge: {left} keys pending, "
                    f"{counter.failures} failed requests"
                )
            members = group_members(server.base_url, GROUP)
        require_complete(f"{NAME}: headwater[sqlite]", members, count, "group members")
        return Result(meter.usage, Counter(counter.counts), members)
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _record_accounts(
    runtime: Any, app_id: str, group_id: str, user_ids: list[str], external: list[str]
) -> None:
    """The group assigns the app, and every member's account is recorded as provisioned.

    Engine state, written directly on purpose: this benchmark measures the push alone, and
    provisioning up to 100,000 accounts first (measured by ``provision``) would dominate the run.
    The assignment row is written without the service for the same reason: the service would
    enqueue every member's key, and reconciling them is not what is measured here.
    """
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        session.execute(
            insert(t.AppGroupAssignment),
            [
                {
                    "app_id": app_id,
                    "group_id": group_id,
                    "priority": 0,
                    "profile": {},
                    "created": now,
                    "last_updated": now,
                }
            ],
        )
        rows = [
            {
                "app_id": app_id,
                "user_id": user_id,
                "external_id": external_id,
                "user_name": login_of("user", index),
                "state": "ACTIVE",
                "sync_state": "SYNCHRONIZED",
                "created": now,
                "last_updated": now,
                "last_sync": now,
            }
            for index, (user_id, external_id) in enumerate(zip(user_ids, external, strict=True))
        ]
        for start in range(0, len(rows), 10_000):
            session.execute(insert(t.AppUserLink), rows[start : start + 10_000])


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items()))


def run(ctx: Context) -> None:
    """Push an N-member group through Headwater (SQLite) and through the bare floor, ``runs``
    times each, interleaved; the run with the median wall time of each is reported."""
    report, count, runs = ctx.report, ctx.mode.push_members, ctx.mode.runs
    report.section(
        f"push: Group Push of a {count:,}-member group (accounts already exist; "
        f"{runs} run{'s' if runs > 1 else ''} each, median shown)"
    )
    floors: list[Result] = []
    results: list[Result] = []
    for index in range(runs):
        floors.append(run_floor(count))
        report.line(f"run {index + 1}: floor {floors[-1].usage.wall:.1f} s")
        results.append(run_headwater(ctx, ctx.databases.sqlite(), count))
        report.line(f"run {index + 1}: headwater[sqlite] {results[-1].usage.wall:.1f} s")
    floor, result = median_run(floors), median_run(results)
    report.row(
        NAME,
        "floor (bare httpx, sequential)",
        f"{floor.usage.describe()}, {count / floor.usage.wall:7.1f} members/s",
        usage=floor.usage.as_dict(),
        requests=dict(floor.requests),
        members=floor.members,
        size=count,
        walls=[r.usage.wall for r in floors],
    )
    report.line(f"floor requests: {_describe(floor.requests)}")
    report.row(
        NAME,
        "headwater[sqlite]",
        f"{result.usage.describe()}, {count / result.usage.wall:7.1f} members/s",
        db="sqlite",
        usage=result.usage.as_dict(),
        requests=dict(result.requests),
        members=result.members,
        size=count,
        walls=[r.usage.wall for r in results],
    )
    report.line(f"headwater[sqlite] requests: {_describe(result.requests)}")
    report.ratio(
        NAME,
        "headwater[sqlite] / floor wall time",
        result.usage.wall / floor.usage.wall,
        f"{result.usage.wall:.1f} s vs {floor.usage.wall:.1f} s for {count:,} members",
    )
    report.ratio(
        NAME,
        "headwater[sqlite] / floor requests",
        sum(result.requests.values()) / max(sum(floor.requests.values()), 1),
        f"{sum(result.requests.values())} vs {sum(floor.requests.values())} requests",
    )
    report.ratio(
        NAME,
        "headwater[sqlite] / floor client CPU",
        result.usage.cpu_self / max(floor.usage.cpu_self, 1e-9),
        f"{result.usage.cpu_self:.1f} s vs {floor.usage.cpu_self:.1f} s in the sending process",
    )
