"""Group assignments, direct assignments and app users, with the keys they enqueue."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appkit import (
    add_group,
    add_link,
    add_user,
    clear_keys,
    create_app,
    error_code,
    event_rows,
    statements,
    user_keys,
)
from conftest import make_runtime
from headwater.db.events import SYSTEM
from headwater.errors import HeadwaterError
from headwater.runtime import Runtime
from headwater.services import apps, assignments
from headwater.services.assignments import UserAssignmentSpec


@pytest.fixture
def app(client: TestClient) -> dict[str, Any]:
    return create_app(client)


def _groups_url(app: dict[str, Any], group_id: str = "") -> str:
    return f"/api/v1/apps/{app['id']}/groups" + (f"/{group_id}" if group_id else "")


def _users_url(app: dict[str, Any], user_id: str = "") -> str:
    return f"/api/v1/apps/{app['id']}/users" + (f"/{user_id}" if user_id else "")


# --- Group assignments ------------------------------------------------------------------------


def test_assign_group_with_empty_body_picks_next_priority(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    first, second = add_group(runtime, "Accounting"), add_group(runtime, "Sales")
    empty = client.put(_groups_url(app, first), headers={"Content-Type": "application/json"})
    assert empty.status_code == 200, empty.text
    body = empty.json()
    assert (body["id"], body["priority"], body["profile"]) == (first, 0, {})
    assert body["lastUpdated"].endswith("Z")
    assert set(body["_links"]) == {"app", "self", "group"}
    no_body = client.put(_groups_url(app, second)).json()
    assert no_body["priority"] == 1


def test_reassigning_updates_priority_and_profile(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    group = add_group(runtime, "Accounting")
    client.put(_groups_url(app, group), json={"priority": 5, "profile": {"role": "clerk"}})
    moved = client.put(_groups_url(app, group), json={"priority": 2}).json()
    assert (moved["priority"], moved["profile"]) == (2, {"role": "clerk"})
    fetched = client.get(_groups_url(app, group)).json()
    assert fetched == moved
    types = [e.event_type for e in event_rows(runtime, "group.application_assignment")]
    assert types == ["group.application_assignment.add", "group.application_assignment.update"]


@pytest.mark.parametrize(
    "body", [{"priority": 101}, {"priority": -1}, {"priority": "1"}, {"profile": []}, [1]]
)
def test_invalid_group_assignment_is_refused(
    client: TestClient, runtime: Runtime, app: dict[str, Any], body: Any
) -> None:
    group = add_group(runtime, "Accounting")
    response = client.put(_groups_url(app, group), json=body)
    assert (response.status_code, error_code(response)) == (400, "E0000001")
    assert client.get(_groups_url(app, group)).status_code == 404


def test_unknown_group_or_app_is_not_found(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    assert client.put(_groups_url(app, "00gMissing")).status_code == 404
    group = add_group(runtime, "Accounting")
    assert client.put(f"/api/v1/apps/0oaMissing/groups/{group}").status_code == 404
    assert client.delete(_groups_url(app, group)).status_code == 404
    assert client.get("/api/v1/groups/00gMissing/apps").status_code == 404


def test_list_orders_by_priority_then_id_across_pages(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    groups = [add_group(runtime, f"G{i}") for i in range(5)]
    for group, priority in zip(groups, [3, 1, 3, 0, 1], strict=True):
        client.put(_groups_url(app, group), json={"priority": priority})
    expected = sorted(zip([3, 1, 3, 0, 1], groups, strict=True))
    seen, url = [], _groups_url(app) + "?limit=2"
    while url:
        response = client.get(url)
        seen += [(row["priority"], row["id"]) for row in response.json()]
        nexts = [link for link in response.headers.get_list("link") if 'rel="next"' in link]
        url = nexts[0].split(">")[0].lstrip("<") if nexts else ""
    assert seen == expected
    assert [r["id"] for r in client.get(_groups_url(app) + "?q=g1").json()] == [groups[1]]
    assert client.get(_groups_url(app) + "?after=bogus").status_code == 400


def test_assignment_enqueues_every_member_and_unassignment_too(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    members = [add_user(runtime, f"m{i}@example.com") for i in range(3)]
    outsider = add_user(runtime, "out@example.com")
    group = add_group(runtime, "Accounting", members)
    clear_keys(runtime)
    client.put(_groups_url(app, group))
    assert user_keys(runtime, app["id"]) == set(members)
    assert outsider not in user_keys(runtime, app["id"])
    clear_keys(runtime)
    deleted = client.delete(_groups_url(app, group))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert user_keys(runtime, app["id"]) == set(members)
    assert client.get(_groups_url(app, group)).status_code == 404
    removed = event_rows(runtime, "group.application_assignment.remove")
    assert {t["id"] for t in removed[0].targets} == {app["id"], group}


@pytest.mark.parametrize("size", [1, 40])
def test_group_fan_out_is_one_insert_whatever_the_size(
    client: TestClient, runtime: Runtime, app: dict[str, Any], size: int
) -> None:
    members = [add_user(runtime, f"u{i}@example.com") for i in range(size)]
    group = add_group(runtime, "Big", members)
    with statements(runtime) as seen:
        assert client.put(_groups_url(app, group)).status_code == 200
    inserts = [s for s in seen if s.upper().startswith("INSERT INTO RECONCILE_KEYS")]
    member_inserts = [s for s in inserts if "memberships" in s.lower()]
    # One INSERT ... SELECT for all the members' keys (another one covers push mappings).
    assert (len(member_inserts), len(inserts)) == (1, 2)
    assert user_keys(runtime, app["id"]) == set(members)


def test_group_apps_lists_assigned_apps(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    other = create_app(client, "Other")
    group = add_group(runtime, "Accounting")
    client.put(_groups_url(app, group))
    listed = client.get(f"/api/v1/groups/{group}/apps").json()
    assert [a["id"] for a in listed] == [app["id"]]
    assert listed[0]["label"] == "Wiki" and other["id"] != app["id"]


# --- Direct assignments and app users ---------------------------------------------------------


def test_direct_assignment_returns_app_user(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    user = add_user(runtime, "dana@example.com")
    body = {"id": user, "scope": "USER", "profile": {"role": "editor"}}
    response = client.post(_users_url(app), json=body)
    assert response.status_code == 200, response.text
    app_user = response.json()
    assert (app_user["id"], app_user["scope"], app_user["externalId"]) == (user, "USER", None)
    # A bookmark app has no connection: sign-on only, nothing to provision.
    assert (app_user["status"], app_user["syncState"]) == ("ACTIVE", "DISABLED")
    assert app_user["credentials"] == {"userName": "dana@example.com"}
    assert app_user["profile"] == {"role": "editor"}
    assert set(app_user["_links"]) == {"app", "user"}
    assert app_user["passwordChanged"] is None and app_user["created"].endswith("Z")
    assert user_keys(runtime, app["id"]) == {user}
    (added,) = event_rows(runtime, "application.user_membership.add")
    assert {t["type"] for t in added.targets} == {"AppInstance", "User"}


def test_direct_assignment_rules(client: TestClient, runtime: Runtime, app: dict[str, Any]) -> None:
    user = add_user(runtime, "eli@example.com")
    assert client.post(_users_url(app), json={"id": user}).status_code == 200
    again = client.post(_users_url(app), json={"id": user})
    assert (again.status_code, error_code(again)) == (409, "E0000062")
    gone = client.post(_users_url(app), json={"id": "00uMissing"})
    assert (gone.status_code, error_code(gone)) == (404, "E0000007")
    inactive = add_user(runtime, "old@example.com", status="DEPROVISIONED")
    refused = client.post(_users_url(app), json={"id": inactive})
    assert (refused.status_code, error_code(refused)) == (400, "E0000117")
    staged = add_user(runtime, "new@example.com", status="STAGED")
    assert client.post(_users_url(app), json={"id": staged}).status_code == 200
    long_name = client.post(
        _users_url(app),
        json={"id": add_user(runtime, "x@example.com"), "credentials": {"userName": "x" * 101}},
    )
    assert long_name.status_code == 400
    assert client.post(_users_url(app), json={"scope": "USER"}).status_code == 400


def test_app_users_is_the_union_of_direct_and_group_grants(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    direct = add_user(runtime, "a-direct@example.com")
    both = add_user(runtime, "b-both@example.com")
    member = add_user(runtime, "c-member@example.com")
    add_user(runtime, "d-none@example.com")
    low = add_group(runtime, "Low", [both, member])
    high = add_group(runtime, "High", [member])
    client.put(_groups_url(app, low), json={"priority": 5, "profile": {"role": "low", "x": 1}})
    client.put(_groups_url(app, high), json={"priority": 1, "profile": {"role": "high"}})
    client.post(_users_url(app), json={"id": direct})
    client.post(_users_url(app), json={"id": both, "profile": {"role": "mine"}})
    listed = {u["id"]: u for u in client.get(_users_url(app)).json()}
    assert set(listed) == {direct, both, member}
    assert (listed[direct]["scope"], listed[both]["scope"]) == ("USER", "USER")
    assert listed[member]["scope"] == "GROUP"
    assert listed[member]["profile"] == {"role": "high"}
    assert listed[member]["_links"]["group"]["name"] == "High"
    assert listed[both]["profile"] == {"role": "mine", "x": 1}
    assert "group" not in listed[both]["_links"]
    assert [u["id"] for u in client.get(_users_url(app) + "?q=B-").json()] == [both]


def test_app_users_pages_by_user_id(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    users = [add_user(runtime, f"p{i}@example.com") for i in range(5)]
    client.put(_groups_url(app, add_group(runtime, "All", users)))
    seen, url = [], _users_url(app) + "?limit=2"
    while url:
        response = client.get(url)
        seen += [u["id"] for u in response.json()]
        nexts = [link for link in response.headers.get_list("link") if 'rel="next"' in link]
        url = nexts[0].split(">")[0].lstrip("<") if nexts else ""
    assert seen == sorted(users)


@pytest.mark.parametrize("size", [2, 25])
def test_app_users_page_costs_the_same_queries_for_any_size(
    client: TestClient, runtime: Runtime, app: dict[str, Any], size: int
) -> None:
    users = [add_user(runtime, f"n{i}@example.com") for i in range(size)]
    client.put(_groups_url(app, add_group(runtime, "All", users[: size // 2])))
    for user in users[size // 2 :]:
        client.post(_users_url(app), json={"id": user})
    with statements(runtime) as seen:
        assert len(client.get(_users_url(app)).json()) == size
    selects = [s for s in seen if s.upper().startswith("SELECT")]
    # token, app, page of ids, users, links, direct, groups, connection
    assert len(selects) <= 9, selects


def test_status_follows_the_recorded_account(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    client.post(
        f"/api/v1/apps/{app['id']}/connections/default?activate=false",
        json={"baseUrl": "https://scim.example.com", "profile": {"authScheme": "NONE"}},
    )
    staged, done, off, failed = (add_user(runtime, f"s{i}@example.com") for i in range(4))
    for user in (staged, done, off, failed):
        client.post(_users_url(app), json={"id": user})
    add_link(runtime, app["id"], done, external_id="d1", state="ACTIVE", sync_state="SYNCHRONIZED")
    add_link(runtime, app["id"], off, external_id="d2", state="INACTIVE", sync_state="SYNCHRONIZED")
    add_link(runtime, app["id"], failed, state="NONE", sync_state="ERROR")
    listed = {u["id"]: u for u in client.get(_users_url(app)).json()}
    states = {uid: (u["status"], u["syncState"], u["externalId"]) for uid, u in listed.items()}
    assert states == {
        staged: ("STAGED", "SYNCING", None),
        done: ("PROVISIONED", "SYNCHRONIZED", "d1"),
        off: ("INACTIVE", "SYNCHRONIZED", "d2"),
        failed: ("STAGED", "ERROR", None),
    }


def test_username_comes_from_template_or_override(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    url = f"/api/v1/apps/{app['id']}/provisioning/settings"
    client.put(url, json={"userNameTemplate": "${source.nickName}"})
    nick = add_user(runtime, "f@example.com", nickName="frank")
    plain = add_user(runtime, "g@example.com")
    named = add_user(runtime, "h@example.com")
    for user in (nick, plain):
        client.post(_users_url(app), json={"id": user})
    client.post(_users_url(app), json={"id": named, "credentials": {"userName": "HH"}})
    names = {u["id"]: u["credentials"]["userName"] for u in client.get(_users_url(app)).json()}
    # A template that cannot be evaluated falls back to the login.
    assert names == {nick: "frank", plain: "g@example.com", named: "HH"}


def test_updating_a_group_user_creates_a_direct_override(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    user = add_user(runtime, "ivy@example.com")
    group = add_group(runtime, "Staff", [user])
    client.put(_groups_url(app, group), json={"profile": {"role": "staff", "team": "a"}})
    clear_keys(runtime)
    updated = client.post(_users_url(app, user), json={"profile": {"role": "lead"}}).json()
    assert updated["scope"] == "USER"
    assert updated["profile"] == {"role": "lead", "team": "a"}
    again = client.post(_users_url(app, user), json={"profile": {"extra": 1}}).json()
    assert again["profile"] == {"role": "lead", "team": "a", "extra": 1}
    assert user_keys(runtime, app["id"]) == {user}
    nobody = add_user(runtime, "nobody@example.com")
    assert client.post(_users_url(app, nobody), json={"profile": {}}).status_code == 404
    types = [e.event_type for e in event_rows(runtime, "application.user_membership")]
    assert types == ["application.user_membership.update"] * 2


def test_unassigning_keeps_group_grants(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    member, loner = add_user(runtime, "j@example.com"), add_user(runtime, "k@example.com")
    client.put(_groups_url(app, add_group(runtime, "Staff", [member])))
    for user in (member, loner):
        client.post(_users_url(app), json={"id": user})
    clear_keys(runtime)
    assert client.delete(_users_url(app, member)).status_code == 204
    assert client.get(_users_url(app, member)).json()["scope"] == "GROUP"
    assert client.delete(_users_url(app, loner)).status_code == 204
    assert client.get(_users_url(app, loner)).status_code == 404
    assert client.delete(_users_url(app, loner)).status_code == 404
    assert user_keys(runtime, app["id"]) == {member, loner}
    assert len(event_rows(runtime, "application.user_membership.remove")) == 2


def test_app_links_list_active_assigned_apps(client: TestClient, runtime: Runtime) -> None:
    wiki, crm, off = (create_app(client, label) for label in ("Wiki", "CRM", "Off"))
    user = add_user(runtime, "lee@example.com")
    client.post(f"/api/v1/apps/{wiki['id']}/users", json={"id": user})
    client.put(f"/api/v1/apps/{crm['id']}/groups/{add_group(runtime, 'Sales', [user])}")
    client.post(f"/api/v1/apps/{off['id']}/users", json={"id": user})
    client.post(f"/api/v1/apps/{off['id']}/lifecycle/deactivate")
    links = client.get(f"/api/v1/users/{user}/appLinks").json()
    assert [(link["label"], link["sortOrder"]) for link in links] == [("CRM", 0), ("Wiki", 1)]
    assert links[1]["appInstanceId"] == wiki["id"]
    assert links[1]["linkUrl"] == "https://wiki.example.com"
    assert (links[1]["credentialsSetup"], links[1]["hidden"]) == (False, False)
    by_login = client.get("/api/v1/users/LEE@example.com/appLinks").json()
    assert by_login == links
    assert client.get("/api/v1/users/00uMissing/appLinks").status_code == 404


@pytest.mark.postgres
def test_racing_direct_assignments_end_in_one_409(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL lets two transactions race to the same key; the loser is told, not a 500."""
    runtime = make_runtime(pg_url, tmp_path)
    try:
        with runtime.database.transaction() as session:
            app = apps.create_app(session, SYSTEM, apps.AppSpec("Race", "race"), activate=True)
        user = add_user(runtime, "race@example.com")
        outcomes: list[str] = []

        def second_request() -> None:
            try:
                with runtime.database.transaction() as other:
                    assignments.assign_user(other, SYSTEM, app.id, user, UserAssignmentSpec())
                outcomes.append("assigned")
            except HeadwaterError as exc:
                outcomes.append(exc.code)

        with runtime.database.transaction() as first:
            assignments.assign_user(first, SYSTEM, app.id, user, UserAssignmentSpec())
            racer = threading.Thread(target=second_request)
            racer.start()
            time.sleep(0.3)  # the racer now waits on the primary key held by this transaction
        racer.join(timeout=10)
        assert outcomes == ["E0000062"]
    finally:
        runtime.close()
