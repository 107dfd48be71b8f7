"""``engine``: what the engine itself costs per account, against a downstream that costs nothing.

The downstream is a canned-answer ASGI app in this process (no sockets, no parsing beyond the
path: every lookup finds nobody, every create answers the user sent, reads answer the users
created), so nearly all CPU spent is Headwater's: claiming keys, reading the snapshot,
planning, sending through httpx, recording. Figures: CPU per account (goal 0.5 ms), account
operations per second of CPU, SQL statements per account (goal 3) and downstream requests per
account, for a group of N users assigned at once, on SQLite and PostgreSQL; then a full
re-reconcile of the converged app: downstream reads per 100 accounts (goal 1) and writes
(goal 0).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy import event

from bench.common import (
    DIGITS,
    SECRET_KEY,
    Context,
    PostgresUnavailable,
    analyze,
    require_complete,
)
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

__all__ = ["CannedScim", "ServedSink", "run"]

NAME = "engine"
SINK = "http://sink.bench"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_EMPTY = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
).encode()
_CONFIG = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [],
    }
).encode()


_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


class CannedScim:
    """A SCIM service provider that answers from canned bytes and counts requests."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self._ids = itertools.count(1)
        #: What each created user answers to ``GET /Users/{id}`` (for re-reconciles).
        self.users: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        resource = path.split("/scim/v2/", 1)[-1]
        self.requests[
            f"{method} /{resource.split('/')[0]}{'/{id}' if '/' in resource else ''}"
        ] += 1
        status, payload = 200, _EMPTY
        if path.endswith("/ServiceProviderConfig"):
            payload = _CONFIG
        elif method == "POST":
            sent = json.loads(body)
            sent["id"] = f"u{next(self._ids)}"
            status, payload = 201, json.dumps(sent).encode()
            self.users[sent["id"]] = payload
        elif method == "GET" and resource.startswith("Users/"):
            found = self.users.get(resource.split("/", 1)[1])
            status, payload = (200, found) if found is not None else (404, b"")
        elif method == "GET" and resource == "Users" and b"filter" not in scope["query_string"]:
            payload = self._page(scope["query_string"].decode())
        elif method in ("PUT", "PATCH"):
            status, payload = 200, body
        headers = [(b"content-type", b"application/scim+json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _page(self, query: str) -> bytes:
        """One page of every created user (``startIndex``/``count``), for listings."""
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        start, count = int(params.get("startIndex") or 1), int(params.get("count") or 100)
        page = list(self.users.values())[start - 1 : start - 1 + count]
        return json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": len(self.users),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [json.loads(user) for user in page],
            }
        ).encode()


class ServedSink:
    """A :class:`CannedScim` served by uvicorn on a loopback port, in a thread (for worker
    subprocesses, which need a socket)."""

    def __init__(self) -> None:
        import uvicorn

        from headwater.testing.scimserver import free_port

        self.app = CannedScim()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/scim/v2"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedSink:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base_url + "/ServiceProviderConfig", timeout=1)
                self.app.requests.clear()
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the sink did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


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


def measure(ctx: Context, url: str, count: int, lookup_batch_size: int = 0) -> dict[str, float]:
    import httpx

    runtime: Runtime = make_runtime(
        url, ctx.data_dir(f"engine-{ctx.databases._count}"), secret_key=SECRET_KEY
    )
    try:
        sink = CannedScim()
        runtime.connectors.transports[SINK] = httpx.ASGITransport(app=sink)
        group = create_group(runtime, "Everyone")
        create_users(runtime, count, digits=DIGITS, group_ids=[group])
        app_id = create_scim_app(
            runtime, f"{SINK}/scim/v2", "Sink", lookup_batch_size=lookup_batch_size
        )
        analyze(runtime)
        sink.requests.clear()
        assign_group(runtime, app_id, group)
        with Statements(runtime.database) as statements:
            cpu, wall = time.process_time(), time.perf_counter()
            converge(runtime, timeout=3600, settled=False)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        require_complete(
            f"{NAME}[{runtime.database.dialect}]",
            sink.requests["POST /Users"],
            count,
            "accounts created",
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
    import asyncio

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


def run(ctx: Context) -> None:
    report, count = ctx.report, ctx.mode.provision_users
    report.section(f"engine: {count:,} accounts into a zero-cost SCIM sink (CPU of this process)")
    for db in ("sqlite", "postgresql"):
        for batch in (0, LOOKUP_BATCH):
            try:
                url = ctx.databases.sqlite() if db == "sqlite" else ctx.databases.postgres()
            except PostgresUnavailable as exc:
                report.note(f"PostgreSQL skipped: {exc}")
                break
            _report(ctx, db, batch, measure(ctx, url, count, lookup_batch_size=batch))
    bare = floor(count)
    report.row(
        NAME,
        "floor: bare httpx, look-up + create per account, 8 lanes",
        f"{bare:.3f} ms CPU per account (the HTTP client's share of the figures above)",
        floor_cpu_ms_per_account=bare,
    )


def _report(ctx: Context, db: str, batch: int, figures: dict[str, float]) -> None:
    report = ctx.report
    how = f"{db}, look-ups in batches of {batch}" if batch else f"{db}, one look-up per account"
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
