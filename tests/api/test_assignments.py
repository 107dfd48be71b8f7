"""Group assignments, direct assignments and app users, with the keys they enqueue."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from headwater import clock
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import assignments
from headwater.testing.toolkit import (
    api_client,
    assert_okta_error,
    assign_group,
    assign_user,
    change_status,
    clear_keys,
    create_app,
    create_group,
    create_scim_app,
    create_user,
    events,
    links,
    make_runtime,
    queued_subjects,
    statements,
    wait_for,
)


@pytest.fixture
def app(client: TestClient, runtime: Runtime) -> dict[str, Any]:
    app: dict[str, Any] = client.get(f"/api/v1/apps/{create_app(runtime)}").json()
    return app


def _record_link(runtime: Runtime, app_id: str, user_id: str, **values: Any) -> None:
    """A downstream account as the engine records it.

    Raw row, deliberately: only the engine records accounts (after talking to a downstream);
    these tests check how the API shows each recorded state, not how the engine reaches it.
    """
    now = clock.utcnow()
    row = {"external_id": None, "state": "NONE", "sync_state": "SYNCING", **values}
    with runtime.database.transaction() as session:
        session.add(
            t.AppUserLink(app_id=app_id, user_id=user_id, created=now, last_updated=now, **row)
        )


def _groups_url(app: dict[str, Any], group_id: str = "") -> str:
    return f"/api/v1/apps/{app['id']}/groups" + (f"/{group_id}" if group_id else "")


def _users_url(app: dict[str, Any], user_id: str = "") -> str:
    return f"/api/v1/apps/{app['id']}/users" + (f"/{user_id}" if user_id else "")


# --- Group assignments ------------------------------------------------------------------------


def test_assign_group_with_empty_body_picks_next_priority(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    first, second = create_group(runtime, "Accounting"), create_group(runtime, "Sales")
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
    group = create_group(runtime, "Accounting")
    client.put(_groups_url(app, group), json={"priority": 5, "profile": {"role": "clerk"}})
    moved = client.put(_groups_url(app, group), json={"priority": 2}).json()
    assert (moved["priority"], moved["profile"]) == (2, {"role": "clerk"})
    fetched = client.get(_groups_url(app, group)).json()
    assert fetched == moved
    types = [e.event_type for e in events(runtime, "group.application_assignment")]
    assert types == ["group.application_assignment.add", "group.application_assignment.update"]


@pytest.mark.parametrize(
    "body", [{"priority": 101}, {"priority": -1}, {"priority": "1"}, {"profile": []}, [1]]
)
def test_invalid_group_assignment_is_refused(
    client: TestClient, runtime: Runtime, app: dict[str, Any], body: Any
) -> None:
    group = create_group(runtime, "Accounting")
    response = client.put(_groups_url(app, group), json=body)
    assert_okta_error(response, 400, "E0000001")
    assert client.get(_groups_url(app, group)).status_code == 404


def test_unknown_group_or_app_is_not_found(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    assert client.put(_groups_url(app, "00gMissing")).status_code == 404
    group = create_group(runtime, "Accounting")
    assert client.put(f"/api/v1/apps/0oaMissing/groups/{group}").status_code == 404
    assert client.delete(_groups_url(app, group)).status_code == 404
    assert client.get("/api/v1/groups/00gMissing/apps").status_code == 404


def test_list_orders_by_priority_then_id_across_pages(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    groups = [create_group(runtime, f"G{i}") for i in range(5)]
    for group, priority in zip(groups, [3, 1, 3, 0, 1], strict=True):
        client.put(_groups_url(app, group), json={"priority": priority})
    expected = sorted(zip([3, 1, 3, 0, 1], groups, strict=True))
    seen, url = [], _groups_url(app) + "?limit=2"
    while url:
        response = client.get(url)
        seen += [(row["priority"], row["id"]) for row in response.json()]
        url = links(response).get("next", "")
    assert seen == expected
    assert [r["id"] for r in client.get(_groups_url(app) + "?q=g1").json()] == [groups[1]]
    assert_okta_error(client.get(_groups_url(app) + "?after=bogus"), 400, "E0000001")


def test_assignment_enqueues_every_member_and_unassignment_too(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    members = [create_user(runtime, f"m{i}@example.com") for i in range(3)]
    outsider = create_user(runtime, "out@example.com")
    group = create_group(runtime, "Accounting", members)
    clear_keys(runtime)  # creating the members enqueued their own keys
    client.put(_groups_url(app, group))
    assert queued_subjects(runtime, app["id"]) == set(members)
    assert outsider not in queued_subjects(runtime, app["id"])
    clear_keys(runtime)
    deleted = client.delete(_groups_url(app, group))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert queued_subjects(runtime, app["id"]) == set(members)
    assert client.get(_groups_url(app, group)).status_code == 404
    removed = events(runtime, "group.application_assignment.remove")
    assert {t["id"] for t in removed[0].targets} == {app["id"], group}


@pytest.mark.parametrize("size", [1, 40])
def test_group_fan_out_is_one_insert_whatever_the_size(
    client: TestClient, runtime: Runtime, app: dict[str, Any], size: int
) -> None:
    members = [create_user(runtime, f"u{i}@example.com") for i in range(size)]
    group = create_group(runtime, "Big", members)
    with statements(runtime) as seen:
        assert client.put(_groups_url(app, group)).status_code == 200
    inserts = [s for s in seen if s.upper().startswith("INSERT INTO RECONCILE_KEYS")]
    member_inserts = [s for s in inserts if "memberships" in s.lower()]
    # One INSERT ... SELECT for all the members' keys (another one covers push mappings).
    assert (len(member_inserts), len(inserts)) == (1, 2)
    assert queued_subjects(runtime, app["id"]) == set(members)


def test_group_apps_lists_assigned_apps(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    other = create_app(runtime, "Other")
    group = create_group(runtime, "Accounting")
    client.put(_groups_url(app, group))
    listed = client.get(f"/api/v1/groups/{group}/apps").json()
    assert [a["id"] for a in listed] == [app["id"]]
    assert listed[0]["label"] == "Wiki" and other != app["id"]


# --- Direct assignments and app users ---------------------------------------------------------


def test_direct_assignment_returns_app_user(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    user = create_user(runtime, "dana@example.com")
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
    assert queued_subjects(runtime, app["id"]) == {user}
    (added,) = events(runtime, "application.user_membership.add")
    assert {t["type"] for t in added.targets} == {"AppInstance", "User"}


def test_direct_assignment_rules(client: TestClient, runtime: Runtime, app: dict[str, Any]) -> None:
    user = create_user(runtime, "eli@example.com")
    assert client.post(_users_url(app), json={"id": user}).status_code == 200
    again = client.post(_users_url(app), json={"id": user})
    assert_okta_error(again, 409, "E0000062")
    gone = client.post(_users_url(app), json={"id": "00uMissing"})
    assert_okta_error(gone, 404, "E0000007")
    inactive = create_user(runtime, "old@example.com")
    change_status(runtime, inactive, "deactivate")
    refused = client.post(_users_url(app), json={"id": inactive})
    assert_okta_error(refused, 400, "E0000117")
    staged = create_user(runtime, "new@example.com", activate=False)
    assert client.post(_users_url(app), json={"id": staged}).status_code == 200
    long_name = client.post(
        _users_url(app),
        json={"id": create_user(runtime, "x@example.com"), "credentials": {"userName": "x" * 101}},
    )
    assert_okta_error(long_name, 400, "E0000001")
    assert_okta_error(client.post(_users_url(app), json={"scope": "USER"}), 400, "E0000001")


def test_app_users_is_the_union_of_direct_and_group_grants(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    direct = create_user(runtime, "a-direct@example.com")
    both = create_user(runtime, "b-both@example.com")
    member = create_user(runtime, "c-member@example.com")
    create_user(runtime, "d-none@example.com")
    low = create_group(runtime, "Low", [both, member])
    high = create_group(runtime, "High", [member])
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
    users = [create_user(runtime, f"p{i}@example.com") for i in range(5)]
    client.put(_groups_url(app, create_group(runtime, "All", users)))
    seen, url = [], _users_url(app) + "?limit=2"
    while url:
        response = client.get(url)
        seen += [u["id"] for u in response.json()]
        url = links(response).get("next", "")
    assert seen == sorted(users)


@pytest.mark.parametrize("size", [2, 25])
def test_app_users_page_costs_the_same_queries_for_any_size(
    client: TestClient, runtime: Runtime, app: dict[str, Any], size: int
) -> None:
    users = [create_user(runtime, f"n{i}@example.com") for i in range(size)]
    client.put(_groups_url(app, create_group(runtime, "All", users[: size // 2])))
    for user in users[size // 2 :]:
        client.post(_users_url(app), json={"id": user})
    # A first request also records the token's use; make it before counting.
    assert client.get(_users_url(app)).status_code == 200
    with statements(runtime) as seen:
        assert len(client.get(_users_url(app)).json()) == size
    selects = [s for s in seen if s.upper().startswith("SELECT")]
    # token, app, page of ids, users, links, direct, groups, connection
    assert len(selects) <= 9, selects


def test_status_follows_the_recorded_account(client: TestClient, runtime: Runtime) -> None:
    # A connection, even disabled, makes the app one that provisions.
    app_id = create_scim_app(runtime, "https://scim.example.com/v2", enabled=False)
    staged, done, off, failed = (create_user(runtime, f"s{i}@example.com") for i in range(4))
    for user in (staged, done, off, failed):
        assign_user(runtime, app_id, user)
    _record_link(runtime, app_id, done, external_id="d1", state="ACTIVE", sync_state="SYNCHRONIZED")
    _record_link(
        runtime, app_id, off, external_id="d2", state="INACTIVE", sync_state="SYNCHRONIZED"
    )
    _record_link(runtime, app_id, failed, state="NONE", sync_state="ERROR")
    listed = {u["id"]: u for u in client.get(f"/api/v1/apps/{app_id}/users").json()}
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
    nick = create_user(runtime, "f@example.com", nickName="frank")
    plain = create_user(runtime, "g@example.com")
    named = create_user(runtime, "h@example.com")
    for user in (nick, plain):
        client.post(_users_url(app), json={"id": user})
    client.post(_users_url(app), json={"id": named, "credentials": {"userName": "HH"}})
    names = {u["id"]: u["credentials"]["userName"] for u in client.get(_users_url(app)).json()}
    # A template that cannot be evaluated falls back to the login.
    assert names == {nick: "frank", plain: "g@example.com", named: "HH"}


def test_updating_a_group_user_creates_a_direct_override(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    user = create_user(runtime, "ivy@example.com")
    group = create_group(runtime, "Staff", [user])
    client.put(_groups_url(app, group), json={"profile": {"role": "staff", "team": "a"}})
    clear_keys(runtime)
    updated = client.post(_users_url(app, user), json={"profile": {"role": "lead"}}).json()
    assert updated["scope"] == "USER"
    assert updated["profile"] == {"role": "lead", "team": "a"}
    again = client.post(_users_url(app, user), json={"profile": {"extra": 1}}).json()
    assert again["profile"] == {"role": "lead", "team": "a", "extra": 1}
    assert queued_subjects(runtime, app["id"]) == {user}
    nobody = create_user(runtime, "nobody@example.com")
    assert client.post(_users_url(app, nobody), json={"profile": {}}).status_code == 404
    types = [e.event_type for e in events(runtime, "application.user_membership")]
    assert types == ["application.user_membership.update"] * 2


def test_unassigning_keeps_group_grants(
    client: TestClient, runtime: Runtime, app: dict[str, Any]
) -> None:
    member, loner = create_user(runtime, "j@example.com"), create_user(runtime, "k@example.com")
    client.put(_groups_url(app, create_group(runtime, "Staff", [member])))
    for user in (member, loner):
        client.post(_users_url(app), json={"id": user})
    clear_keys(runtime)
    assert client.delete(_users_url(app, member)).status_code == 204
    assert client.get(_users_url(app, member)).json()["scope"] == "GROUP"
    assert client.delete(_users_url(app, loner)).status_code == 204
    assert client.get(_users_url(app, loner)).status_code == 404
    assert client.delete(_users_url(app, loner)).status_code == 404
    assert queued_subjects(runtime, app["id"]) == {member, loner}
    assert len(events(runtime, "application.user_membership.remove")) == 2


def test_app_links_list_active_assigned_apps(client: TestClient, runtime: Runtime) -> None:
    wiki, crm = create_app(runtime, "Wiki"), create_app(runtime, "CRM")
    off = create_app(runtime, "Off", activate=False)
    user = create_user(runtime, "lee@example.com")
    assign_user(runtime, wiki, user)
    assign_group(runtime, crm, create_group(runtime, "Sales", [user]))
    assign_user(runtime, off, user)
    app_links = client.get(f"/api/v1/users/{user}/appLinks").json()
    assert [(link["label"], link["sortOrder"]) for link in app_links] == [("CRM", 0), ("Wiki", 1)]
    assert app_links[1]["appInstanceId"] == wiki
    assert app_links[1]["linkUrl"] == "https://wiki.example.com"
    assert (app_links[1]["credentialsSetup"], app_links[1]["hidden"]) == (False, False)
    by_login = client.get("/api/v1/users/LEE@example.com/appLinks").json()
    assert by_login == app_links
    assert client.get("/api/v1/users/00uMissing/appLinks").status_code == 404


class _RolledBack(Exception):
    """Raised to roll the blocking transaction back."""


def _inserts_waiting_on_a_lock(runtime: Runtime) -> int:
    """Backends of this database blocked on a lock inside an assignment INSERT."""
    with runtime.database.read() as session:
        queries = session.execute(
            text(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalars()
        return sum("INSERT INTO app_user_assignments" in query for query in queries)


@pytest.mark.postgres
def test_racing_direct_assignments_end_in_one_200_and_one_409(pg_url: str, tmp_path: Path) -> None:
    """Two API requests assign the same user at the same moment on PostgreSQL.

    A third transaction holds the assignment's key (uncommitted) until both requests are
    blocked on it inside their INSERT: both have passed the "already assigned?" check, so the
    race is real. Once it rolls back, one request wins (200) and the other, blocked on the
    winner's row, is told 409 E0000062, not a 500.
    """
    runtime = make_runtime(pg_url, tmp_path)
    try:
        app_id = create_app(runtime, "Race")
        user = create_user(runtime, "race@example.com")
        answers: list[httpx.Response] = []
        with api_client(runtime) as client:
            client.get("/api/v1/apps")  # the token's first use is recorded now, not in the race

            def request() -> None:
                answers.append(client.post(f"/api/v1/apps/{app_id}/users", json={"id": user}))

            racers = [threading.Thread(target=request) for _ in range(2)]
            with pytest.raises(_RolledBack), runtime.database.transaction() as blocker:
                spec = assignments.UserAssignmentSpec()
                assignments.assign_user(blocker, SYSTEM, app_id, user, spec)
                for racer in racers:
                    racer.start()
                wait_for(
                    lambda: _inserts_waiting_on_a_lock(runtime) == 2,
                    "both requests to block inside their INSERT",
                    timeout=15,
                    interval=0.05,
                )
                assert answers == []  # both still in flight
                raise _RolledBack
            for racer in racers:
                racer.join(timeout=15)
        assert sorted(answer.status_code for answer in answers) == [200, 409]
        (loser,) = [answer for answer in answers if answer.status_code == 409]
        assert_okta_error(loser, 409, "E0000062")
        with runtime.database.read() as session:
            count = select(func.count()).select_from(t.AppUserAssignment)
            assert session.execute(count).scalar_one() == 1
        assert len(events(runtime, "application.user_membership.add")) == 1
    finally:
        runtime.close()
