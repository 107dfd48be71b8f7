"""Group Push through the engine, in process: the directory changes through the services (as an
admin's API call would change it), a worker is drained, and a real scim2-server served in
process (no socket) is read back; mapping state is read through the HTTP API.

Not end to end: no server, no running worker, no network. ``test_group_push_e2e.py`` runs the
seed recipe that way.

The seed recipe (Accounting assigned, AppPushGroup pushed, Taylor Smith), the seed's wrong
order of removal (which Okta warns orphans a membership and Headwater makes safe), one group
both assigned and pushed, renames, unlinking, linking an existing group by name, and skipped
members. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    InProcessScim,
    add_member,
    assert_okta_error,
    assign_group,
    assign_user,
    change_status,
    converge,
    create_group,
    create_scim_app,
    create_user,
    create_users,
    delete_group,
    event_types,
    ok,
    push_group,
    remove_member,
    rename_group,
    set_mapping_status,
    unlink_mapping,
    update_settings,
)

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
SAM = "sam.lee@example.com"


def mappings_url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/group-push/mappings"


def mapping_of(client: TestClient, app_id: str, mapping_id: str) -> dict[str, Any]:
    """The mapping as the API shows it."""
    shown: dict[str, Any] = ok(client.get(f"{mappings_url(app_id)}/{mapping_id}"))
    return shown


@dataclass
class Seed:
    """The seed's example: Accounting (three people) assigned, AppPushGroup pushed."""

    taylor: str
    alex: str
    sam: str
    accounting: str
    push_group: str
    app: str
    mapping: str

    @classmethod
    def make(cls, runtime: Runtime, downstream: InProcessScim) -> Seed:
        people = [create_user(runtime, login) for login in (TAYLOR, ALEX, SAM)]
        accounting = create_group(runtime, "Accounting", people)
        pushed = create_group(runtime, "AppPushGroup", people)
        app = create_scim_app(runtime, downstream.base_url)
        assign_group(runtime, app, accounting)
        mapping = push_group(runtime, app, pushed)
        taylor, alex, sam = people
        return cls(taylor, alex, sam, accounting, pushed, app, mapping)


def seeded(runtime: Runtime, downstream: InProcessScim) -> Seed:
    seed = Seed.make(runtime, downstream)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    return seed


def assert_taylor_gone(downstream: InProcessScim) -> None:
    taylor = downstream.scim.user(TAYLOR)
    assert taylor is not None and taylor["active"] is False
    for group in downstream.scim.groups():
        assert taylor["id"] not in {m["value"] for m in group.get("members") or []}


def membership_requests(downstream: InProcessScim) -> int:
    sent = downstream.transport
    return sent.count("PATCH", resource="Groups/{id}") + sent.count("PUT", resource="Groups/{id}")


def test_seed_recipe_pushes_the_group_with_its_assigned_members(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    for login in (TAYLOR, ALEX, SAM):
        account = downstream.scim.user(login)
        assert account is not None and account["active"] is True
    mapping = mapping_of(client, seed.app, seed.mapping)
    assert mapping["status"] == "ACTIVE" and mapping["errorSummary"] is None
    assert mapping["targetGroupId"] and mapping["lastPush"]
    assert mapping["skippedMembers"] == 0
    target = client.get(f"/api/v1/groups/{mapping['targetGroupId']}").json()
    assert (target["type"], target["profile"]["name"]) == ("APP_GROUP", "AppPushGroup")


def test_wrong_order_removing_from_the_assignment_group_first_leaves_no_orphan(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    """The seed warns this order leaves Taylor in AppPushGroup downstream; not here."""
    seed = seeded(runtime, downstream)
    remove_member(runtime, seed.accounting, seed.taylor)
    converge(runtime)
    # Still in AppPushGroup in the directory, but no longer assigned: membership first.
    assert_taylor_gone(downstream)
    assert downstream.scim.members("AppPushGroup") == {ALEX, SAM}
    change_status(runtime, seed.taylor, "deactivate")
    converge(runtime)
    assert_taylor_gone(downstream)
    assert downstream.scim.members("AppPushGroup") == {ALEX, SAM}


def test_right_order_gives_the_same_result(runtime: Runtime, downstream: InProcessScim) -> None:
    seed = seeded(runtime, downstream)
    remove_member(runtime, seed.push_group, seed.taylor)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {ALEX, SAM}
    remove_member(runtime, seed.accounting, seed.taylor)
    change_status(runtime, seed.taylor, "deactivate")
    converge(runtime)
    assert_taylor_gone(downstream)


def test_directory_deactivation_alone_removes_membership_and_account(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    change_status(runtime, seed.taylor, "deactivate")
    converge(runtime)
    assert_taylor_gone(downstream)
    assert downstream.scim.members("AppPushGroup") == {ALEX, SAM}


def test_one_group_may_both_assign_and_push(runtime: Runtime, downstream: InProcessScim) -> None:
    taylor, alex = create_user(runtime, TAYLOR), create_user(runtime, ALEX)
    accounting = create_group(runtime, "Accounting", [taylor, alex])
    app = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app, accounting)
    push_group(runtime, app, accounting)
    converge(runtime)
    assert downstream.scim.members("Accounting") == {TAYLOR, ALEX}
    remove_member(runtime, accounting, taylor)
    converge(runtime)
    assert_taylor_gone(downstream)
    assert downstream.scim.members("Accounting") == {ALEX}


def test_renaming_the_source_group_renames_the_downstream_group(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    rename_group(runtime, seed.push_group, "Finance Push")
    converge(runtime)
    assert downstream.scim.group("AppPushGroup") is None
    assert downstream.scim.members("Finance Push") == {TAYLOR, ALEX, SAM}
    renamed = "application.provision.group_push.mapping.app.group.renamed"
    assert renamed in event_types(runtime)


def test_a_custom_target_name_is_kept_when_the_source_is_renamed(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    taylor = create_user(runtime, TAYLOR)
    group = create_group(runtime, "Accounting", [taylor])
    app = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app, group)
    push_group(runtime, app, group, target_name="acct-readers")
    converge(runtime)
    rename_group(runtime, group, "Accounting EMEA")
    converge(runtime)
    assert downstream.scim.members("acct-readers") == {TAYLOR}
    assert downstream.scim.group("Accounting EMEA") is None


def test_unlink_keeping_the_downstream_group(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    target_id = mapping_of(client, seed.app, seed.mapping)["targetGroupId"]
    unlink_mapping(runtime, seed.app, seed.mapping, delete_target=False)
    assert client.get(f"{mappings_url(seed.app)}/{seed.mapping}").status_code == 404
    remove_member(runtime, seed.push_group, seed.alex)
    change_status(runtime, seed.sam, "deactivate")
    converge(runtime)
    # No longer managed: the group and its members stay as they were.
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    # Its APP_GROUP stays too, standing for the group still there downstream.
    target = client.get(f"/api/v1/groups/{target_id}").json()
    assert (target["type"], target["profile"]["name"]) == ("APP_GROUP", "AppPushGroup")


def test_unlink_deleting_the_downstream_group(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    target_id = mapping_of(client, seed.app, seed.mapping)["targetGroupId"]
    unlink_mapping(runtime, seed.app, seed.mapping, delete_target=True)
    assert client.get(f"{mappings_url(seed.app)}/{seed.mapping}").status_code == 404
    assert client.get(mappings_url(seed.app)).json() == []
    converge(runtime)
    assert downstream.scim.group("AppPushGroup") is None
    assert client.get(f"/api/v1/groups/{target_id}").status_code == 404
    # The accounts are untouched: only the group went.
    account = downstream.scim.user(TAYLOR)
    assert account is not None and account["active"] is True
    # And the group can be pushed again from scratch.
    push_group(runtime, seed.app, seed.push_group)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}


def test_an_existing_downstream_group_is_linked_by_name_not_duplicated(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    existing = downstream.scim.create_group("AppPushGroup")
    seed = seeded(runtime, downstream)
    groups = [g for g in downstream.scim.groups() if g["displayName"] == "AppPushGroup"]
    assert [g["id"] for g in groups] == [existing]
    mapping = mapping_of(client, seed.app, seed.mapping)
    target = client.get(f"/api/v1/groups/{mapping['targetGroupId']}").json()
    assert target["type"] == "APP_GROUP"


def test_linking_an_app_group_by_id(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """Unlink keeping the group, then link its APP_GROUP again with ``targetGroupId``."""
    seed = seeded(runtime, downstream)
    target_id = mapping_of(client, seed.app, seed.mapping)["targetGroupId"]
    unlink_mapping(runtime, seed.app, seed.mapping, delete_target=False)
    remove_member(runtime, seed.push_group, seed.sam)
    mapping = push_group(runtime, seed.app, seed.push_group, target_group_id=target_id)
    assert mapping_of(client, seed.app, mapping)["targetGroupId"] == target_id
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}
    assert len([g for g in downstream.scim.groups() if g["displayName"] == "AppPushGroup"]) == 1


def test_members_without_an_account_are_skipped_counted_and_logged(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = Seed.make(runtime, downstream)
    outsider = create_user(runtime, "outsider@example.com")
    add_member(runtime, seed.push_group, outsider)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    assert downstream.scim.user("outsider@example.com") is None
    assert mapping_of(client, seed.app, seed.mapping)["skippedMembers"] == 1
    ignored = "app.user_management.grouppush.mapping.okta.users.ignored"
    assert event_types(runtime).count(ignored) == 1
    # Assigning the app to the member brings them in.
    assign_user(runtime, seed.app, outsider)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {
        TAYLOR,
        ALEX,
        SAM,
        "outsider@example.com",
    }
    assert mapping_of(client, seed.app, seed.mapping)["skippedMembers"] == 0


def test_deactivating_pauses_and_activating_replaces_the_whole_membership(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    set_mapping_status(runtime, seed.app, seed.mapping, "INACTIVE")
    remove_member(runtime, seed.push_group, seed.sam)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    # Alex removed by hand while paused comes back: activation replaces the membership.
    group = downstream.scim.group("AppPushGroup")
    alex = downstream.scim.user(ALEX)
    assert group is not None and alex is not None
    downstream.scim.patch_members(group["id"], remove=[alex["id"]])
    set_mapping_status(runtime, seed.app, seed.mapping, "ACTIVE")
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}
    assert mapping_of(client, seed.app, seed.mapping)["status"] == "ACTIVE"


def test_deleting_the_source_group_pauses_the_mapping(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    delete_group(runtime, seed.push_group)
    converge(runtime)
    mapping = mapping_of(client, seed.app, seed.mapping)
    assert (mapping["status"], mapping["sourceGroupId"]) == ("INACTIVE", None)
    assert "sourceGroup" not in mapping["_links"]
    # delete_group_with_source is off by default: the downstream group stays.
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    response = client.patch(f"{mappings_url(seed.app)}/{seed.mapping}", json={"status": "ACTIVE"})
    assert_okta_error(response, 400, "E0000027")


def test_deleting_the_source_group_deletes_downstream_when_the_app_says_so(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = Seed.make(runtime, downstream)
    update_settings(runtime, seed.app, delete_group_with_source=True)
    converge(runtime)
    delete_group(runtime, seed.push_group)
    converge(runtime)
    assert downstream.scim.group("AppPushGroup") is None
    mapping = mapping_of(client, seed.app, seed.mapping)
    assert (mapping["status"], mapping["targetGroupId"]) == ("INACTIVE", None)


@pytest.mark.slow
def test_a_thousand_member_push_is_batched(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """The accounts are provisioned first (by the engine, as in life); only the push that
    follows is measured."""
    batch = 100
    app = create_scim_app(runtime, downstream.base_url, membership_batch_size=batch)
    group = create_group(runtime, "Everyone Big")
    create_users(runtime, 1000, prefix="member", digits=4, group_ids=[group])
    assign_group(runtime, app, group)
    converge(runtime, timeout=300)
    assert len(downstream.scim.users()) == 1000
    downstream.transport.clear()
    mapping = push_group(runtime, app, group)
    converge(runtime)
    sent = membership_requests(downstream)
    assert sent <= math.ceil(1000 / batch) + 1, sent
    members = downstream.scim.members("Everyone Big")
    assert members is not None and len(members) == 1000
    assert mapping_of(client, app, mapping)["skippedMembers"] == 0


def test_renaming_onto_a_group_kept_downstream_is_a_task_until_fixed(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """Okta's "group already exists": no duplicate name downstream, an error the admin sees."""
    seed = seeded(runtime, downstream)
    kept = create_group(runtime, "Old Push", [seed.alex])
    old_mapping = push_group(runtime, seed.app, kept)
    converge(runtime)
    unlink_mapping(runtime, seed.app, old_mapping, delete_target=False)
    rename_group(runtime, kept, "Archived")
    rename_group(runtime, seed.push_group, "Old Push")
    converge(runtime)
    mapping = mapping_of(client, seed.app, seed.mapping)
    assert mapping["status"] == "ERROR" and "already exists" in mapping["errorSummary"]
    tasks = client.get(f"/api/v1/apps/{seed.app}/tasks").json()
    assert [task["operation"] for task in tasks] == ["RenameGroup"]
    assert len([g for g in downstream.scim.groups() if g["displayName"] == "Old Push"]) == 1
    rename_group(runtime, seed.push_group, "New Push")
    converge(runtime)
    assert mapping_of(client, seed.app, seed.mapping)["status"] == "ACTIVE"
    assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []
    assert downstream.scim.members("New Push") == {TAYLOR, ALEX, SAM}


def test_renaming_onto_a_stale_app_group_name(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """The kept group was deleted downstream by hand: its name is free again."""
    seed = seeded(runtime, downstream)
    kept = create_group(runtime, "Old Push", [seed.alex])
    old_mapping = push_group(runtime, seed.app, kept)
    converge(runtime)
    unlink_mapping(runtime, seed.app, old_mapping, delete_target=False)
    old_group = downstream.scim.group("Old Push")
    assert old_group is not None
    downstream.scim.delete_group(old_group["id"])
    rename_group(runtime, kept, "Old Push Two")
    rename_group(runtime, seed.push_group, "Old Push")
    converge(runtime)
    assert mapping_of(client, seed.app, seed.mapping)["status"] == "ACTIVE"
    assert downstream.scim.members("Old Push") == {TAYLOR, ALEX, SAM}
    # Pushing the other group again creates its downstream group under its new name.
    push_group(runtime, seed.app, kept)
    converge(runtime)
    assert downstream.scim.members("Old Push Two") == {ALEX}


def test_a_put_only_app_gets_whole_groups(runtime: Runtime, downstream: InProcessScim) -> None:
    seed = Seed.make(runtime, downstream)
    update_settings(runtime, seed.app, membership_method="PUT")
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    remove_member(runtime, seed.push_group, seed.sam)
    rename_group(runtime, seed.push_group, "Renamed Push")
    converge(runtime)
    assert downstream.scim.members("Renamed Push") == {TAYLOR, ALEX}
    change_status(runtime, seed.taylor, "deactivate")
    converge(runtime)
    assert_taylor_gone(downstream)
    assert downstream.scim.members("Renamed Push") == {ALEX}
    assert downstream.transport.count("PATCH", resource="Groups/{id}") == 0


class RefusingAdds(httpx.AsyncBaseTransport):
    """In front of the real server: membership PATCHes that add are answered 409 while
    ``refusing`` is set (a permanent refusal the batch isolation does not split)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refusing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        adding = request.method == "PATCH" and b'"op":"add"' in request.content.replace(b" ", b"")
        if self.refusing and "/Groups/" in request.url.path and adding:
            return httpx.Response(409, json={"schemas": [ERROR_SCHEMA], "status": "409"})
        return await self.inner.handle_async_request(request)


def refusing_adds(runtime: Runtime, downstream: InProcessScim) -> RefusingAdds:
    """Put a :class:`RefusingAdds` between Headwater and the downstream (refusing at once)."""
    refusing = RefusingAdds(downstream.transport)
    refusing.refusing = True
    runtime.connectors.transports[downstream.origin + "/"] = refusing
    return refusing


def test_a_refused_push_never_blocks_a_deprovision(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """A failed add leaves its outcome unknown; the member's deprovision still goes through
    (removing the membership first) instead of waiting for an add that will never finish."""
    seed = seeded(runtime, downstream)
    refusing_adds(runtime, downstream)
    pat = create_user(runtime, "pat.kim@example.com")
    add_member(runtime, seed.accounting, pat)
    add_member(runtime, seed.push_group, pat)
    converge(runtime)
    mapping = mapping_of(client, seed.app, seed.mapping)
    assert mapping["status"] == "ERROR" and mapping["errorSummary"]
    assert len(client.get(f"/api/v1/apps/{seed.app}/tasks").json()) == 1
    change_status(runtime, pat, "deactivate")
    converge(runtime, timeout=20)
    account = downstream.scim.user("pat.kim@example.com")
    assert account is not None and account["active"] is False
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    # With Pat gone there is nothing left to push: the mapping recovered on its own.
    assert mapping_of(client, seed.app, seed.mapping)["status"] == "ACTIVE"
    assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []


def test_retrying_a_push_task_pushes_the_group_again(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    seed = seeded(runtime, downstream)
    refusing = refusing_adds(runtime, downstream)
    pat = create_user(runtime, "pat.kim@example.com")
    add_member(runtime, seed.accounting, pat)
    add_member(runtime, seed.push_group, pat)
    converge(runtime)
    (task,) = client.get(f"/api/v1/apps/{seed.app}/tasks").json()
    assert task["target"]["id"] == seed.mapping
    refusing.refusing = False
    retried = client.post(f"/api/v1/apps/{seed.app}/tasks/{task['id']}/retry")
    assert retried.status_code == 202
    converge(runtime)
    assert mapping_of(client, seed.app, seed.mapping)["status"] == "ACTIVE"
    assert client.get(f"/api/v1/apps/{seed.app}/tasks").json() == []
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, SAM, "pat.kim@example.com"}
