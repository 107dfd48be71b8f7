"""Group Push end to end: the HTTP API, the worker and a real scim2-server downstream.

The seed recipe (Accounting assigned, AppPushGroup pushed, Taylor Smith), the seed's wrong
order of removal (which Okta warns orphans a membership and Headwater makes safe), one group
both assigned and pushed, renames, unlinking, linking an existing group by name, and skipped
members. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pushkit import (
    ORIGIN,
    Downstream,
    add_member,
    assign_group,
    assign_user,
    create_group,
    create_scim_app,
    create_user,
    downstream,
    drain,
    events_of,
    get_mapping,
    lifecycle,
    mappings_url,
    push_group,
    remove_member,
    rename_group,
    set_mapping_status,
    unlink,
)
from sqlalchemy import insert

from headwater import clock, ids
from headwater.db import tables as t
from headwater.runtime import Runtime

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
SAM = "sam.lee@example.com"


class Seed:
    """The seed's example: Accounting (three people) assigned, AppPushGroup pushed."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.taylor = create_user(client, TAYLOR, "Taylor", "Smith")
        self.alex = create_user(client, ALEX, "Alex", "Jones")
        self.sam = create_user(client, SAM, "Sam", "Lee")
        people = [self.taylor, self.alex, self.sam]
        self.accounting = create_group(client, "Accounting", people)
        self.push_group = create_group(client, "AppPushGroup", people)
        self.app = create_scim_app(client)
        assign_group(client, self.app, self.accounting)
        self.mapping: dict[str, Any] = push_group(client, self.app, self.push_group)


async def seeded(client: TestClient, runtime: Runtime, scim: Downstream) -> Seed:
    seed = Seed(client)
    await drain(runtime)
    assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
    return seed


async def assert_taylor_gone(scim: Downstream) -> None:
    taylor = await scim.user_by_name(TAYLOR)
    assert taylor is not None and taylor["active"] is False
    for group in await scim.groups():
        assert taylor["id"] not in {m["value"] for m in group.get("members") or []}


async def test_seed_recipe_pushes_the_group_with_its_assigned_members(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        for login in (TAYLOR, ALEX, SAM):
            account = await scim.user_by_name(login)
            assert account is not None and account["active"] is True
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert mapping["status"] == "ACTIVE" and mapping["errorSummary"] is None
        assert mapping["targetGroupId"] and mapping["lastPush"]
        assert mapping["skippedMembers"] == 0
        target = client.get(f"/api/v1/groups/{mapping['targetGroupId']}").json()
        assert (target["type"], target["profile"]["name"]) == ("APP_GROUP", "AppPushGroup")


async def test_wrong_order_removing_from_the_assignment_group_first_leaves_no_orphan(
    client: TestClient, runtime: Runtime
) -> None:
    """The seed warns this order leaves Taylor in AppPushGroup downstream; not here."""
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        remove_member(client, seed.accounting, seed.taylor)
        await drain(runtime)
        # Still in AppPushGroup in the directory, but no longer assigned: membership first.
        await assert_taylor_gone(scim)
        assert await scim.member_names("AppPushGroup") == {ALEX, SAM}
        lifecycle(client, seed.taylor, "deactivate")
        await drain(runtime)
        await assert_taylor_gone(scim)
        assert await scim.member_names("AppPushGroup") == {ALEX, SAM}


async def test_right_order_gives_the_same_result(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        remove_member(client, seed.push_group, seed.taylor)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {ALEX, SAM}
        remove_member(client, seed.accounting, seed.taylor)
        lifecycle(client, seed.taylor, "deactivate")
        await drain(runtime)
        await assert_taylor_gone(scim)


async def test_directory_deactivation_alone_removes_membership_and_account(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        lifecycle(client, seed.taylor, "deactivate")
        await drain(runtime)
        await assert_taylor_gone(scim)
        assert await scim.member_names("AppPushGroup") == {ALEX, SAM}


async def test_one_group_may_both_assign_and_push(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        taylor = create_user(client, TAYLOR, "Taylor", "Smith")
        alex = create_user(client, ALEX, "Alex", "Jones")
        accounting = create_group(client, "Accounting", [taylor, alex])
        app = create_scim_app(client)
        assign_group(client, app, accounting)
        push_group(client, app, accounting)
        await drain(runtime)
        assert await scim.member_names("Accounting") == {TAYLOR, ALEX}
        remove_member(client, accounting, taylor)
        await drain(runtime)
        await assert_taylor_gone(scim)
        assert await scim.member_names("Accounting") == {ALEX}


async def test_renaming_the_source_group_renames_the_downstream_group(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        rename_group(client, seed.push_group, "Finance Push")
        await drain(runtime)
        assert await scim.group_by_name("AppPushGroup") is None
        assert await scim.member_names("Finance Push") == {TAYLOR, ALEX, SAM}
        events = events_of(client, "application.provision.group_push.mapping.app.group.renamed")
        assert events


async def test_a_custom_target_name_is_kept_when_the_source_is_renamed(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        taylor = create_user(client, TAYLOR, "Taylor", "Smith")
        group = create_group(client, "Accounting", [taylor])
        app = create_scim_app(client)
        assign_group(client, app, group)
        push_group(client, app, group, targetGroupName="acct-readers")
        await drain(runtime)
        rename_group(client, group, "Accounting EMEA")
        await drain(runtime)
        assert await scim.member_names("acct-readers") == {TAYLOR}
        assert await scim.group_by_name("Accounting EMEA") is None


async def test_unlink_keeping_the_downstream_group(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        mapping_id = seed.mapping["id"]
        target_id = get_mapping(client, seed.app, mapping_id)["targetGroupId"]
        unlink(client, seed.app, mapping_id, delete_target=False)
        assert client.get(f"{mappings_url(seed.app)}/{mapping_id}").status_code == 404
        remove_member(client, seed.push_group, seed.alex)
        lifecycle(client, seed.sam, "deactivate")
        await drain(runtime)
        # No longer managed: the group and its members stay as they were.
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        # Its APP_GROUP stays too, standing for the group still there downstream.
        target = client.get(f"/api/v1/groups/{target_id}").json()
        assert (target["type"], target["profile"]["name"]) == ("APP_GROUP", "AppPushGroup")


async def test_unlink_deleting_the_downstream_group(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        mapping_id = seed.mapping["id"]
        target_id = get_mapping(client, seed.app, mapping_id)["targetGroupId"]
        unlink(client, seed.app, mapping_id, delete_target=True)
        assert client.get(f"{mappings_url(seed.app)}/{mapping_id}").status_code == 404
        assert client.get(mappings_url(seed.app)).json() == []
        await drain(runtime)
        assert await scim.group_by_name("AppPushGroup") is None
        assert client.get(f"/api/v1/groups/{target_id}").status_code == 404
        # The accounts are untouched: only the group went.
        account = await scim.user_by_name(TAYLOR)
        assert account is not None and account["active"] is True
        # And the group can be pushed again from scratch.
        push_group(client, seed.app, seed.push_group)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}


async def test_an_existing_downstream_group_is_linked_by_name_not_duplicated(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        existing = await scim.create_group("AppPushGroup")
        seed = await seeded(client, runtime, scim)
        groups = [g for g in await scim.groups() if g["displayName"] == "AppPushGroup"]
        assert [g["id"] for g in groups] == [existing]
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        target = client.get(f"/api/v1/groups/{mapping['targetGroupId']}").json()
        assert target["type"] == "APP_GROUP"


async def test_linking_an_app_group_by_id(client: TestClient, runtime: Runtime) -> None:
    """Unlink keeping the group, then link its APP_GROUP again with ``targetGroupId``."""
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        target_id = get_mapping(client, seed.app, seed.mapping["id"])["targetGroupId"]
        unlink(client, seed.app, seed.mapping["id"], delete_target=False)
        remove_member(client, seed.push_group, seed.sam)
        mapping = push_group(client, seed.app, seed.push_group, targetGroupId=target_id)
        assert mapping["targetGroupId"] == target_id
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}
        assert len([g for g in await scim.groups() if g["displayName"] == "AppPushGroup"]) == 1


async def test_members_without_an_account_are_skipped_counted_and_logged(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = Seed(client)
        outsider = create_user(client, "outsider@example.com", "Out", "Sider")
        add_member(client, seed.push_group, outsider)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        assert await scim.user_by_name("outsider@example.com") is None
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert mapping["skippedMembers"] == 1
        ignored = events_of(client, "app.user_management.grouppush.mapping.okta.users.ignored")
        assert len(ignored) == 1
        # Assigning the app to the member brings them in.
        assign_user(client, seed.app, outsider)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {
            TAYLOR,
            ALEX,
            SAM,
            "outsider@example.com",
        }
        assert get_mapping(client, seed.app, seed.mapping["id"])["skippedMembers"] == 0


async def test_deactivating_pauses_and_activating_replaces_the_whole_membership(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        set_mapping_status(client, seed.app, seed.mapping["id"], "INACTIVE")
        remove_member(client, seed.push_group, seed.sam)
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        # Alex removed by hand while paused comes back: activation replaces the membership.
        group = await scim.group_by_name("AppPushGroup")
        alex = await scim.user_by_name(ALEX)
        assert group is not None and alex is not None
        await scim.patch_members(group["id"], remove=[alex["id"]])
        set_mapping_status(client, seed.app, seed.mapping["id"], "ACTIVE")
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX}
        assert get_mapping(client, seed.app, seed.mapping["id"])["status"] == "ACTIVE"


async def test_deleting_the_source_group_pauses_the_mapping(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        assert client.delete(f"/api/v1/groups/{seed.push_group}").status_code == 204
        await drain(runtime)
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert (mapping["status"], mapping["sourceGroupId"]) == ("INACTIVE", None)
        assert "sourceGroup" not in mapping["_links"]
        # delete_group_with_source is off by default: the downstream group stays.
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        response = client.patch(
            f"{mappings_url(seed.app)}/{seed.mapping['id']}", json={"status": "ACTIVE"}
        )
        assert response.json()["errorCode"] == "E0000027"


async def test_deleting_the_source_group_deletes_downstream_when_the_app_says_so(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = Seed(client)
        client.put(
            f"/api/v1/apps/{seed.app}/provisioning/settings", json={"deleteGroupWithSource": True}
        )
        await drain(runtime)
        assert client.delete(f"/api/v1/groups/{seed.push_group}").status_code == 204
        await drain(runtime)
        assert await scim.group_by_name("AppPushGroup") is None
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert (mapping["status"], mapping["targetGroupId"]) == ("INACTIVE", None)


def _bulk_directory(runtime: Runtime, count: int) -> tuple[str, list[tuple[str, str]]]:
    """``count`` active users in one group, written in bulk (the API is tested elsewhere).
    Returns the group id and (user id, login) pairs."""
    now = clock.utcnow()
    group_id = ids.new_id("00g")
    users = []
    for n in range(count):
        login = f"member{n:04d}@example.com"
        users.append(
            {
                "id": ids.new_id("00u"),
                "status": "ACTIVE",
                "login": login,
                "login_lower": login,
                "email_lower": login,
                "profile": {"login": login, "email": login, "firstName": "M", "lastName": str(n)},
                "created": now,
                "last_updated": now,
            }
        )
    with runtime.database.transaction() as session:
        session.execute(insert(t.User), users)
        session.add(
            t.Group(
                id=group_id,
                type="OKTA_GROUP",
                name="Everyone Big",
                name_lower="everyone big",
                name_scope="okta",
                profile={"name": "Everyone Big"},
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        session.execute(
            insert(t.Membership),
            [{"group_id": group_id, "user_id": u["id"], "created": now} for u in users],
        )
    return group_id, [(u["id"], u["login"]) for u in users]


async def _provisioned(
    runtime: Runtime, scim: Downstream, app_id: str, group_id: str, users: list[tuple[str, str]]
) -> None:
    """Accounts that already exist downstream and are linked, as the engine leaves them after
    provisioning (provisioning itself is tested elsewhere; here only the push is measured)."""
    now = clock.utcnow()
    links = []
    for user_id, login in users:
        links.append(
            {
                "app_id": app_id,
                "user_id": user_id,
                "external_id": await scim.create_user(login),
                "user_name": login,
                "state": "ACTIVE",
                "sync_state": "SYNCHRONIZED",
                "created": now,
                "last_updated": now,
            }
        )
    with runtime.database.transaction() as session:
        session.execute(insert(t.AppUserLink), links)
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


async def test_a_thousand_member_push_is_batched(client: TestClient, runtime: Runtime) -> None:
    batch = 100
    async with downstream(runtime) as scim:
        group_id, users = _bulk_directory(runtime, 1000)
        app = create_scim_app(client, membershipBatchSize=batch)
        await _provisioned(runtime, scim, app, group_id, users)
        mapping = push_group(client, app, group_id)
        await drain(runtime)
        sent = scim.membership_requests()
        assert sent <= math.ceil(1000 / batch) + 1, sent
        members = await scim.member_names("Everyone Big")
        assert members is not None and len(members) == 1000
        assert get_mapping(client, app, mapping["id"])["skippedMembers"] == 0


async def test_renaming_onto_a_group_kept_downstream_is_a_task_until_fixed(
    client: TestClient, runtime: Runtime
) -> None:
    """Okta's "group already exists": no duplicate name downstream, an error the admin sees."""
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        kept = create_group(client, "Old Push", [seed.alex])
        old_mapping = push_group(client, seed.app, kept)
        await drain(runtime)
        unlink(client, seed.app, old_mapping["id"], delete_target=False)
        rename_group(client, kept, "Archived")
        rename_group(client, seed.push_group, "Old Push")
        await drain(runtime)
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert mapping["status"] == "ERROR" and "already exists" in mapping["errorSummary"]
        tasks = client.get(f"/api/v1/apps/{seed.app}/tasks").json()
        assert [task["operation"] for task in tasks] == ["RenameGroup"]
        assert len([g for g in await scim.groups() if g["displayName"] == "Old Push"]) == 1
        rename_group(client, seed.push_group, "New Push")
        await drain(runtime)
        assert get_mapping(client, seed.app, seed.mapping["id"])["status"] == "ACTIVE"
        assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []
        assert await scim.member_names("New Push") == {TAYLOR, ALEX, SAM}


async def test_renaming_onto_a_stale_app_group_name(client: TestClient, runtime: Runtime) -> None:
    """The kept group was deleted downstream by hand: its name is free again."""
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        kept = create_group(client, "Old Push", [seed.alex])
        old_mapping = push_group(client, seed.app, kept)
        await drain(runtime)
        unlink(client, seed.app, old_mapping["id"], delete_target=False)
        old_group = await scim.group_by_name("Old Push")
        assert old_group is not None
        await scim.delete_group(old_group["id"])
        rename_group(client, kept, "Old Push Two")
        rename_group(client, seed.push_group, "Old Push")
        await drain(runtime)
        assert get_mapping(client, seed.app, seed.mapping["id"])["status"] == "ACTIVE"
        assert await scim.member_names("Old Push") == {TAYLOR, ALEX, SAM}
        # Pushing the other group again creates its downstream group under its new name.
        push_group(client, seed.app, kept)
        await drain(runtime)
        assert await scim.member_names("Old Push Two") == {ALEX}


async def test_a_put_only_app_gets_whole_groups(client: TestClient, runtime: Runtime) -> None:
    async with downstream(runtime) as scim:
        seed = Seed(client)
        client.put(
            f"/api/v1/apps/{seed.app}/provisioning/settings", json={"membershipMethod": "PUT"}
        )
        await drain(runtime)
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        remove_member(client, seed.push_group, seed.sam)
        rename_group(client, seed.push_group, "Renamed Push")
        await drain(runtime)
        assert await scim.member_names("Renamed Push") == {TAYLOR, ALEX}
        lifecycle(client, seed.taylor, "deactivate")
        await drain(runtime)
        await assert_taylor_gone(scim)
        assert await scim.member_names("Renamed Push") == {ALEX}
        assert scim.transport.counts[("PATCH", "Groups/{id}")] == 0


class RefusingAdds(httpx.AsyncBaseTransport):
    """In front of the real server: membership PATCHes that add are answered 409 while
    ``refusing`` is set (a permanent refusal the batch isolation does not split)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refusing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        adding = request.method == "PATCH" and b'"op":"add"' in request.content.replace(b" ", b"")
        if self.refusing and "/Groups/" in request.url.path and adding:
            body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409"}
            return httpx.Response(409, json=body)
        return await self.inner.handle_async_request(request)


async def test_a_refused_push_never_blocks_a_deprovision(
    client: TestClient, runtime: Runtime
) -> None:
    """A failed add leaves its outcome unknown; the member's deprovision still goes through
    (removing the membership first) instead of waiting for an add that will never finish."""
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        refusing = RefusingAdds(runtime.connectors.transports[ORIGIN])
        runtime.connectors.transports[ORIGIN] = refusing
        refusing.refusing = True
        pat = create_user(client, "pat.kim@example.com", "Pat", "Kim")
        add_member(client, seed.accounting, pat)
        add_member(client, seed.push_group, pat)
        await drain(runtime)
        mapping = get_mapping(client, seed.app, seed.mapping["id"])
        assert mapping["status"] == "ERROR" and mapping["errorSummary"]
        assert len(client.get(f"/api/v1/apps/{seed.app}/tasks").json()) == 1
        lifecycle(client, pat, "deactivate")
        await drain(runtime, timeout=20)
        account = await scim.user_by_name("pat.kim@example.com")
        assert account is not None and account["active"] is False
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM}
        # With Pat gone there is nothing left to push: the mapping recovered on its own.
        assert get_mapping(client, seed.app, seed.mapping["id"])["status"] == "ACTIVE"
        assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []


async def test_retrying_a_push_task_pushes_the_group_again(
    client: TestClient, runtime: Runtime
) -> None:
    async with downstream(runtime) as scim:
        seed = await seeded(client, runtime, scim)
        refusing = RefusingAdds(runtime.connectors.transports[ORIGIN])
        runtime.connectors.transports[ORIGIN] = refusing
        refusing.refusing = True
        pat = create_user(client, "pat.kim@example.com", "Pat", "Kim")
        add_member(client, seed.accounting, pat)
        add_member(client, seed.push_group, pat)
        await drain(runtime)
        (task,) = client.get(f"/api/v1/apps/{seed.app}/tasks").json()
        assert task["target"]["id"] == seed.mapping["id"]
        refusing.refusing = False
        retried = client.post(f"/api/v1/apps/{seed.app}/tasks/{task['id']}/retry")
        assert retried.status_code == 202
        await drain(runtime)
        assert get_mapping(client, seed.app, seed.mapping["id"])["status"] == "ACTIVE"
        assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []
        assert await scim.member_names("AppPushGroup") == {TAYLOR, ALEX, SAM, "pat.kim@example.com"}
