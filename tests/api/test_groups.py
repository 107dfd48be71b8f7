"""Groups and memberships: Okta's shapes and rules, and the outbox keys each change leaves."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    assert_okta_error,
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_user,
    event_types,
    links,
    push_group,
    queued_keys,
    record_app_group,
    statements,
)


def test_create_returns_okta_group(client: TestClient, runtime: Runtime) -> None:
    response = client.post(
        "/api/v1/groups", json={"profile": {"name": "Accounting", "description": "Money people"}}
    )
    assert response.status_code == 200, response.text
    group = response.json()
    assert group["id"].startswith("00g")
    assert group["type"] == "OKTA_GROUP"
    assert group["objectClass"] == ["okta:user_group"]
    assert group["profile"] == {"name": "Accounting", "description": "Money people"}
    assert group["created"] == group["lastUpdated"] == group["lastMembershipUpdated"]
    for name, link in group["_links"].items():
        items = link if isinstance(link, list) else [link]
        assert all(isinstance(item["href"], str) for item in items), name
    assert group["_links"]["users"]["href"].endswith(f"/api/v1/groups/{group['id']}/users")
    assert event_types(runtime, target_id=group["id"]) == ["group.lifecycle.create"]


def test_names_are_unique_case_insensitively(client: TestClient, runtime: Runtime) -> None:
    create_group(runtime, "Accounting")
    duplicate = client.post("/api/v1/groups", json={"profile": {"name": "ACCOUNTING"}})
    body = assert_okta_error(duplicate, 400, "E0000001")
    assert body["errorCauses"][0]["errorSummary"].startswith("name: ")
    other = create_group(runtime, "Sales")
    rename = client.put(f"/api/v1/groups/{other}", json={"profile": {"name": "accounting"}})
    assert_okta_error(rename, 400, "E0000001")


@pytest.mark.parametrize(
    "body",
    [{}, {"profile": {}}, {"profile": {"name": ""}}, {"profile": {"name": 5}}, {"profile": []}],
)
def test_invalid_group_bodies(client: TestClient, body: dict[str, object]) -> None:
    assert_okta_error(client.post("/api/v1/groups", json=body), 400, "E0000001")
    assert client.get("/api/v1/groups").json() == []


def test_get_list_q_filter_and_pages(client: TestClient, runtime: Runtime) -> None:
    made = [create_group(runtime, name) for name in ("Acct", "Accounting", "Sales", "Ops")]
    assert_okta_error(client.get("/api/v1/groups/00gnope"), 404, "E0000007")
    assert client.get(f"/api/v1/groups/{made[2]}").json()["profile"]["name"] == "Sales"
    assert [g["id"] for g in client.get("/api/v1/groups?q=acc").json()] == made[:2]
    by_type = client.get("/api/v1/groups?" + quote('filter=type eq "OKTA_GROUP"', safe="="))
    assert len(by_type.json()) == 4
    by_name = client.get("/api/v1/groups?" + quote('filter=profile.name eq "ops"', safe="="))
    assert [g["id"] for g in by_name.json()] == [made[3]]
    future = 'filter=lastMembershipUpdated gt "2999-01-01T00:00:00.000Z"'
    assert client.get("/api/v1/groups?" + quote(future, safe="=")).json() == []
    bad = client.get("/api/v1/groups?" + quote('filter=nope eq "x"', safe="="))
    assert_okta_error(bad, 400, "E0000001")
    seen, url = [], "/api/v1/groups?limit=3"
    while url:
        response = client.get(url)
        seen += [g["id"] for g in response.json()]
        url = links(response).get("next", "")
    assert seen == made


def test_put_replaces_profile_and_logs(client: TestClient, runtime: Runtime) -> None:
    group_id = create_group(runtime, "Accounting", description="old")
    group = client.get(f"/api/v1/groups/{group_id}").json()
    response = client.put(
        f"/api/v1/groups/{group['id']}", json={**group, "profile": {"name": "Finance"}}
    )
    assert response.status_code == 200
    assert response.json()["profile"] == {"name": "Finance", "description": None}
    assert response.json()["lastUpdated"] >= group["lastUpdated"]
    assert event_types(runtime, target_id=group_id)[-1] == "group.profile.update"
    missing = client.put("/api/v1/groups/00gnope", json={"profile": {"name": "x"}})
    assert_okta_error(missing, 404, "E0000007")


def test_rename_enqueues_push_mappings_of_the_group(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    group = create_group(runtime, "Accounting")
    mapping = push_group(runtime, app_id, group)
    clear_keys(runtime)
    client.put(
        f"/api/v1/groups/{group}",
        json={"profile": {"name": "Accounting", "description": "d"}},
    )
    assert queued_keys(runtime) == set()
    client.put(f"/api/v1/groups/{group}", json={"profile": {"name": "Finance"}})
    assert queued_keys(runtime) == {(app_id, "push", mapping)}


def test_memberships_add_list_remove(client: TestClient, runtime: Runtime) -> None:
    group = client.get(f"/api/v1/groups/{create_group(runtime, 'Accounting')}").json()
    users = [create_user(runtime, f"user{i}@example.com") for i in range(3)]
    for uid in users:
        response = client.put(f"/api/v1/groups/{group['id']}/users/{uid}")
        assert response.status_code == 204 and response.content == b""
    again = client.put(f"/api/v1/groups/{group['id']}/users/{users[0]}")
    assert again.status_code == 204
    page = client.get(f"/api/v1/groups/{group['id']}/users?limit=2")
    assert [u["id"] for u in page.json()] == users[:2]
    rest = client.get(links(page)["next"])
    assert [u["id"] for u in rest.json()] == users[2:]
    assert "next" not in links(rest)
    after_adds = client.get(f"/api/v1/groups/{group['id']}").json()["lastMembershipUpdated"]
    assert after_adds >= group["lastMembershipUpdated"]

    assert client.delete(f"/api/v1/groups/{group['id']}/users/{users[1]}").status_code == 204
    assert client.delete(f"/api/v1/groups/{group['id']}/users/{users[1]}").status_code == 204
    members = client.get(f"/api/v1/groups/{group['id']}/users").json()
    assert [u["id"] for u in members] == [users[0], users[2]]
    log = event_types(runtime, target_id=group["id"])
    assert log.count("group.user_membership.add") == 3
    assert log.count("group.user_membership.remove") == 1


def test_membership_by_login_and_unknown_ids(client: TestClient, runtime: Runtime) -> None:
    group = create_group(runtime, "Accounting")
    user = create_user(runtime, "ann@example.com")
    assert client.put(f"/api/v1/groups/{group}/users/ann@example.com").status_code == 204
    assert client.get(f"/api/v1/groups/{group}/users").json()[0]["id"] == user
    assert_okta_error(client.put(f"/api/v1/groups/{group}/users/00unope"), 404, "E0000007")
    assert_okta_error(client.put(f"/api/v1/groups/00gnope/users/{user}"), 404, "E0000007")
    assert_okta_error(client.get("/api/v1/groups/00gnope/users"), 404, "E0000007")


def test_membership_changes_enqueue_assigned_apps_and_push(
    client: TestClient, runtime: Runtime
) -> None:
    app_id, other_app = create_app(runtime, "Assigned"), create_app(runtime, "Other")
    group = create_group(runtime, "Accounting")
    assign_group(runtime, app_id, group)
    mapping = push_group(runtime, other_app, group)
    user = create_user(runtime, "ann@example.com")
    clear_keys(runtime)
    client.put(f"/api/v1/groups/{group}/users/{user}")
    expected = {(app_id, "user", user), (other_app, "push", mapping)}
    assert queued_keys(runtime) == expected
    clear_keys(runtime)
    client.put(f"/api/v1/groups/{group}/users/{user}")
    assert queued_keys(runtime) == set()
    client.delete(f"/api/v1/groups/{group}/users/{user}")
    assert queued_keys(runtime) == expected


def test_app_group_memberships_and_profile_are_not_editable(
    client: TestClient, runtime: Runtime
) -> None:
    app_id = create_app(runtime)
    app_group = record_app_group(runtime, app_id, "Downstream")
    user = create_user(runtime, "ann@example.com")
    assert_okta_error(client.put(f"/api/v1/groups/{app_group}/users/{user}"), 400, "E0000001")
    removal = client.delete(f"/api/v1/groups/{app_group}/users/{user}")
    assert_okta_error(removal, 400, "E0000001")
    rename = client.put(f"/api/v1/groups/{app_group}", json={"profile": {"name": "x"}})
    assert_okta_error(rename, 400, "E0000001")
    shown = client.get(f"/api/v1/groups/{app_group}").json()
    assert shown["type"] == "APP_GROUP"
    assert shown["_links"]["source"]["href"].endswith(f"/api/v1/apps/{app_id}")


def test_delete_group(client: TestClient, runtime: Runtime) -> None:
    app_id, push_app = create_app(runtime, "Assigned"), create_app(runtime, "Pushed")
    users = [create_user(runtime, f"user{i}@example.com") for i in range(2)]
    group = create_group(runtime, "Accounting", users)
    assign_group(runtime, app_id, group)
    mapping = push_group(runtime, push_app, group)
    clear_keys(runtime)

    assert client.delete(f"/api/v1/groups/{group}").status_code == 204
    assert_okta_error(client.get(f"/api/v1/groups/{group}"), 404, "E0000007")
    assert_okta_error(client.delete(f"/api/v1/groups/{group}"), 404, "E0000007")
    expected = {(app_id, "user", uid) for uid in users} | {(push_app, "push", mapping)}
    assert queued_keys(runtime) == expected
    with runtime.database.read() as session:
        row = session.get(t.PushMapping, mapping)
        assert row is not None and (row.status, row.source_group_id) == ("INACTIVE", None)
        assert session.execute(select(t.Membership)).first() is None
        assert session.execute(select(t.AppGroupAssignment)).first() is None
    assert event_types(runtime, target_id=group)[-1] == "group.lifecycle.delete"
    assert [u["id"] for u in client.get("/api/v1/users").json()] == users
    again = client.post("/api/v1/groups", json={"profile": {"name": "Accounting"}})
    assert again.status_code == 200, again.text


def test_push_target_app_group_cannot_be_deleted(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    source = create_group(runtime, "Accounting")
    target = record_app_group(runtime, app_id, "Accounting")
    push_group(runtime, app_id, source, target_group_id=target)
    body = assert_okta_error(client.delete(f"/api/v1/groups/{target}"), 400, "E0000001")
    assert "push mapping" in body["errorSummary"]
    assert client.get(f"/api/v1/groups/{target}").status_code == 200
    free = record_app_group(runtime, app_id, "Unmapped")
    assert client.delete(f"/api/v1/groups/{free}").status_code == 204


def _delete_statements(client: TestClient, runtime: Runtime, members: int) -> int:
    app_id = create_app(runtime, f"App{members}")
    user_ids = [create_user(runtime, f"m{members}x{i}@example.com") for i in range(members)]
    group = create_group(runtime, f"Group{members}", user_ids)
    assign_group(runtime, app_id, group)
    clear_keys(runtime)  # the assignment's own keys: only the deletion's are checked below
    # A first request also records the token's use; make it before counting.
    assert client.get(f"/api/v1/groups/{group}").status_code == 200
    with statements(runtime) as seen:
        assert client.delete(f"/api/v1/groups/{group}").status_code == 204
    assert {(app_id, "user", uid) for uid in user_ids} <= queued_keys(runtime)
    return len(seen)


def test_group_delete_fan_out_is_set_based(client: TestClient, runtime: Runtime) -> None:
    """The number of SQL statements does not grow with the number of members."""
    assert _delete_statements(client, runtime, 2) == _delete_statements(client, runtime, 12)
