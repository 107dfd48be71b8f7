"""Importing what an app already holds, end to end against a real scim2-server.

An app pre-filled with 1,000 accounts (800 matching a directory user by email, 150 matching
nobody, 50 in conflict) gives exactly those counts; confirming links the 800 without a single
downstream create; deactivating the 150 unmanaged ones goes through the mass-change guard,
and runs once approved.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    converge,
    create_group,
    create_scim_app,
    create_user,
    create_users,
    event_types,
    links,
    numbered_profile,
    ok,
    run_async,
    scim_user,
    update_settings,
)

MATCHING, UNMATCHED, SHARED, DOUBLED = 800, 150, 30, 10


def _fill(downstream: InProcessScim, accounts: list[dict[str, Any]]) -> None:
    """Create ``accounts`` in the server directly (as the app held them before Headwater)."""

    async def create_all() -> None:
        transport = httpx.ASGITransport(app=downstream.app)
        async with httpx.AsyncClient(transport=transport, headers=downstream.scim.headers) as c:
            limit = asyncio.Semaphore(16)

            async def one(body: dict[str, Any]) -> None:
                async with limit:
                    response = await c.post(f"{downstream.base_url}/Users", json=body)
                    assert response.status_code == 201, response.text

            await asyncio.gather(*(one(body) for body in accounts))

    run_async(create_all)


def _account(user_name: str, email: str) -> dict[str, Any]:
    return scim_user(user_name, active=True, emails=[{"value": email, "primary": True}])


def _seed(runtime: Runtime, downstream: InProcessScim) -> None:
    """800 users matched by email; 30 accounts whose email two users share (one account for
    two users); 10 users each matched by two accounts (two accounts for one user); 150
    accounts nobody owns. Account userNames match no login, so only email decides."""
    create_users(runtime, MATCHING, prefix="person")
    accounts = [
        _account(f"acct-{i:04d}", numbered_profile("person", i)["email"]) for i in range(MATCHING)
    ]
    for j in range(SHARED):
        for side in "ab":
            create_user(runtime, f"{side}{j}@example.com", email=f"shared{j}@corp.example")
        accounts.append(_account(f"shared-{j}", f"shared{j}@corp.example"))
    for k in range(DOUBLED):
        create_user(runtime, f"doubled{k}@example.com", email=f"doubled{k}@corp.example")
        accounts += [_account(f"doubled-{k}-{n}", f"doubled{k}@corp.example") for n in range(2)]
    accounts += [
        _account(f"stray-{i:03d}", f"stray{i}@elsewhere.example") for i in range(UNMATCHED)
    ]
    _fill(downstream, accounts)
    assert len(accounts) == 1000


def _import(client: TestClient, app_id: str) -> dict[str, Any]:
    started: dict[str, Any] = ok(client.post(f"/api/v1/apps/{app_id}/imports"), 202)
    assert started["status"] == "QUEUED"
    return started


def _all(client: TestClient, path: str) -> list[dict[str, Any]]:
    """Every item of a paged list, following its ``next`` links."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    while url:
        response = client.get(url)
        items += ok(response)
        url = links(response).get("next")
    return items


@pytest.mark.slow
def test_import_matches_confirms_without_creates_and_guards_deactivation(
    runtime: Runtime, downstream: InProcessScim, client: TestClient
) -> None:
    _seed(runtime, downstream)
    app_id = create_scim_app(runtime, downstream.base_url, "Legacy CRM")
    downstream.transport.clear()

    started = _import(client, app_id)
    converge(runtime)
    found = ok(client.get(f"/api/v1/apps/{app_id}/imports/{started['id']}"))
    assert found["status"] == "COMPLETED"
    assert found["progress"]["accountsRead"] == 1000
    assert found["progress"]["accountsTotal"] == 1000
    assert found["results"] == {
        "matched": MATCHING,
        "unmatched": UNMATCHED,
        "conflicts": SHARED + 2 * DOUBLED,
        "alreadyLinked": 0,
        "confirmed": 0,
    }
    # Paged within the app's filter.maxResults, and nothing but reads.
    reads = downstream.transport.requests("GET", resource="Users")
    assert len(reads) >= 10
    assert all("count=100" in sent.query for sent in reads)
    assert not downstream.transport.writes()

    conflicts = _all(
        client, f"/api/v1/apps/{app_id}/imports/{started['id']}/accounts?outcome=CONFLICT"
    )
    reasons = {item["reason"] for item in conflicts}
    assert reasons == {"email matches 2 users", "2 accounts match the same user"}
    assert {
        len(item["candidates"]) for item in conflicts if item["userName"].startswith("shared")
    } == {2}

    unmanaged = _all(client, f"/api/v1/apps/{app_id}/unmanagedAccounts?limit=40")
    assert len(unmanaged) == UNMATCHED
    assert {item["state"] for item in unmanaged} == {"UNMANAGED"}
    assert all(item["lastSeen"] for item in unmanaged)

    # Confirm: 800 links, no account created (not one POST /Users).
    downstream.transport.clear()
    confirmed = ok(client.post(f"/api/v1/apps/{app_id}/imports/{started['id']}/confirm"), 202)
    assert confirmed == {"requested": MATCHING}
    converge(runtime)
    found = ok(client.get(f"/api/v1/apps/{app_id}/imports/{started['id']}"))
    assert found["status"] == "CONFIRMED"
    assert found["results"]["confirmed"] == MATCHING
    assert downstream.transport.count("POST", resource="Users") == 0
    with runtime.database.read() as session:
        linked = session.execute(
            select(func.count()).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.state == "ACTIVE"
            )
        ).scalar_one()
    assert linked == MATCHING
    assert "application.provision.user.import" in event_types(runtime, "application.provision")
    # The accounts keep their userNames (the engine updates, never renames or recreates).
    assert downstream.scim.user("acct-0007") is not None

    # Deactivating the 150 unmanaged accounts: 150 of 950 active is over a 10% threshold.
    update_settings(runtime, app_id, mass_change_threshold=0.1)
    downstream.transport.clear()
    requested = ok(client.post(f"/api/v1/apps/{app_id}/unmanagedAccounts/deactivate"), 202)
    assert requested == {"requested": UNMATCHED}
    converge(runtime)
    held = _all(client, f"/api/v1/apps/{app_id}/unmanagedAccounts?state=DEACTIVATING")
    assert len(held) == UNMATCHED and all(item["held"] for item in held)
    assert not downstream.transport.writes()
    assert "app.headwater.mass_change.held" in event_types(runtime, "app.headwater")
    planned = ok(client.get(f"/api/v1/apps/{app_id}/plan"))["unmanaged"]
    assert len(planned) == UNMATCHED
    assert {(item["op"], item["held"]) for item in planned} == {("DEACTIVATE_ACCOUNT", True)}

    decided = ok(client.post(f"/api/v1/apps/{app_id}/unmanagedAccounts/approve"))
    assert decided == {"decided": UNMATCHED}
    converge(runtime)
    done = _all(client, f"/api/v1/apps/{app_id}/unmanagedAccounts?state=DEACTIVATED")
    assert len(done) == UNMATCHED
    assert downstream.transport.count("POST", resource="Users") == 0
    stray = downstream.scim.user("stray-007")
    assert stray is not None and stray["active"] is False
    kept = downstream.scim.user("acct-0007")
    assert kept is not None and kept["active"] is True


def test_auto_confirm_links_exact_matches_at_once(
    runtime: Runtime, downstream: InProcessScim, client: TestClient
) -> None:
    users = create_users(runtime, 5, prefix="auto")
    _fill(
        downstream,
        [_account(numbered_profile("auto", i)["login"], f"x{i}@x.example") for i in range(5)]
        + [_account("nobody", "nobody@x.example")],
    )
    app_id = create_scim_app(runtime, downstream.base_url, "Auto", import_auto_confirm=True)
    downstream.transport.clear()
    started = _import(client, app_id)
    converge(runtime)
    found = ok(client.get(f"/api/v1/apps/{app_id}/imports/{started['id']}"))
    assert found["status"] == "CONFIRMED"
    assert found["results"]["matched"] == 5 and found["results"]["confirmed"] == 5
    assert downstream.transport.count("POST", resource="Users") == 0
    with runtime.database.read() as session:
        linked = set(
            session.execute(
                select(t.AppUserLink.user_id).where(t.AppUserLink.app_id == app_id)
            ).scalars()
        )
    assert linked == set(users)
    # A second import reads them as already linked.
    again = _import(client, app_id)
    converge(runtime)
    found = ok(client.get(f"/api/v1/apps/{app_id}/imports/{again['id']}"))
    assert found["results"]["alreadyLinked"] == 5
    assert found["results"]["unmatched"] == 1


def test_one_import_at_a_time_and_bad_requests(
    runtime: Runtime, downstream: InProcessScim, client: TestClient
) -> None:
    app_id = create_scim_app(runtime, downstream.base_url, "Busy")
    started = _import(client, app_id)
    response = client.post(f"/api/v1/apps/{app_id}/imports")
    assert response.status_code == 400
    assert "already under way" in response.json()["errorCauses"][0]["errorSummary"]
    response = client.post(f"/api/v1/apps/{app_id}/imports/{started['id']}/confirm")
    assert response.status_code == 400  # not read yet
    assert client.get(f"/api/v1/apps/{app_id}/imports/impNoSuchImport00000").status_code == 404
    response = client.get(f"/api/v1/apps/{app_id}/unmanagedAccounts?state=BOGUS")
    assert response.status_code == 400
    response = client.put(
        f"/api/v1/apps/{app_id}/provisioning/settings", json={"importMatching": "email,shoeSize"}
    )
    assert response.status_code == 400


def test_link_an_unmanaged_account_and_push_to_a_found_group(
    runtime: Runtime, downstream: InProcessScim, client: TestClient
) -> None:
    ann = create_user(runtime, "ann@example.com")
    bob = create_user(runtime, "bob@example.com")
    legacy = downstream.scim.create_user("a.smith")  # matches nobody by userName or email
    downstream.scim.create_user("bob@example.com")
    editors = downstream.scim.create_group("Editors")
    app_id = create_scim_app(runtime, downstream.base_url, "Linkable")
    started = _import(client, app_id)
    converge(runtime)
    ok(client.post(f"/api/v1/apps/{app_id}/imports/{started['id']}/confirm"), 202)
    converge(runtime)
    [stray] = _all(client, f"/api/v1/apps/{app_id}/unmanagedAccounts")
    assert stray["userName"] == "a.smith"

    # Bob already has an account here: linking a second one to him is refused.
    refused = client.post(
        f"/api/v1/apps/{app_id}/unmanagedAccounts/{stray['id']}/link", json={"userId": bob}
    )
    assert refused.status_code == 400
    downstream.transport.clear()
    linked = client.post(
        f"/api/v1/apps/{app_id}/unmanagedAccounts/{stray['id']}/link", json={"userId": ann}
    )
    assert ok(linked, 202)["state"] == "LINKING"
    converge(runtime)
    assert _all(client, f"/api/v1/apps/{app_id}/unmanagedAccounts") == []
    with runtime.database.read() as session:
        link = session.get(t.AppUserLink, (app_id, ann))
        assert link is not None and link.external_id == legacy
    assert downstream.transport.count("POST", resource="Users") == 0
    assert downstream.scim.user("a.smith") is not None  # kept its userName

    # One step: the found group becomes the target of a push of a directory group.
    team = create_group(runtime, "Team", [ann, bob])
    made = ok(
        client.post(
            f"/api/v1/apps/{app_id}/imports/{started['id']}/groups/link",
            json={"links": [{"externalId": editors, "sourceGroupId": team}]},
        )
    )
    assert len(made) == 1
    converge(runtime)
    assert downstream.scim.members("Editors") == {"a.smith", "bob@example.com"}
    groups = _all(client, f"/api/v1/apps/{app_id}/imports/{started['id']}/groups")
    assert [g["mappingId"] for g in groups] == [made[0]["mappingId"]]
    again = client.post(
        f"/api/v1/apps/{app_id}/imports/{started['id']}/groups/link",
        json={"links": [{"externalId": "nope", "sourceGroupId": team}]},
    )
    assert again.status_code == 400
