"""Helpers for the Group Push engine tests: the whole stack through the HTTP API, a real
scim2-server downstream reached in-process, the worker drained, the downstream read back."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app

ORIGIN = "http://scim.test"
BASE = f"{ORIGIN}/v2"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps the ASGI transport and counts requests by (method, resource kind)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.counts: Counter[tuple[str, str]] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        parts = [p for p in request.url.path.split("/") if p and p != "v2"]
        kind = parts[0] + ("/{id}" if len(parts) > 1 else "") if parts else ""
        self.counts[(request.method, kind)] += 1
        return await self.inner.handle_async_request(request)


@dataclass
class Downstream:
    """A fresh scim2-server, plus a client that reads it directly (what really reached it)."""

    transport: CountingTransport
    http: httpx.AsyncClient
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "application/scim+json"}
    )

    async def users(self) -> list[dict[str, Any]]:
        response = await self.http.get("/Users", params={"count": 10000})
        response.raise_for_status()
        resources: list[dict[str, Any]] = response.json().get("Resources", [])
        return resources

    async def user_by_name(self, user_name: str) -> dict[str, Any] | None:
        matches = [u for u in await self.users() if u["userName"].lower() == user_name.lower()]
        assert len(matches) <= 1, f"duplicate accounts for {user_name}"
        return matches[0] if matches else None

    async def groups(self) -> list[dict[str, Any]]:
        response = await self.http.get("/Groups", params={"count": 10000})
        response.raise_for_status()
        resources: list[dict[str, Any]] = response.json().get("Resources", [])
        return resources

    async def group_by_name(self, name: str) -> dict[str, Any] | None:
        matches = [g for g in await self.groups() if g["displayName"] == name]
        assert len(matches) <= 1, f"duplicate groups named {name}"
        return matches[0] if matches else None

    async def member_names(self, name: str) -> set[str] | None:
        """userNames of the group's members; None when no such group exists downstream."""
        group = await self.group_by_name(name)
        if group is None:
            return None
        by_id = {u["id"]: u["userName"] for u in await self.users()}
        return {by_id.get(m["value"], m["value"]) for m in group.get("members") or []}

    async def create_user(self, user_name: str) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": user_name, "active": True}
        response = await self.http.post("/Users", json=body, headers=self.headers)
        response.raise_for_status()
        user_id: str = response.json()["id"]
        return user_id

    async def delete_user(self, user_id: str) -> None:
        (await self.http.delete(f"/Users/{user_id}")).raise_for_status()

    async def create_group(self, name: str) -> str:
        body = {"schemas": [GROUP_SCHEMA], "displayName": name}
        response = await self.http.post("/Groups", json=body, headers=self.headers)
        response.raise_for_status()
        group_id: str = response.json()["id"]
        return group_id

    async def delete_group(self, group_id: str) -> None:
        (await self.http.delete(f"/Groups/{group_id}")).raise_for_status()

    async def patch_members(
        self,
        group_id: str,
        *,
        add: list[str] = (),
        remove: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        operations: list[dict[str, Any]] = [
            {"op": "remove", "path": f'members[value eq "{member}"]'} for member in remove
        ]
        if add:
            value = [{"value": member} for member in add]
            operations.append({"op": "add", "path": "members", "value": value})
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        response = await self.http.patch(f"/Groups/{group_id}", json=body, headers=self.headers)
        response.raise_for_status()

    def membership_requests(self) -> int:
        return (
            self.transport.counts[("PATCH", "Groups/{id}")]
            + self.transport.counts[("PUT", "Groups/{id}")]
        )


@asynccontextmanager
async def downstream(runtime: Runtime) -> AsyncIterator[Downstream]:
    """Register a fresh in-process scim2-server as ``http://scim.test`` for this runtime."""
    app = in_process_app()
    transport = CountingTransport(httpx.ASGITransport(app=app))
    runtime.connectors.transports[ORIGIN] = transport
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield Downstream(transport, http)


async def drain(runtime: Runtime, timeout: float = 60.0, *, settled: bool = True) -> None:
    """Reconcile until nothing is due; with ``settled``, also insist nothing is left waiting
    (a key held back by a retry delay means a reconcile failed, which these tests never
    expect)."""
    worker = runtime.worker()
    try:
        await worker.drain(timeout=timeout)
    finally:
        await worker.reconciler.aclose()
    if settled:
        with runtime.database.read() as session:
            left = session.execute(select(t.ReconcileKey.kind, t.ReconcileKey.attempts)).all()
        assert not left, f"keys left after drain: {left}"


# --- The directory and apps, through the HTTP API ---------------------------------------------


def ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200,)), response.text
    return response.json() if response.content else None


def create_user(client: TestClient, login: str, first: str = "Test", last: str = "User") -> str:
    profile = {"login": login, "email": login, "firstName": first, "lastName": last}
    body = ok(client.post("/api/v1/users?activate=true", json={"profile": profile}))
    user_id: str = body["id"]
    return user_id


def create_group(client: TestClient, name: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
    group_id: str = ok(client.post("/api/v1/groups", json={"profile": {"name": name}}))["id"]
    for user_id in members:
        add_member(client, group_id, user_id)
    return group_id


def add_member(client: TestClient, group_id: str, user_id: str) -> None:
    ok(client.put(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)


def remove_member(client: TestClient, group_id: str, user_id: str) -> None:
    ok(client.delete(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)


def rename_group(client: TestClient, group_id: str, name: str) -> None:
    ok(client.put(f"/api/v1/groups/{group_id}", json={"profile": {"name": name}}))


def lifecycle(client: TestClient, user_id: str, action: str) -> None:
    ok(client.post(f"/api/v1/users/{user_id}/lifecycle/{action}"), 200, 204)


def create_scim_app(client: TestClient, label: str = "Downstream", **settings: Any) -> str:
    body = {
        "name": "scim",
        "label": label,
        "signOnMode": "BOOKMARK",
        "settings": {"app": {"url": "https://app.example.com"}},
    }
    app_id: str = ok(client.post("/api/v1/apps", json=body))["id"]
    connection = {"baseUrl": BASE, "profile": {"authScheme": "NONE"}}
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    if settings:
        ok(client.put(f"/api/v1/apps/{app_id}/provisioning/settings", json=settings))
    return app_id


def assign_group(client: TestClient, app_id: str, group_id: str, priority: int = 0) -> None:
    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group_id}", json={"priority": priority}))


def unassign_group(client: TestClient, app_id: str, group_id: str) -> None:
    ok(client.delete(f"/api/v1/apps/{app_id}/groups/{group_id}"), 204)


def assign_user(client: TestClient, app_id: str, user_id: str) -> None:
    ok(client.post(f"/api/v1/apps/{app_id}/users", json={"id": user_id, "scope": "USER"}))


def unassign_user(client: TestClient, app_id: str, user_id: str) -> None:
    ok(client.delete(f"/api/v1/apps/{app_id}/users/{user_id}"), 204)


def mappings_url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/group-push/mappings"


def push_group(client: TestClient, app_id: str, group_id: str, **extra: Any) -> dict[str, Any]:
    body = {"sourceGroupId": group_id, **extra}
    if "targetGroupId" not in body and "targetGroupName" not in body:
        name = ok(client.get(f"/api/v1/groups/{group_id}"))["profile"]["name"]
        body["targetGroupName"] = name
    mapping: dict[str, Any] = ok(client.post(mappings_url(app_id), json=body), 201)
    return mapping


def set_mapping_status(client: TestClient, app_id: str, mapping_id: str, status: str) -> None:
    ok(client.patch(f"{mappings_url(app_id)}/{mapping_id}", json={"status": status}))


def unlink(client: TestClient, app_id: str, mapping_id: str, *, delete_target: bool) -> None:
    set_mapping_status(client, app_id, mapping_id, "INACTIVE")
    flag = str(delete_target).lower()
    ok(client.delete(f"{mappings_url(app_id)}/{mapping_id}?deleteTargetGroup={flag}"), 204)


def get_mapping(client: TestClient, app_id: str, mapping_id: str) -> dict[str, Any]:
    mapping: dict[str, Any] = ok(client.get(f"{mappings_url(app_id)}/{mapping_id}"))
    return mapping


def reconcile(client: TestClient, app_id: str) -> None:
    ok(client.post(f"/api/v1/apps/{app_id}/reconcile"), 202)


def events_of(client: TestClient, event_type: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = ok(
        client.get("/api/v1/logs", params={"filter": f'eventType eq "{event_type}"', "limit": 1000})
    )
    return body


Check = Callable[[], Any]
