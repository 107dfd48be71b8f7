"""Group Push end to end: Headwater served on a loopback socket with its worker running, driven
over HTTP with an API token, provisioning into a scim2-server subprocess; nothing is drained by
hand, the test waits for the downstream to show the outcome. On SQLite and PostgreSQL.

The seed recipe: Accounting (Taylor, Alex, Sam) assigned, AppPushGroup (the same people)
pushed; then Taylor leaves Accounting first, the order the seed warns leaves an orphaned
membership, and is deactivated. (``test_group_push_engine.py`` covers the cases in process.)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from headwater.runtime import Runtime
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import LiveServer, ScimReader, api_token, ok, wait_for

pytestmark = pytest.mark.e2e

PEOPLE = ("taylor.smith@example.com", "alex.jones@example.com", "sam.lee@example.com")
TAYLOR, ALEX, SAM = PEOPLE


@pytest.fixture
def served(runtime: Runtime) -> Iterator[httpx.Client]:
    """An API client over HTTP to Headwater serving with its worker (polling quickly)."""
    runtime.settings.idle_poll_seconds = 0.2
    runtime.settings.retry_base_seconds = 0.2
    token = api_token(runtime)
    with LiveServer(runtime, start_worker=True) as server:
        headers = {"Authorization": f"SSWS {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            yield client


@pytest.fixture
def downstream() -> Iterator[ScimServerProcess]:
    with ScimServerProcess(bearer_token=secrets.token_urlsafe(16)) as server:
        yield server


def _user(client: httpx.Client, login: str) -> str:
    first, last = (part.title() for part in login.partition("@")[0].split("."))
    profile = {"login": login, "email": login, "firstName": first, "lastName": last}
    user_id: str = ok(client.post("/api/v1/users?activate=true", json={"profile": profile}))["id"]
    return user_id


def _group(client: httpx.Client, name: str, members: list[str]) -> str:
    group_id: str = ok(client.post("/api/v1/groups", json={"profile": {"name": name}}))["id"]
    for user_id in members:
        ok(client.put(f"/api/v1/groups/{group_id}/users/{user_id}"), 204)
    return group_id


def _state(scim: ScimReader) -> tuple[dict[str, dict[str, Any]], set[str] | None]:
    return scim.by_user_name(), scim.members("AppPushGroup")


def test_seed_recipe_end_to_end(served: httpx.Client, downstream: ScimServerProcess) -> None:
    client = served
    token = downstream.bearer_token
    assert token is not None
    scim = ScimReader(downstream.base_url, token=token)
    people = [_user(client, login) for login in PEOPLE]
    accounting = _group(client, "Accounting", people)
    pushed = _group(client, "AppPushGroup", people)
    app = {"name": "scim2headwater", "label": "Demo SCIM App"}
    app_id = ok(client.post("/api/v1/apps?activate=true", json=app))["id"]
    connection = {
        "baseUrl": downstream.base_url,
        "profile": {"authScheme": "TOKEN", "token": token},
    }
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    ok(client.put(f"/api/v1/apps/{app_id}/groups/{accounting}", json={"priority": 0}))
    mapping = {"sourceGroupId": pushed, "targetGroupName": "AppPushGroup"}
    mapping_id = ok(client.post(f"/api/v1/apps/{app_id}/group-push/mappings", json=mapping), 201)[
        "id"
    ]

    def pushed_to_all() -> bool:
        users, members = _state(scim)
        everyone_active = set(users) == set(PEOPLE) and all(u["active"] for u in users.values())
        return everyone_active and members == set(PEOPLE)

    wait_for(pushed_to_all, "three active accounts and a full AppPushGroup downstream")
    shown = ok(client.get(f"/api/v1/apps/{app_id}/group-push/mappings/{mapping_id}"))
    assert shown["status"] == "ACTIVE" and shown["lastPush"]

    # The wrong order: out of the assignment group first, push group membership untouched.
    ok(client.delete(f"/api/v1/groups/{accounting}/users/{people[0]}"), 204)

    def taylor_gone() -> bool:
        users, members = _state(scim)
        return not users[TAYLOR]["active"] and members == {ALEX, SAM}

    wait_for(taylor_gone, "Taylor deactivated and out of AppPushGroup")
    ok(client.post(f"/api/v1/users/{people[0]}/lifecycle/deactivate"))
    app_user = ok(client.get(f"/api/v1/apps/{app_id}/users/{people[1]}"))
    assert app_user["syncState"] == "SYNCHRONIZED"

    def still_settled() -> bool:
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "headwater_pending_keys" in metrics.text
        return f'headwater_pending_keys{{app="{app_id}"' not in metrics.text

    wait_for(still_settled, "the worker to finish Taylor's deactivation")
    users, members = _state(scim)
    assert members == {ALEX, SAM}
    assert not users[TAYLOR]["active"] and users[ALEX]["active"] and users[SAM]["active"]
    assert len(users) == 3  # no duplicate accounts
