"""Provisioning against a real scim2-server: the API drives the directory, the worker converges,
and the downstream is read back over SCIM. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.db import outbox
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app

SCIM = "http://scim.test"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class Downstream:
    """The in-process scim2-server and every request Headwater sent it."""

    def __init__(self, runtime: Runtime) -> None:
        self.app = in_process_app()
        self.transport = httpx.ASGITransport(app=self.app)
        runtime.connectors.transports[SCIM] = self.transport
        self.requests: list[tuple[str, str]] = []
        runtime.connectors.hooks.append(
            lambda _app, method, path, _status, _s: self.requests.append((method, path))
        )

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] in WRITES]

    def get(self, path: str) -> Any:
        async def fetch() -> Any:
            async with httpx.AsyncClient(transport=self.transport, base_url=SCIM) as client:
                response = await client.get(path)
                return response.json()

        return asyncio.run(fetch())

    def users(self) -> dict[str, dict[str, Any]]:
        body = self.get("/Users?count=1000")
        return {u["userName"]: u for u in body.get("Resources", [])}

    def create_user(self, user_name: str) -> str:
        async def post() -> str:
            async with httpx.AsyncClient(transport=self.transport, base_url=SCIM) as client:
                response = await client.post(
                    "/Users",
                    json={
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": user_name,
                        "active": True,
                    },
                )
                assert response.status_code == 201, response.text
                return str(response.json()["id"])

        return asyncio.run(post())

    def delete_user(self, external_id: str) -> None:
        async def delete() -> None:
            async with httpx.AsyncClient(transport=self.transport, base_url=SCIM) as client:
                assert (await client.delete(f"/Users/{external_id}")).status_code == 204

        asyncio.run(delete())


@pytest.fixture
def downstream(runtime: Runtime) -> Downstream:
    return Downstream(runtime)


def converge(runtime: Runtime) -> None:
    async def run() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=60)
        finally:
            await worker.reconciler.aclose()

    asyncio.run(run())


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def make_user(client: TestClient, first: str, last: str, **profile: Any) -> str:
    login = f"{first.lower()}.{last.lower()}@example.com"
    body = {"profile": {"login": login, "email": login, "firstName": first, "lastName": last}}
    body["profile"].update(profile)
    activate = profile.pop("_activate", True) if "_activate" in profile else True
    response = client.post(f"/api/v1/users?activate={str(activate).lower()}", json=body)
    return str(ok(response)["id"])


def make_group(client: TestClient, name: str, *members: str) -> str:
    group_id = str(ok(client.post("/api/v1/groups", json={"profile": {"name": name}}))["id"])
    for user_id in members:
        ok(client.put(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)
    return group_id


def make_app(client: TestClient, label: str = "Downstream", **settings: Any) -> str:
    body = {
        "name": "scim2headwater",
        "label": label,
        "signOnMode": "BOOKMARK",
        "settings": {"app": {"url": SCIM}},
    }
    app_id = str(ok(client.post("/api/v1/apps?activate=true", json=body))["id"])
    connection = {"baseUrl": SCIM, "profile": {"authScheme": "NONE"}}
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    if settings:
        current = ok(client.get(f"/api/v1/apps/{app_id}/provisioning/settings"))
        current.update(settings)
        ok(client.put(f"/api/v1/apps/{app_id}/provisioning/settings", json=current))
    return app_id


def assign(
    client: TestClient, app_id: str, group_id: str, priority: int = 0, **profile: Any
) -> None:
    body = {"priority": priority, "profile": profile}
    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group_id}", json=body))


@pytest.fixture
def world(client: TestClient, runtime: Runtime, downstream: Downstream) -> Iterator[dict[str, str]]:
    taylor = make_user(client, "Taylor", "Smith", title="Accountant", department="Finance")
    alex = make_user(client, "Alex", "Johnson")
    staged = make_user(client, "Sam", "Staged", _activate=False)
    accounting = make_group(client, "Accounting", taylor, alex, staged)
    app_id = make_app(client)
    converge(runtime)
    downstream.requests.clear()
    yield {
        "taylor": taylor,
        "alex": alex,
        "staged": staged,
        "accounting": accounting,
        "app": app_id,
    }


def test_assigning_a_group_creates_exactly_its_active_members(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    """Members get one account each with the mapped attributes; STAGED members get nothing;
    a second reconcile sends no write."""
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    users = downstream.users()
    assert set(users) == {"taylor.smith@example.com", "alex.johnson@example.com"}
    taylor = users["taylor.smith@example.com"]
    assert taylor["active"] is True
    assert (taylor["name"]["givenName"], taylor["name"]["familyName"]) == ("Taylor", "Smith")
    assert taylor["emails"][0]["value"] == "taylor.smith@example.com"
    assert taylor["title"] == "Accountant"
    assert taylor["externalId"] == world["taylor"]
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['taylor']}"))
    assert app_user["externalId"] == taylor["id"]
    assert app_user["scope"] == "GROUP"
    assert app_user["syncState"] == "SYNCHRONIZED"

    downstream.requests.clear()
    with runtime.database.transaction() as session:
        outbox.enqueue_app(session, world["app"])
    converge(runtime)
    assert downstream.writes() == []


def test_existing_downstream_user_is_linked_not_duplicated(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    existing = downstream.create_user("taylor.smith@example.com")
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    users = downstream.users()
    assert len([u for u in users if u.startswith("taylor")]) == 1
    assert users["taylor.smith@example.com"]["id"] == existing
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['taylor']}"))
    assert app_user["externalId"] == existing
    assert ("POST", "/Users") not in [(m, p) for m, p in downstream.writes() if "taylor" in p]


def test_profile_change_sends_one_update(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    downstream.requests.clear()
    ok(client.post(f"/api/v1/users/{world['taylor']}", json={"profile": {"title": "Controller"}}))
    converge(runtime)
    assert [m for m, _ in downstream.writes()] == ["PUT"]
    assert downstream.users()["taylor.smith@example.com"]["title"] == "Controller"


def test_patch_update_method_is_honoured(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    app_id = make_app(client, "Patchy", updateMethod="PATCH")
    assign(client, app_id, world["accounting"])
    converge(runtime)
    downstream.requests.clear()
    ok(client.post(f"/api/v1/users/{world['alex']}", json={"profile": {"title": "Boss"}}))
    converge(runtime)
    assert [m for m, _ in downstream.writes()] == ["PATCH"]


def test_leaving_the_last_granting_group_deactivates_and_reassignment_reactivates_same_id(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    first_id = downstream.users()["taylor.smith@example.com"]["id"]
    ok(client.delete(f"/api/v1/groups/{world['accounting']}/users/{world['taylor']}"), 204)
    converge(runtime)
    assert downstream.users()["taylor.smith@example.com"]["active"] is False
    ok(client.put(f"/api/v1/groups/{world['accounting']}/users/{world['taylor']}"), 204)
    converge(runtime)
    taylor = downstream.users()["taylor.smith@example.com"]
    assert taylor["active"] is True and taylor["id"] == first_id
    assert len(downstream.users()) == 2


def test_user_deactivation_deactivates_everywhere_and_reactivation_restores(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    second = make_app(client, "Second")
    assign(client, world["app"], world["accounting"])
    ok(client.post(f"/api/v1/apps/{second}/users", json={"id": world["taylor"], "scope": "USER"}))
    converge(runtime)
    before = downstream.users()["taylor.smith@example.com"]["id"]
    ok(client.post(f"/api/v1/users/{world['taylor']}/lifecycle/deactivate"))
    converge(runtime)
    # Both apps share one scim2-server here: one account per app means two accounts with the
    # same userName are impossible, so the second app linked the first one's account.
    assert downstream.users()["taylor.smith@example.com"]["active"] is False
    ok(client.post(f"/api/v1/users/{world['taylor']}/lifecycle/activate"))
    converge(runtime)
    taylor = downstream.users()["taylor.smith@example.com"]
    assert taylor["active"] is True and taylor["id"] == before
    # Okta removes direct assignments on deactivation; the group grant comes back.
    app_users = ok(client.get(f"/api/v1/apps/{second}/users"))
    assert world["taylor"] not in [u["id"] for u in app_users]


def test_direct_and_group_assignment_scope_and_removal_of_direct(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    app_id = world["app"]
    assign(client, app_id, world["accounting"])
    body = {"id": world["taylor"], "scope": "USER", "profile": {"title": "Direct title"}}
    ok(client.post(f"/api/v1/apps/{app_id}/users", json=body))
    converge(runtime)
    app_user = ok(client.get(f"/api/v1/apps/{app_id}/users/{world['taylor']}"))
    assert app_user["scope"] == "USER"
    assert downstream.users()["taylor.smith@example.com"]["title"] == "Direct title"
    ok(client.delete(f"/api/v1/apps/{app_id}/users/{world['taylor']}"), 204)
    converge(runtime)
    taylor = downstream.users()["taylor.smith@example.com"]
    assert taylor["active"] is True  # still granted by Accounting
    assert ok(client.get(f"/api/v1/apps/{app_id}/users/{world['taylor']}"))["scope"] == "GROUP"


def test_removing_the_only_direct_assignment_deactivates(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    app_id = world["app"]
    ok(client.post(f"/api/v1/apps/{app_id}/users", json={"id": world["alex"], "scope": "USER"}))
    converge(runtime)
    assert downstream.users()["alex.johnson@example.com"]["active"] is True
    ok(client.delete(f"/api/v1/apps/{app_id}/users/{world['alex']}"), 204)
    converge(runtime)
    assert downstream.users()["alex.johnson@example.com"]["active"] is False


def test_profile_comes_from_the_highest_priority_group(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    app_id = world["app"]
    auditors = make_group(client, "Auditors", world["taylor"])
    assign(client, app_id, world["accounting"], priority=5, title="From Accounting")
    assign(client, app_id, auditors, priority=1, title="From Auditors")
    converge(runtime)
    assert downstream.users()["taylor.smith@example.com"]["title"] == "From Auditors"
    # Leaving one of two granting groups keeps the account, with the other group's profile.
    ok(client.delete(f"/api/v1/groups/{auditors}/users/{world['taylor']}"), 204)
    converge(runtime)
    taylor = downstream.users()["taylor.smith@example.com"]
    assert taylor["active"] is True and taylor["title"] == "From Accounting"


def test_account_deleted_downstream_is_recreated_on_next_update(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    """A 404 on the update of a still-assigned user creates the account again."""
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    downstream.delete_user(downstream.users()["alex.johnson@example.com"]["id"])
    ok(client.post(f"/api/v1/users/{world['alex']}", json={"profile": {"title": "Back"}}))
    converge(runtime)
    alex = downstream.users()["alex.johnson@example.com"]
    assert alex["active"] is True and alex["title"] == "Back"
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['alex']}"))
    assert app_user["externalId"] == alex["id"]


def test_provisioning_events_are_logged(
    client: TestClient, runtime: Runtime, downstream: Downstream, world: dict[str, str]
) -> None:
    assign(client, world["app"], world["accounting"])
    converge(runtime)
    ok(client.delete(f"/api/v1/groups/{world['accounting']}/users/{world['taylor']}"), 204)
    converge(runtime)
    events = ok(client.get("/api/v1/logs", params={"limit": 1000}))
    types = {e["eventType"] for e in events}
    assert "application.provision.user.push" in types
    assert "application.provision.user.deactivate" in types
