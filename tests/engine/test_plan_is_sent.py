"""The plan is a value: ``GET /apps/{id}/plan`` shows exactly the operations the next reconcile
sends for the same state, mass-change holds and intents included."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.domain import operations as ops
from headwater.engine import reconciler
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def user(client: TestClient, name: str, **profile: Any) -> str:
    login = f"{name}@example.com"
    body = {"profile": {"login": login, "email": login, "firstName": name, "lastName": "Test"}}
    body["profile"].update(profile)
    return str(ok(client.post("/api/v1/users?activate=true", json=body))["id"])


def group(client: TestClient, name: str, *members: str) -> str:
    group_id = str(ok(client.post("/api/v1/groups", json={"profile": {"name": name}}))["id"])
    for member in members:
        ok(client.put(f"/api/v1/groups/{group_id}/users/{member}"), 204)
    return group_id


def scim_app(client: TestClient, label: str, **settings: Any) -> str:
    body = {"name": "scim2headwater", "label": label, "signOnMode": "BOOKMARK"}
    body["settings"] = {"app": {"url": f"http://{label.lower()}.test"}}
    app_id = str(ok(client.post("/api/v1/apps?activate=true", json=body))["id"])
    connection = {"baseUrl": f"http://{label.lower()}.test", "profile": {"authScheme": "NONE"}}
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    if settings:
        ok(client.put(f"/api/v1/apps/{app_id}/provisioning/settings", json=settings))
    return app_id


def converge(runtime: Runtime) -> None:
    async def run() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=60)
        finally:
            await worker.reconciler.aclose()

    asyncio.run(run())


def one_pass(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[ops.Operation]:
    """Every operation one reconcile pass over the queued keys sends, in one batch."""
    sent: list[ops.Operation] = []
    real = reconciler.execute

    async def spy(operation: ops.Operation, *args: Any) -> Any:
        sent.append(operation)
        return await real(operation, *args)

    monkeypatch.setattr(reconciler, "execute", spy)

    async def run() -> int:
        worker = runtime.worker()
        try:
            return await worker.step()
        finally:
            await worker.reconciler.aclose()

    assert asyncio.run(run()) < runtime.settings.worker_batch_size, "one batch must hold all"
    monkeypatch.setattr(reconciler, "execute", real)
    return sent


def canonical(described: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in described)


def test_the_plan_shown_is_the_plan_sent(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for label in ("Payroll", "Wiki"):
        runtime.connectors.transports[f"http://{label.lower()}.test"] = httpx.ASGITransport(
            app=in_process_app()
        )
    people = [user(client, f"person{n}", title="Clerk") for n in range(6)]
    staff = group(client, "Staff", *people[:5])
    pushed = group(client, "Pushed", people[0], people[1])
    extra = group(client, "Extra")
    payroll = scim_app(client, "Payroll")
    wiki = scim_app(client, "Wiki", massChangeThreshold=0.2, massChangeMinimum=2)
    for app_id in (payroll, wiki):
        ok(client.put(f"/api/v1/apps/{app_id}/groups/{staff}", json={"priority": 0}))
    ok(client.put(f"/api/v1/apps/{wiki}/groups/{extra}", json={"priority": 1}))
    mapping = {"sourceGroupId": pushed, "targetGroupName": "Pushed"}
    ok(client.post(f"/api/v1/apps/{payroll}/group-push/mappings", json=mapping), 201)
    converge(runtime)

    # A mixed change: a profile update, a new member, a leaver who is pushed, a membership
    # added and one removed, a renamed pushed group; and in the guarded app, an unassignment
    # that takes every account (held) beside one new account.
    ok(client.post(f"/api/v1/users/{people[4]}", json={"profile": {"title": "Manager"}}))
    ok(client.put(f"/api/v1/groups/{staff}/users/{people[5]}"), 204)
    ok(client.put(f"/api/v1/groups/{extra}/users/{people[5]}"), 204)
    ok(client.delete(f"/api/v1/groups/{staff}/users/{people[1]}"), 204)
    ok(client.put(f"/api/v1/groups/{pushed}/users/{people[2]}"), 204)
    ok(client.delete(f"/api/v1/groups/{pushed}/users/{people[0]}"), 204)
    ok(client.put(f"/api/v1/groups/{pushed}", json={"profile": {"name": "Pushed Staff"}}))
    ok(client.delete(f"/api/v1/apps/{wiki}/groups/{staff}"), 204)

    shown = [*ok(client.get(f"/api/v1/apps/{payroll}/plan"))["operations"]]
    shown += ok(client.get(f"/api/v1/apps/{wiki}/plan"))["operations"]
    kinds = {item["op"] for item in shown}
    assert {
        "UPDATE_ACCOUNT",
        "CREATE_ACCOUNT",
        "DEACTIVATE_ACCOUNT",
        "ADD_MEMBERS",
        "REMOVE_MEMBERS",
        "RENAME_GROUP",
    } <= kinds, shown
    wiki_ops = ok(client.get(f"/api/v1/apps/{wiki}/plan"))["operations"]
    assert [item["op"] for item in wiki_ops] == ["CREATE_ACCOUNT"], "the guard's holds show"

    sent = one_pass(runtime, monkeypatch)
    assert canonical([ops.describe(op) for op in sent]) == canonical(shown)
    held = ok(client.get(f"/api/v1/apps/{wiki}/held-operations"))
    assert len(held) == 5
