"""Shared set-up for the fault tests: a real scim2-server behind the fault proxy, a directory
seeded with set-based inserts, and an app wired to the proxy."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import insert

from headwater import clock, ids
from headwater.db import outbox
from headwater.db import tables as t
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess


@contextmanager
def proxied_downstream(seed: int = 7) -> Iterator[tuple[ScimServerProcess, FaultProxyThread]]:
    with ScimServerProcess() as server, FaultProxyThread(server.base_url, seed=seed) as proxy:
        yield server, proxy


def seed_users(runtime: Runtime, count: int, prefix: str = "user") -> list[str]:
    """Insert ``count`` ACTIVE users in one statement; returns their ids in order."""
    now = clock.utcnow()
    rows = []
    for n in range(count):
        login = f"{prefix}{n:05d}@example.com"
        rows.append(
            {
                "id": ids.new_id("00u"),
                "status": "ACTIVE",
                "login": login,
                "login_lower": login,
                "email_lower": login,
                "profile": {
                    "login": login,
                    "email": login,
                    "firstName": prefix.title(),
                    "lastName": f"N{n}",
                },
                "created": now,
                "last_updated": now,
            }
        )
    with runtime.database.transaction() as session:
        session.execute(insert(t.User), rows)
    return [row["id"] for row in rows]


def seed_group(runtime: Runtime, name: str, members: list[str]) -> str:
    now = clock.utcnow()
    group_id = ids.new_id("00g")
    with runtime.database.transaction() as session:
        session.add(
            t.Group(
                id=group_id,
                type="OKTA_GROUP",
                name=name,
                name_lower=name.lower(),
                name_scope="okta",
                profile={},
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        if members:
            session.execute(
                insert(t.Membership),
                [{"group_id": group_id, "user_id": u, "created": now} for u in members],
            )
    return group_id


def seed_app(runtime: Runtime, base_url: str, **settings: Any) -> str:
    """An ACTIVE app with an ENABLED connection (no auth) to ``base_url``."""
    now = clock.utcnow()
    app_id = ids.new_id("0oa")
    with runtime.database.transaction() as session:
        session.add(
            t.App(
                id=app_id,
                name="scim2headwater",
                label="Faulty",
                status="ACTIVE",
                sign_on_mode="BOOKMARK",
                document={},
                provisioning=settings,
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        session.add(
            t.AppConnection(
                app_id=app_id,
                base_url=base_url,
                auth_scheme="NONE",
                secret_encrypted=None,
                status="ENABLED",
                created=now,
                last_updated=now,
            )
        )
    return app_id


def assign_group(runtime: Runtime, app_id: str, group_id: str) -> None:
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        session.add(
            t.AppGroupAssignment(
                app_id=app_id,
                group_id=group_id,
                priority=0,
                profile={},
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        outbox.enqueue_users_of_app_group(session, group_id, app_id)


def push_group(runtime: Runtime, app_id: str, group_id: str) -> str:
    now = clock.utcnow()
    mapping_id = ids.new_id("gPm")
    with runtime.database.transaction() as session:
        session.add(
            t.PushMapping(
                id=mapping_id,
                app_id=app_id,
                source_group_id=group_id,
                status="ACTIVE",
                full_push=True,
                skipped_count=0,
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        outbox.enqueue_keys(session, [(app_id, KeyKind.PUSH, mapping_id)])
    return mapping_id


def converge(runtime: Runtime, timeout: float = 120.0, horizon: float = 30.0) -> None:
    """Run a worker until nothing is due within ``horizon`` seconds (backoffs included)."""

    async def run() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=timeout, horizon=horizon)
        finally:
            await worker.reconciler.aclose()

    asyncio.run(run())


def downstream_state(base_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every user and group of the scim2-server (read directly, not through the proxy)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        users = _all(client, "/Users")
        groups = _all(client, "/Groups")
    return users, groups


def _all(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start = 1
    while True:
        body = client.get(path, params={"startIndex": start, "count": 500}).json()
        page = body.get("Resources", [])
        items.extend(page)
        start += len(page)
        if not page or start > body.get("totalResults", 0):
            return items


def creates_per_user_name(proxy: FaultProxyThread) -> Counter[str]:
    """How many POST /Users the downstream accepted, per userName."""
    created: Counter[str] = Counter()
    for entry in proxy.requests("POST", r"/Users$"):
        if entry.upstream_status == 201:
            created[entry.json()["userName"]] += 1
    return created
