"""Drift: changes made by hand downstream are found by a full reconcile and repaired or
reported. The downstream is a real scim2-server; the directory is driven through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pushkit import (
    Downstream,
    assign_group,
    create_group,
    create_scim_app,
    create_user,
    downstream,
    drain,
    ok,
    push_group,
    reconcile,
)

from headwater.runtime import Runtime

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
PAT = "pat.kim@example.com"


class Pushed:
    """Accounting (Taylor, Alex, Pat) assigned; AppPushGroup (Taylor, Alex) pushed."""

    def __init__(self, client: TestClient) -> None:
        self.taylor = create_user(client, TAYLOR, "Taylor", "Smith")
        self.alex = create_user(client, ALEX, "Alex", "Jones")
        self.pat = create_user(client, PAT, "Pat", "Kim")
        accounting = create_group(client, "Accounting", [self.taylor, self.alex, self.pat])
        self.push_group = create_group(client, "AppPushGroup", [self.taylor, self.alex])
        self.app = create_scim_app(client)
        assign_group(client, self.app, accounting)
        self.mapping: dict[str, Any] = push_group(client, self.app, self.push_group)


async def pushed(client: TestClient, runtime: Runtime, scim: Downstream) -> Pushed:
    setup = Pushed(client)
    await drain(runtime)
    assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}
    return setup


async def group_id(scim: Downstream, name: str = "AppPushGroup") -> str:
    group = await scim.group_by_name(name)
    assert group is not None
    value: str = group["id"]
    return value


async def account_id(scim: Downstream, user_name: str) -> str:
    account = await scim.user_by_name(user_name)
    assert account is not None
    value: str = account["id"]
    return value


async def full_reconcile(client: TestClient, runtime: Runtime, app_id: str) -> None:
    reconcile(client, app_id)
    await drain(runtime)


async def test_a_linked_member_added_by_hand_is_removed(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        await scim.patch_members(await group_id(scim), add=[await account_id(scim, PAT)])
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, PAT}
        await full_reconcile(client, runtime, setup.app)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}


async def test_a_member_removed_by_hand_is_added_back(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        await scim.patch_members(await group_id(scim), remove=[await account_id(scim, ALEX)])
        await full_reconcile(client, runtime, setup.app)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}


async def test_a_group_deleted_by_hand_is_recreated(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        old = await group_id(scim)
        await scim.delete_group(old)
        await full_reconcile(client, runtime, setup.app)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}
        assert await group_id(scim) != old
        mapping = ok(client.get(f"/api/v1/apps/{setup.app}/group-push/mappings"))[0]
        assert mapping["status"] == "ACTIVE" and mapping["errorSummary"] is None


async def test_an_unknown_member_is_reported_then_removed_on_request(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        stranger = await scim.create_user("stranger@example.com")
        await scim.patch_members(await group_id(scim), add=[stranger])
        await full_reconcile(client, runtime, setup.app)
        # Not Headwater's to remove on its own: reported.
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, "stranger@example.com"}
        orphans = ok(client.get(f"/api/v1/apps/{setup.app}/orphans"))
        assert [(o["mappingId"], o["externalId"]) for o in orphans] == [
            (setup.mapping["id"], stranger)
        ]
        assert orphans[0]["seen"].endswith("Z")
        plan = ok(client.get(f"/api/v1/apps/{setup.app}/plan?observe=true"))
        assert plan["orphans"] == [{"mappingId": setup.mapping["id"], "externalId": stranger}]
        removed = ok(client.post(f"/api/v1/apps/{setup.app}/orphans/remove"))
        assert removed == {"removed": 1, "errors": []}
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}
        assert ok(client.get(f"/api/v1/apps/{setup.app}/orphans")) == []
        # The stranger's account itself is not Headwater's either: it stays.
        assert await scim.user_by_name("stranger@example.com") is not None


async def test_orphan_removal_can_target_listed_ids(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        first = await scim.create_user("first@example.com")
        second = await scim.create_user("second@example.com")
        await scim.patch_members(await group_id(scim), add=[first, second])
        await full_reconcile(client, runtime, setup.app)
        body = {"mappingId": setup.mapping["id"], "externalIds": [second]}
        removed = ok(client.post(f"/api/v1/apps/{setup.app}/orphans/remove", json=body))
        assert removed["removed"] == 1
        names = await scim.member_names("AppPushGroup")
        assert names == {TAYLOR, ALEX, "first@example.com"}
        left = ok(client.get(f"/api/v1/apps/{setup.app}/orphans"))
        assert [o["externalId"] for o in left] == [first]


async def test_an_account_deleted_by_hand_is_recreated_and_pushed_again(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        old = await account_id(scim, TAYLOR)
        await scim.delete_user(old)
        await full_reconcile(client, runtime, setup.app)
        new = await account_id(scim, TAYLOR)
        assert new != old
        members = await scim.group_by_name("AppPushGroup")
        assert members is not None
        assert new in {m["value"] for m in members.get("members") or []}
        app_user = ok(client.get(f"/api/v1/apps/{setup.app}/users/{setup.taylor}"))
        assert app_user["externalId"] == new
        # And the recorded membership follows the new account: removal reaches downstream.
        ok(client.delete(f"/api/v1/groups/{setup.push_group}/users/{setup.taylor}"), 204)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {ALEX}


async def test_a_reconcile_with_no_drift_sends_no_write(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        setup = await pushed(client, runtime, scim)
        writes_before = sum(
            n for (method, _), n in scim.transport.counts.items() if method != "GET"
        )
        await full_reconcile(client, runtime, setup.app)
        writes_after = sum(n for (method, _), n in scim.transport.counts.items() if method != "GET")
        assert writes_after == writes_before
