"""Drift: changes made by hand downstream are found by a full reconcile and repaired or
reported. The downstream is a real scim2-server (in process); the directory changes through
the services, the full reconcile and the orphan endpoints are called through the API."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    push_group,
    remove_member,
)

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
PAT = "pat.kim@example.com"


@dataclass
class Pushed:
    """Accounting (Taylor, Alex, Pat) assigned; AppPushGroup (Taylor, Alex) pushed."""

    taylor: str
    push_group: str
    app: str
    mapping: str


@pytest.fixture
def pushed(runtime: Runtime, downstream: InProcessScim) -> Pushed:
    taylor, alex, pat = (create_user(runtime, login) for login in (TAYLOR, ALEX, PAT))
    accounting = create_group(runtime, "Accounting", [taylor, alex, pat])
    push_source = create_group(runtime, "AppPushGroup", [taylor, alex])
    app = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app, accounting)
    mapping = push_group(runtime, app, push_source)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}
    return Pushed(taylor, push_source, app, mapping)


def group_id(downstream: InProcessScim, name: str = "AppPushGroup") -> str:
    group = downstream.scim.group(name)
    assert group is not None
    return str(group["id"])


def account_id(downstream: InProcessScim, user_name: str) -> str:
    account = downstream.scim.user(user_name)
    assert account is not None
    return str(account["id"])


def full_reconcile(client: TestClient, runtime: Runtime, app_id: str) -> None:
    """``POST /apps/{id}/reconcile`` (every key, reading downstream back), then converge."""
    ok(client.post(f"/api/v1/apps/{app_id}/reconcile"), 202)
    converge(runtime)


def test_a_linked_member_added_by_hand_is_removed(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    downstream.scim.patch_members(group_id(downstream), add=[account_id(downstream, PAT)])
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, PAT}
    full_reconcile(client, runtime, pushed.app)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}


def test_a_member_removed_by_hand_is_added_back(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    downstream.scim.patch_members(group_id(downstream), remove=[account_id(downstream, ALEX)])
    full_reconcile(client, runtime, pushed.app)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}


def test_a_group_deleted_by_hand_is_recreated(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    old = group_id(downstream)
    downstream.scim.delete_group(old)
    full_reconcile(client, runtime, pushed.app)
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}
    assert group_id(downstream) != old
    mapping = ok(client.get(f"/api/v1/apps/{pushed.app}/group-push/mappings"))[0]
    assert mapping["status"] == "ACTIVE" and mapping["errorSummary"] is None


def test_an_unknown_member_is_reported_then_removed_on_request(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    stranger = downstream.scim.create_user("stranger@example.com")
    downstream.scim.patch_members(group_id(downstream), add=[stranger])
    full_reconcile(client, runtime, pushed.app)
    # Not Headwater's to remove on its own: reported.
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, "stranger@example.com"}
    orphans = ok(client.get(f"/api/v1/apps/{pushed.app}/orphans"))
    assert [(o["mappingId"], o["externalId"]) for o in orphans] == [(pushed.mapping, stranger)]
    assert orphans[0]["seen"].endswith("Z")
    plan = ok(client.get(f"/api/v1/apps/{pushed.app}/plan?observe=true"))
    assert plan["orphans"] == [{"mappingId": pushed.mapping, "externalId": stranger}]
    removed = ok(client.post(f"/api/v1/apps/{pushed.app}/orphans/remove"))
    assert removed == {"removed": 1, "errors": []}
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX}
    assert ok(client.get(f"/api/v1/apps/{pushed.app}/orphans")) == []
    # The stranger's account itself is not Headwater's either: it stays.
    assert downstream.scim.user("stranger@example.com") is not None


def test_orphan_removal_can_target_listed_ids(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    first = downstream.scim.create_user("first@example.com")
    second = downstream.scim.create_user("second@example.com")
    downstream.scim.patch_members(group_id(downstream), add=[first, second])
    full_reconcile(client, runtime, pushed.app)
    body = {"mappingId": pushed.mapping, "externalIds": [second]}
    removed = ok(client.post(f"/api/v1/apps/{pushed.app}/orphans/remove", json=body))
    assert removed["removed"] == 1
    assert downstream.scim.members("AppPushGroup") == {TAYLOR, ALEX, "first@example.com"}
    left = ok(client.get(f"/api/v1/apps/{pushed.app}/orphans"))
    assert [o["externalId"] for o in left] == [first]


def test_an_account_deleted_by_hand_is_recreated_and_pushed_again(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    old = account_id(downstream, TAYLOR)
    downstream.scim.delete_user(old)
    full_reconcile(client, runtime, pushed.app)
    new = account_id(downstream, TAYLOR)
    assert new != old
    member_ids = downstream.scim.member_ids("AppPushGroup")
    assert member_ids is not None and new in member_ids
    app_user = ok(client.get(f"/api/v1/apps/{pushed.app}/users/{pushed.taylor}"))
    assert app_user["externalId"] == new
    # And the recorded membership follows the new account: removal reaches downstream.
    remove_member(runtime, pushed.push_group, pushed.taylor)
    converge(runtime)
    assert downstream.scim.members("AppPushGroup") == {ALEX}


def test_a_reconcile_with_no_drift_sends_no_write(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, pushed: Pushed
) -> None:
    downstream.transport.clear()
    full_reconcile(client, runtime, pushed.app)
    assert downstream.transport.writes() == []
    assert downstream.transport.count("GET") > 0  # it did read the downstream back
