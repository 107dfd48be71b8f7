"""The console's "what will this do" comes from a what-if run of the planner."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.engine import preview, snapshot
from headwater.engine.snapshot import Without
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app

BASE = "http://impact.test"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_impact_of_unassigning_a_group(client: TestClient, runtime: Runtime) -> None:
    runtime.connectors.transports[BASE] = httpx.ASGITransport(app=in_process_app())
    people = {}
    for name, activate in (("ana", True), ("bo", True), ("cy", True), ("dee", False)):
        login = f"{name}@example.com"
        body = {"profile": {"login": login, "email": login, "firstName": name, "lastName": "X"}}
        people[name] = ok(client.post(f"/api/v1/users?activate={activate}".lower(), json=body))[
            "id"
        ]
    team = ok(client.post("/api/v1/groups", json={"profile": {"name": "Team"}}))["id"]
    for user_id in people.values():
        ok(client.put(f"/api/v1/groups/{team}/users/{user_id}"), 204)
    app_body = {"name": "scim", "label": "Impact", "signOnMode": "BOOKMARK"}
    app_body["settings"] = {"app": {"url": BASE}}
    app_id = ok(client.post("/api/v1/apps?activate=true", json=app_body))["id"]
    connection = {"baseUrl": BASE, "profile": {"authScheme": "NONE"}}
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    ok(client.put(f"/api/v1/apps/{app_id}/groups/{team}", json={"priority": 0}))
    ok(client.post(f"/api/v1/apps/{app_id}/users", json={"id": people["bo"]}))  # keeps access
    mapping = {"sourceGroupId": team, "targetGroupName": "Team"}
    ok(client.post(f"/api/v1/apps/{app_id}/group-push/mappings", json=mapping), 201)

    async def drain() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=60)
        finally:
            await worker.reconciler.aclose()

    asyncio.run(drain())
    with runtime.database.read() as session:
        app = snapshot.load_app(session, app_id)
        assert app is not None
        members = select(t.Membership.user_id).where(t.Membership.group_id == team)
        found = preview.removal_impact(session, app, members, Without(group_id=team), sample=10)
    # ana and cy lose access and their accounts (removed from the pushed group first); bo keeps
    # a direct assignment; dee (staged) loses access but holds no account.
    assert found.people == 3
    assert found.accounts == 2
    assert found.memberships == 2
    assert found.sample == ("ana@example.com", "cy@example.com", "dee@example.com")
