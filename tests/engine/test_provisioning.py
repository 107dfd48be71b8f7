"""Provisioning against a real scim2-server (in process): the directory changes through the
services, as an admin's API call would change it; a worker converges; the downstream is read
back over SCIM and the requests Headwater sent are recorded. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from headwater.db import outbox
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    add_member,
    assign_group,
    assign_user,
    change_status,
    clear_keys,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    queued_keys,
    remove_member,
    unassign_user,
    update_user,
)

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.johnson@example.com"


@pytest.fixture
def world(runtime: Runtime, downstream: InProcessScim) -> dict[str, str]:
    """Taylor and Alex (provisioned) and Sam (staged) in Accounting; an app, nothing assigned."""
    taylor = create_user(runtime, TAYLOR, title="Accountant", department="Finance")
    alex = create_user(runtime, ALEX)
    staged = create_user(runtime, "sam.staged@example.com", activate=False)
    accounting = create_group(runtime, "Accounting", [taylor, alex, staged])
    app_id = create_scim_app(runtime, downstream.base_url)
    converge(runtime)
    downstream.transport.clear()
    return {
        "taylor": taylor,
        "alex": alex,
        "staged": staged,
        "accounting": accounting,
        "app": app_id,
    }


def test_assigning_a_group_creates_exactly_its_active_members(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    """Members get one account each with the mapped attributes; STAGED members get nothing;
    a second reconcile sends no write."""
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    users = downstream.scim.by_user_name()
    assert set(users) == {TAYLOR, ALEX}
    taylor = users[TAYLOR]
    assert taylor["active"] is True
    assert (taylor["name"]["givenName"], taylor["name"]["familyName"]) == ("Taylor", "Smith")
    assert taylor["emails"][0]["value"] == TAYLOR
    assert taylor["title"] == "Accountant"
    assert taylor["externalId"] == world["taylor"]
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['taylor']}"))
    assert app_user["externalId"] == taylor["id"]
    assert app_user["scope"] == "GROUP"
    assert app_user["syncState"] == "SYNCHRONIZED"

    downstream.transport.clear()
    with runtime.database.transaction() as session:
        outbox.enqueue_app(session, world["app"])
    converge(runtime)
    assert downstream.transport.writes() == []


def test_existing_downstream_user_is_linked_not_duplicated(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    existing = downstream.scim.create_user(TAYLOR)
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    users = downstream.scim.by_user_name()  # fails on two accounts with one userName
    assert set(users) == {TAYLOR, ALEX}
    assert users[TAYLOR]["id"] == existing
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['taylor']}"))
    assert app_user["externalId"] == existing
    # Headwater created Alex's account only: Taylor's was found and linked, never POSTed.
    created = [
        sent.body["userName"] for sent in downstream.transport.requests("POST", resource="Users")
    ]
    assert created == [ALEX]


def test_profile_change_sends_one_update(
    runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    downstream.transport.clear()
    update_user(runtime, world["taylor"], title="Controller")
    converge(runtime)
    assert [(s.method, s.resource) for s in downstream.transport.writes()] == [
        ("PUT", "Users/{id}")
    ]
    assert downstream.scim.by_user_name()[TAYLOR]["title"] == "Controller"


def test_patch_update_method_is_honoured(
    runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    app_id = create_scim_app(runtime, downstream.base_url, "Patchy", update_method="PATCH")
    assign_group(runtime, app_id, world["accounting"])
    converge(runtime)
    downstream.transport.clear()
    update_user(runtime, world["alex"], title="Boss")
    converge(runtime)
    assert [(s.method, s.resource) for s in downstream.transport.writes()] == [
        ("PATCH", "Users/{id}")
    ]
    assert downstream.scim.by_user_name()[ALEX]["title"] == "Boss"


def test_leaving_the_last_granting_group_deactivates_and_reassignment_reactivates_same_id(
    runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    first_id = downstream.scim.by_user_name()[TAYLOR]["id"]
    remove_member(runtime, world["accounting"], world["taylor"])
    converge(runtime)
    assert downstream.scim.by_user_name()[TAYLOR]["active"] is False
    add_member(runtime, world["accounting"], world["taylor"])
    converge(runtime)
    users = downstream.scim.by_user_name()
    assert users[TAYLOR]["active"] is True and users[TAYLOR]["id"] == first_id
    assert len(users) == 2


def test_user_deactivation_deactivates_everywhere_and_reactivation_restores(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    """Two apps, each with its own downstream server: deactivating Taylor reaches both."""
    elsewhere = InProcessScim("elsewhere.test").serve(runtime)
    second = create_scim_app(runtime, elsewhere.base_url, "Second")
    assign_group(runtime, world["app"], world["accounting"])
    assign_user(runtime, second, world["taylor"])
    converge(runtime)
    here_before = downstream.scim.by_user_name()[TAYLOR]
    there_before = elsewhere.scim.by_user_name()[TAYLOR]
    assert here_before["active"] is True and there_before["active"] is True

    change_status(runtime, world["taylor"], "deactivate")
    converge(runtime)
    assert downstream.scim.by_user_name()[TAYLOR]["active"] is False
    assert elsewhere.scim.by_user_name()[TAYLOR]["active"] is False

    change_status(runtime, world["taylor"], "activate")
    converge(runtime)
    here = downstream.scim.by_user_name()[TAYLOR]
    assert here["active"] is True and here["id"] == here_before["id"]
    # Okta removes direct assignments on deactivation: only the group grant comes back, so the
    # second app's account stays deactivated (kept, same id) and Taylor is no longer its user.
    there = elsewhere.scim.by_user_name()[TAYLOR]
    assert there["active"] is False and there["id"] == there_before["id"]
    app_users = ok(client.get(f"/api/v1/apps/{second}/users"))
    assert world["taylor"] not in [u["id"] for u in app_users]


def test_direct_and_group_assignment_scope_and_removal_of_direct(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    app_id = world["app"]
    assign_group(runtime, app_id, world["accounting"])
    assign_user(runtime, app_id, world["taylor"], profile={"title": "Direct title"})
    converge(runtime)
    app_user = ok(client.get(f"/api/v1/apps/{app_id}/users/{world['taylor']}"))
    assert app_user["scope"] == "USER"
    assert downstream.scim.by_user_name()[TAYLOR]["title"] == "Direct title"
    unassign_user(runtime, app_id, world["taylor"])
    converge(runtime)
    assert downstream.scim.by_user_name()[TAYLOR]["active"] is True  # still granted by Accounting
    assert ok(client.get(f"/api/v1/apps/{app_id}/users/{world['taylor']}"))["scope"] == "GROUP"


def test_removing_the_only_direct_assignment_deactivates(
    runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    app_id = world["app"]
    assign_user(runtime, app_id, world["alex"])
    converge(runtime)
    assert downstream.scim.by_user_name()[ALEX]["active"] is True
    unassign_user(runtime, app_id, world["alex"])
    converge(runtime)
    assert downstream.scim.by_user_name()[ALEX]["active"] is False


def test_profile_comes_from_the_highest_priority_group(
    runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    app_id = world["app"]
    auditors = create_group(runtime, "Auditors", [world["taylor"]])
    title = {"title": "From Accounting"}
    assign_group(runtime, app_id, world["accounting"], priority=5, profile=title)
    assign_group(runtime, app_id, auditors, priority=1, profile={"title": "From Auditors"})
    converge(runtime)
    assert downstream.scim.by_user_name()[TAYLOR]["title"] == "From Auditors"
    # Leaving one of two granting groups keeps the account, with the other group's profile.
    remove_member(runtime, auditors, world["taylor"])
    converge(runtime)
    taylor = downstream.scim.by_user_name()[TAYLOR]
    assert taylor["active"] is True and taylor["title"] == "From Accounting"


def test_account_deleted_downstream_is_recreated_on_next_update(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    """A 404 on the update of a still-assigned user creates the account again."""
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    downstream.scim.delete_user(downstream.scim.by_user_name()[ALEX]["id"])
    update_user(runtime, world["alex"], title="Back")
    converge(runtime)
    alex = downstream.scim.by_user_name()[ALEX]
    assert alex["active"] is True and alex["title"] == "Back"
    app_user = ok(client.get(f"/api/v1/apps/{world['app']}/users/{world['alex']}"))
    assert app_user["externalId"] == alex["id"]


def test_provisioning_events_are_logged(
    client: TestClient, runtime: Runtime, world: dict[str, str]
) -> None:
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    remove_member(runtime, world["accounting"], world["taylor"])
    converge(runtime)
    logged = ok(client.get("/api/v1/logs", params={"limit": 1000}))
    types = {e["eventType"] for e in logged}
    assert "application.provision.user.push" in types
    assert "application.provision.user.deactivate" in types


def test_a_new_user_is_enqueued_only_where_its_groups_reach(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, world: dict[str, str]
) -> None:
    """A user created without groups touches no app (no key, nothing sent); created into an
    assigned group, it is provisioned like any new member."""
    assign_group(runtime, world["app"], world["accounting"])
    converge(runtime)
    clear_keys(runtime)

    loner = ok(client.post("/api/v1/users", json={"profile": _profile("lone@example.com")}))
    assert queued_keys(runtime) == set()
    joiner = ok(
        client.post(
            "/api/v1/users",
            json={"profile": _profile("joins@example.com"), "groupIds": [world["accounting"]]},
        )
    )
    assert queued_keys(runtime) == {(world["app"], "user", joiner["id"])}
    converge(runtime)
    created = downstream.scim.users()
    assert "joins@example.com" in {user["userName"] for user in created}
    assert loner["profile"]["login"] not in {user["userName"] for user in created}


def _profile(login: str) -> dict[str, str]:
    return {"login": login, "email": login, "firstName": "New", "lastName": "Person"}
