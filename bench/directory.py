"""``directory``: the API's everyday calls on a directory of N users, SQLite and PostgreSQL.

Create a user, get a user, list a page of 200 users (page 1, and a page deep in the list reached
with the ``after`` cursor), add a membership, all through the API in-process. Baseline: a raw SQL
primary-key ``SELECT`` of the same rows on the same engine, so the ratio is the API's overhead.
For contrast, the same deep page read with ``OFFSET`` shows what the cursor saves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    PostgresUnavailable,
    analyze,
    fmt_ms,
    median,
    percentile,
)
from headwater.runtime import Runtime
from headwater.testing.toolkit import api_client, create_group, create_users, make_runtime, ok

__all__ = ["run"]

NAME = "directory"
PAGE = 200


Probe = tuple[str, Callable[[], Any]]


def _measure(ctx: Context, label: str, probes: list[Probe], repeat: int) -> list[float]:
    """Time each probe ``repeat`` times, calls interleaved (a, b, a, b, ...) so that a change in
    the machine's load hits every probe alike; print median, p95, ops/s and CPU per call, and
    return the medians."""
    for _, fn in probes:
        fn()  # warm-up: compiled statements, caches, pooled connections
    laps: list[list[float]] = [[] for _ in probes]
    cpu = [0.0] * len(probes)
    for _ in range(repeat):
        for index, (_, fn) in enumerate(probes):
            started_cpu, started = time.process_time(), time.perf_counter()
            fn()
            laps[index].append(time.perf_counter() - started)
            cpu[index] += time.process_time() - started_cpu
    medians = []
    for (name, _), values, spent in zip(probes, laps, cpu, strict=True):
        mid, per_call = median(values), spent / repeat
        medians.append(mid)
        ctx.report.row(
            NAME,
            f"{label} {name}",
            f"median {fmt_ms(mid)}  p95 {fmt_ms(percentile(values, 95))}  "
            f"{1 / mid:8.0f} ops/s  cpu {fmt_ms(per_call)}/op  (n={repeat})",
            op=name,
            target=label,
            median_s=mid,
            p95_s=percentile(values, 95),
            cpu_s=per_call,
            n=repeat,
        )
    return medians


def _cursor_at(runtime: Runtime, position: int) -> str:
    """The id after which page ``position // PAGE + 1`` starts (read once, not timed)."""
    with runtime.database.engine.connect() as conn:
        value = conn.execute(
            text("SELECT id FROM users ORDER BY id LIMIT 1 OFFSET :n"), {"n": position - 1}
        ).scalar_one()
    return str(value)


def _bench_one(ctx: Context, db: str, url: str, count: int) -> None:
    report, samples = ctx.report, ctx.mode.samples
    size = f"{count // 1000}k" if count % 1000 == 0 else str(count)
    label = f"[{db} {size}]"
    runtime = make_runtime(url, ctx.data_dir(f"directory-{db}-{count}"), secret_key=SECRET_KEY)
    try:
        group_id = create_group(runtime, "Staff")
        staff = count // 10
        user_ids = create_users(runtime, staff, digits=DIGITS, group_ids=[group_id])
        user_ids += create_users(runtime, count - staff, start=staff, digits=DIGITS)
        extra = create_users(runtime, samples, prefix="member", digits=DIGITS)
        analyze(runtime)
        rng = random.Random(7)
        engine = runtime.database.engine

        def pk_select() -> None:
            with engine.connect() as conn:
                conn.execute(
                    text("SELECT * FROM users WHERE id = :id"), {"id": rng.choice(user_ids)}
                ).one()

        with api_client(runtime, raise_server_exceptions=True) as client:
            base, health, get = _measure(
                ctx,
                label,
                [
                    ("pk_select (raw SQL baseline)", pk_select),
                    ("GET /health (client + SELECT 1)", lambda: ok(client.get("/health"))),
                    (
                        "GET /users/{id}",
                        lambda: ok(client.get(f"/api/v1/users/{rng.choice(user_ids)}")),
                    ),
                ],
                samples,
            )
            created = iter(range(10**6))
            members = iter(extra)
            create, member = _measure(
                ctx,
                label,
                [
                    (
                        "POST /users",
                        lambda: ok(client.post("/api/v1/users", json=_new_user(next(created)))),
                    ),
                    (
                        "PUT /groups/{id}/users/{id}",
                        lambda: ok(
                            client.put(f"/api/v1/groups/{group_id}/users/{next(members)}"), 204
                        ),
                    ),
                ],
                samples // 2,
            )
            deep_page = count // PAGE
            cursor = _cursor_at(runtime, (deep_page - 1) * PAGE)
            first, deep, offset, keyset = _measure(
                ctx,
                label,
                [
                    (f"GET /users page 1 ({PAGE})", _lister(client, None)),
                    (f"GET /users page {deep_page} (after=)", _lister(client, cursor)),
                    (
                        f"raw SQL page {deep_page} by OFFSET",
                        _offset_page(runtime, (deep_page - 1) * PAGE),
                    ),
                    (f"raw SQL page {deep_page} by cursor", _keyset_page(runtime, cursor)),
                ],
                max(samples // 5, 10),
            )
        report.ratio(NAME, f"{label} GET user / pk_select", get / base, "API overhead per read")
        report.ratio(
            NAME,
            f"{label} GET user / GET health",
            get / health,
            "auth + lookup + rendering over the in-process client's own cost",
        )
        report.ratio(
            NAME, f"{label} POST user / pk_select", create / base, "a write with its event"
        )
        report.ratio(
            NAME, f"{label} PUT membership / pk_select", member / base, "write + event + outbox"
        )
        report.ratio(
            NAME,
            f"{label} list page {deep_page} / page 1",
            deep / first,
            "cursor pagination: ~1 means depth is free",
        )
        report.ratio(
            NAME,
            f"{label} raw OFFSET / raw cursor at page {deep_page}",
            offset / keyset,
            "what OFFSET paging would cost instead",
        )
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _new_user(index: int) -> dict[str, Any]:
    login = f"new{index:06d}@example.com"
    return {"profile": {"login": login, "email": login, "firstName": "New", "lastName": "User"}}


def _lister(client: TestClient, after: str | None) -> Callable[[], None]:
    params = {"limit": str(PAGE)} | ({"after": after} if after else {})

    def list_page() -> None:
        body = ok(client.get("/api/v1/users", params=params))
        if len(body) != PAGE:
            raise RuntimeError(f"expected a full page, got {len(body)} users")

    return list_page


def _offset_page(runtime: Runtime, offset: int) -> Callable[[], None]:
    sql = text("SELECT * FROM users WHERE status <> 'DEPROVISIONED' ORDER BY id LIMIT :n OFFSET :o")

    def page() -> None:
        with runtime.database.engine.connect() as conn:
            conn.execute(sql, {"n": PAGE + 1, "o": offset}).all()

    return page


def _keyset_page(runtime: Runtime, after: str) -> Callable[[], None]:
    sql = text(
        "SELECT * FROM users WHERE status <> 'DEPROVISIONED' AND id > :a ORDER BY id LIMIT :n"
    )

    def page() -> None:
        with runtime.database.engine.connect() as conn:
            conn.execute(sql, {"n": PAGE + 1, "a": after}).all()

    return page


def run(ctx: Context) -> None:
    """Every size of the mode, on SQLite then PostgreSQL."""
    for count in ctx.mode.directory_users:
        ctx.report.section(f"directory: {count:,} users, through the API in-process")
        _bench_one(ctx, "sqlite", ctx.databases.sqlite(), count)
        try:
            url = ctx.databases.postgres()
        except PostgresUnavailable as exc:
            ctx.report.note(f"PostgreSQL skipped: {exc}")
            continue
        _bench_one(ctx, "postgresql", url, count)
