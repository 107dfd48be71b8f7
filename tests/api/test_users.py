"""Users: create, read, list, filter, update, lifecycle and delete, as Okta answers them, and
the reconcile keys each change leaves in the outbox."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    USER_PASSWORD,
    assert_okta_error,
    assign_group,
    assign_user,
    change_status,
    clear_keys,
    create_app,
    create_group,
    create_user,
    create_users,
    event_types,
    links,
    push_group,
    queued_keys,
)

PASSWORD = USER_PASSWORD


def _create(
    client: TestClient,
    login: str,
    *,
    activate: bool | None = None,
    password: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``POST /api/v1/users``, the endpoint under test; returns the created user."""
    first = login.partition("@")[0].title()
    body: dict[str, Any] = {
        "profile": {"login": login, "email": login, "firstName": first, "lastName": "Tester"}
        | extra
    }
    if password is not None:
        body["credentials"] = {"password": {"value": password}}
    query = "" if activate is None else f"?activate={str(activate).lower()}"
    response = client.post(f"/api/v1/users{query}", json=body)
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


# --- Create ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activate", "password", "status"),
    [
        (None, PASSWORD, "ACTIVE"),
        (None, None, "PROVISIONED"),
        (True, None, "PROVISIONED"),
        (False, PASSWORD, "STAGED"),
        (False, None, "STAGED"),
    ],
)
def test_create_sets_okta_status(
    client: TestClient, activate: bool | None, password: str | None, status: str
) -> None:
    user = _create(client, "ann@example.com", activate=activate, password=password)
    assert user["status"] == status
    assert user["id"].startswith("00u") and len(user["id"]) == 20
    assert (user["activated"] is not None) == (status == "ACTIVE")
    assert (user["passwordChanged"] is not None) == (password is not None)
    assert user["lastLogin"] is None
    assert user["created"].endswith("Z") and len(user["created"]) == 24


def test_user_shape_never_shows_the_password(client: TestClient, runtime: Runtime) -> None:
    user = _create(client, "ann@example.com", password=PASSWORD, title="Dev")
    assert user["profile"] == {
        "login": "ann@example.com",
        "email": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Tester",
        "title": "Dev",
    }
    assert user["credentials"] == {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}}
    assert PASSWORD not in client.get(f"/api/v1/users/{user['id']}").text
    with runtime.database.read() as session:
        row = session.get(t.User, user["id"])
        assert row is not None and row.password_hash is not None
        assert row.password_hash.startswith("$argon2") and PASSWORD not in row.password_hash
    assert isinstance(user["type"]["id"], str)


def test_user_without_password_has_no_password_credential(client: TestClient) -> None:
    user = _create(client, "ann@example.com")
    assert user["credentials"] == {"provider": {"type": "OKTA", "name": "OKTA"}}


def test_single_user_links_its_legal_lifecycle_actions(client: TestClient) -> None:
    user = _create(client, "ann@example.com", password=PASSWORD)
    actions = user["_links"]
    assert set(actions) == {"self", "suspend", "deactivate"}
    assert actions["suspend"]["href"].endswith(f"/api/v1/users/{user['id']}/lifecycle/suspend")
    listed = client.get("/api/v1/users").json()[0]
    assert set(listed["_links"]) == {"self"}


def test_login_is_unique_case_insensitively(client: TestClient, runtime: Runtime) -> None:
    create_user(runtime, "ann@example.com")
    response = client.post("/api/v1/users", json={"profile": _profile("ANN@example.com")})
    body = assert_okta_error(response, 400, "E0000001")
    cause = "login: An object with this field already exists in the current organization"
    assert body["errorCauses"] == [{"errorSummary": cause}]


def test_create_with_group_ids_adds_memberships(client: TestClient, runtime: Runtime) -> None:
    group = create_group(runtime, "Accounting")
    user = client.post(
        "/api/v1/users", json={"profile": _profile("ann@example.com"), "groupIds": [group]}
    ).json()
    members = client.get(f"/api/v1/groups/{group}/users").json()
    assert [m["id"] for m in members] == [user["id"]]
    unknown = client.post(
        "/api/v1/users", json={"profile": _profile("bob@example.com"), "groupIds": ["00gnope"]}
    )
    assert_okta_error(unknown, 400, "E0000001")


def _profile(login: str) -> dict[str, str]:
    return {"login": login, "email": login, "firstName": "A", "lastName": "B"}


GOOD = _profile("a@example.com")


INVALID_BODIES: list[tuple[dict[str, object], str]] = [
    ({"profile": {k: v for k, v in GOOD.items() if k != "login"}}, "login"),
    ({"profile": {k: v for k, v in GOOD.items() if k != "email"}}, "email"),
    ({"profile": {**GOOD, "email": "nope"}}, "email"),
    ({"profile": {**GOOD, "login": "x" * 101}}, "login"),
    ({"profile": {**GOOD, "firstName": 7}}, "firstName"),
    ({"profile": {**GOOD, "custom": {"deep": 1}}}, "custom"),
    ({"profile": "nope"}, "profile"),
    ({}, "profile"),
    ({"profile": GOOD, "credentials": {"password": {"value": "1"}}}, "password"),
    ({"profile": GOOD, "credentials": {"password": {"hash": {"salt": "x"}}}}, "credentials"),
    ({"profile": GOOD, "groupIds": "00g1"}, "groupIds"),
]


def test_invalid_bodies_are_400_naming_the_field(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for body, field in INVALID_BODIES:
        with subtests.test(msg=str(body)[:80]):
            response = client.post("/api/v1/users", json=body)
            causes = assert_okta_error(response, 400, "E0000001")["errorCauses"]
            assert any(field in cause["errorSummary"] for cause in causes), causes
    assert client.get("/api/v1/users").json() == []


# --- Read and list -----------------------------------------------------------------------------


def test_get_by_id_and_by_login(client: TestClient, runtime: Runtime) -> None:
    user = create_user(runtime, "ann@example.com")
    assert client.get(f"/api/v1/users/{user}").json()["id"] == user
    assert client.get("/api/v1/users/ANN@example.com").json()["id"] == user
    assert_okta_error(client.get("/api/v1/users/00unknown"), 404, "E0000007")
    assert_okta_error(client.get("/api/v1/users/nobody@example.com"), 404, "E0000007")


def test_list_pages_with_cursor_links(client: TestClient, runtime: Runtime) -> None:
    made = [create_user(runtime, f"user{i}@example.com") for i in range(5)]
    seen: list[str] = []
    url = "/api/v1/users?limit=2"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        found = links(response)
        assert next(iter(found)) == "self"
        seen += [u["id"] for u in response.json()]
        url = found.get("next", "")
        pages += 1
        assert "after=" in url or not url
    assert seen == made and pages == 3


def test_limit_is_capped_and_defaulted(client: TestClient, runtime: Runtime) -> None:
    """A page holds 200 users by default and at most (Okta caps silently); the ``next`` link
    carries the limit actually used."""
    made = create_users(runtime, 203)
    for limit, size in (("0", 200), ("-5", 200), ("100000", 200), ("3", 3)):
        response = client.get(f"/api/v1/users?limit={limit}")
        assert response.status_code == 200, limit
        assert [u["id"] for u in response.json()] == made[:size], limit
        found = links(response)
        assert list(found) == ["self", "next"], limit
        assert found["self"].endswith(f"/api/v1/users?limit={limit}")
        following = parse_qs(urlsplit(found["next"]).query)
        assert following == {"limit": [str(size)], "after": [made[size - 1]]}, limit
        rest = client.get(found["next"])
        assert [u["id"] for u in rest.json()] == made[size : 2 * size], limit
        assert ("next" in links(rest)) == (2 * size < len(made)), limit
    assert_okta_error(client.get("/api/v1/users?limit=ten"), 400, "E0000001")
    assert_okta_error(client.get("/api/v1/users?after=not%20a%20cursor"), 400, "E0000001")


@pytest.fixture
def people(runtime: Runtime) -> dict[str, str]:
    ids = {
        "ann": create_user(runtime, "ann@example.com", password=PASSWORD, department="Sales"),
        "bob": create_user(runtime, "bob@example.com", activate=False, department="IT"),
        "cyd": create_user(runtime, "cyd@corp.example.org", department="Sales"),
        "dee": create_user(runtime, "dee@example.com", password=PASSWORD),
    }
    change_status(runtime, ids["dee"], "deactivate")
    return ids


FILTER_CASES: list[tuple[str, set[str]]] = [
    ("", {"ann", "bob", "cyd"}),
    ('filter=status eq "ACTIVE"', {"ann"}),
    ('filter=status eq "DEPROVISIONED"', {"dee"}),
    ('filter=status eq "STAGED" or status eq "PROVISIONED"', {"bob", "cyd"}),
    ('filter=(status eq "ACTIVE" or status eq "STAGED") and id pr', {"ann", "bob"}),
    ('filter=profile.login eq "BOB@example.com"', {"bob"}),
    ('filter=profile.email eq "cyd@corp.example.org"', {"cyd"}),
    ('filter=lastUpdated gt "2000-01-01T00:00:00.000Z"', {"ann", "bob", "cyd", "dee"}),
    ('filter=lastUpdated lt "2000-01-01T00:00:00.000Z"', set()),
    ('search=profile.department eq "sales"', {"ann", "cyd"}),
    ('search=profile.login sw "c" and status ne "ACTIVE"', {"cyd"}),
    ("q=an", {"ann"}),
    ("q=Cyd", {"cyd"}),
    ("q=tester", {"ann", "bob", "cyd"}),
    ("q=dee", set()),
    ("q=%25", set()),
]


def test_filters_search_and_q(
    client: TestClient, people: dict[str, str], subtests: pytest.Subtests
) -> None:
    for query, expected in FILTER_CASES:
        with subtests.test(msg=query):
            response = client.get(f"/api/v1/users?{quote(query, safe='=&%')}")
            assert response.status_code == 200, response.text
            found = {u["id"] for u in response.json()}
            assert {name for name, uid in people.items() if uid in found} == expected


@pytest.mark.parametrize(
    "query",
    [
        'filter=status eq "ACTIVE',
        'filter=password eq "x"',
        'filter=lastUpdated gt "yesterday"',
        "filter=status eq 3",
        'filter=profile.a.b eq "x"',
    ],
)
def test_bad_filters_are_400(client: TestClient, query: str) -> None:
    assert_okta_error(client.get(f"/api/v1/users?{quote(query, safe='=')}"), 400, "E0000001")


# --- Update ------------------------------------------------------------------------------------


def test_post_merges_and_put_replaces(client: TestClient, runtime: Runtime) -> None:
    user = client.get(
        f"/api/v1/users/{create_user(runtime, 'ann@example.com', title='Dev', city='Oslo')}"
    ).json()
    merged = client.post(
        f"/api/v1/users/{user['id']}", json={"profile": {"title": "Lead", "city": None}}
    )
    assert merged.status_code == 200
    assert merged.json()["profile"]["title"] == "Lead"
    assert "city" not in merged.json()["profile"]
    assert merged.json()["lastUpdated"] >= user["lastUpdated"]
    replaced = client.put(
        f"/api/v1/users/{user['id']}",
        json={**merged.json(), "profile": _profile("ann@example.com")},
    )
    assert replaced.status_code == 200
    assert replaced.json()["profile"] == _profile("ann@example.com")
    assert event_types(runtime, target_id=user["id"]).count("user.account.update_profile") == 2


def test_put_needs_a_complete_profile(client: TestClient, runtime: Runtime) -> None:
    user = create_user(runtime, "ann@example.com")
    partial = client.put(f"/api/v1/users/{user}", json={"profile": {"title": "x"}})
    assert_okta_error(partial, 400, "E0000001")
    assert_okta_error(client.put(f"/api/v1/users/{user}", json={}), 400, "E0000001")


def test_login_change_is_checked_and_frees_the_old_login(
    client: TestClient, runtime: Runtime
) -> None:
    ann = create_user(runtime, "ann@example.com")
    bob = create_user(runtime, "bob@example.com")
    taken = client.post(f"/api/v1/users/{bob}", json={"profile": {"login": "Ann@Example.com"}})
    assert_okta_error(taken, 400, "E0000001")
    moved = client.post(f"/api/v1/users/{ann}", json={"profile": {"login": "ann2@example.com"}})
    assert moved.status_code == 200
    assert client.get("/api/v1/users/ann2@example.com").json()["id"] == ann
    _create(client, "ann@example.com")


def test_setting_a_password_then_activating_gives_active(
    client: TestClient, runtime: Runtime
) -> None:
    user = create_user(runtime, "ann@example.com", activate=False)
    response = client.post(
        f"/api/v1/users/{user}", json={"credentials": {"password": {"value": PASSWORD}}}
    )
    assert response.json()["credentials"]["password"] == {}
    client.post(f"/api/v1/users/{user}/lifecycle/activate")
    assert client.get(f"/api/v1/users/{user}").json()["status"] == "ACTIVE"


def test_profile_update_enqueues_the_users_apps(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "ann@example.com")
    assign_user(runtime, app_id, user)
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user}", json={"profile": {"title": "Boss"}})
    assert queued_keys(runtime) == {(app_id, "user", user)}
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user}", json={"profile": {"title": "Boss"}})
    assert queued_keys(runtime) == set()


# --- Lifecycle ---------------------------------------------------------------------------------


def _status(client: TestClient, user_id: str) -> str:
    status: str = client.get(f"/api/v1/users/{user_id}").json()["status"]
    return status


def _act(client: TestClient, user_id: str, action: str, **kwargs: object) -> object:
    return client.post(f"/api/v1/users/{user_id}/lifecycle/{action}", **kwargs)  # type: ignore[arg-type,unused-ignore]


def test_full_lifecycle_with_password(client: TestClient, runtime: Runtime) -> None:
    uid = create_user(runtime, "ann@example.com", activate=False, password=PASSWORD)
    steps = [
        ("activate", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("unsuspend", "ACTIVE"),
        ("deactivate", "DEPROVISIONED"),
        ("activate", "ACTIVE"),
    ]
    for action, status in steps:
        response = client.post(f"/api/v1/users/{uid}/lifecycle/{action}")
        assert response.status_code == 200 and response.json() == {}, response.text
        assert _status(client, uid) == status
    assert event_types(runtime, target_id=uid) == [
        "user.lifecycle.create",
        *(f"user.lifecycle.{action}" for action, _ in steps),
    ]


def test_lifecycle_without_password_and_reactivate(client: TestClient, runtime: Runtime) -> None:
    uid = create_user(runtime, "ann@example.com", activate=False)
    client.post(f"/api/v1/users/{uid}/lifecycle/activate")
    assert _status(client, uid) == "PROVISIONED"
    assert client.post(f"/api/v1/users/{uid}/lifecycle/reactivate").status_code == 200
    assert _status(client, uid) == "PROVISIONED"


ILLEGAL_CALLS: list[tuple[list[str], str, int, str]] = [
    ([], "activate", 403, "E0000016"),
    ([], "reactivate", 403, "E0000038"),
    ([], "unsuspend", 400, "E0000001"),
    (["deactivate"], "deactivate", 403, "E0000038"),
    (["deactivate"], "suspend", 400, "E0000001"),
    (["suspend"], "suspend", 400, "E0000001"),
    (["suspend"], "activate", 403, "E0000038"),
]


def test_illegal_lifecycle_calls_change_nothing(
    client: TestClient, runtime: Runtime, subtests: pytest.Subtests
) -> None:
    for number, (setup, action, status, code) in enumerate(ILLEGAL_CALLS):
        with subtests.test(msg=f"{setup} then {action}"):
            uid = create_user(runtime, f"user{number}@example.com", password=PASSWORD)
            for step in setup:
                assert client.post(f"/api/v1/users/{uid}/lifecycle/{step}").status_code == 200
            before = _status(client, uid)
            assert_okta_error(client.post(f"/api/v1/users/{uid}/lifecycle/{action}"), status, code)
            assert _status(client, uid) == before


def test_lifecycle_accepts_any_empty_body(client: TestClient, runtime: Runtime) -> None:
    uid = create_user(runtime, "ann@example.com", password=PASSWORD)
    response = client.post(
        f"/api/v1/users/{uid}/lifecycle/suspend?sendEmail=false",
        content=b"",
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert_okta_error(client.post("/api/v1/users/00unknown/lifecycle/suspend"), 404, "E0000007")
    assert_okta_error(client.post(f"/api/v1/users/{uid}/lifecycle/explode"), 404, "E0000007")


def test_deactivate_removes_direct_assignments_keeps_groups(
    client: TestClient, runtime: Runtime
) -> None:
    direct_app, group_app = create_app(runtime, "Direct"), create_app(runtime, "ByGroup")
    user = create_user(runtime, "ann@example.com", password=PASSWORD)
    group = create_group(runtime, "Accounting", [user])
    assign_user(runtime, direct_app, user)
    assign_group(runtime, group_app, group)
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user}/lifecycle/deactivate")
    assert queued_keys(runtime) == {(direct_app, "user", user), (group_app, "user", user)}
    with runtime.database.read() as session:
        assert session.execute(select(t.AppUserAssignment)).first() is None
    members = client.get(f"/api/v1/groups/{group}/users").json()
    assert [m["id"] for m in members] == [user]
    assert "application.user_membership.remove" in event_types(runtime, target_id=user)


def test_suspend_and_reactivation_enqueue(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "ann@example.com", password=PASSWORD)
    assign_user(runtime, app_id, user)
    clear_keys(runtime)
    _act(client, user, "suspend")
    assert queued_keys(runtime) == {(app_id, "user", user)}


# --- Delete ------------------------------------------------------------------------------------


def test_delete_deactivates_first_then_deletes(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "ann@example.com", password=PASSWORD)
    group = create_group(runtime, "Accounting", [user])
    assign_group(runtime, app_id, group)
    mapping = push_group(runtime, app_id, group)

    assert client.delete(f"/api/v1/users/{user}").status_code == 204
    assert _status(client, user) == "DEPROVISIONED"
    clear_keys(runtime)
    before = client.get(f"/api/v1/groups/{group}").json()["lastMembershipUpdated"]

    assert client.delete(f"/api/v1/users/{user}").status_code == 204
    assert_okta_error(client.get(f"/api/v1/users/{user}"), 404, "E0000007")
    assert_okta_error(client.get("/api/v1/users/ann@example.com"), 404, "E0000007")
    assert_okta_error(client.delete(f"/api/v1/users/{user}"), 404, "E0000007")
    activate = client.post(f"/api/v1/users/{user}/lifecycle/activate")
    assert_okta_error(activate, 404, "E0000007")
    assert client.get('/api/v1/users?filter=status eq "DEPROVISIONED"').json() == []
    assert client.get(f"/api/v1/groups/{group}/users").json() == []
    after = client.get(f"/api/v1/groups/{group}").json()["lastMembershipUpdated"]
    assert after >= before
    assert queued_keys(runtime) == {(app_id, "user", user), (app_id, "push", mapping)}
    with runtime.database.read() as session:
        row = session.get(t.User, user)
        assert row is not None and row.status == "DELETED"
    assert event_types(runtime, target_id=user)[-2:] == [
        "user.lifecycle.delete.initiated",
        "user.lifecycle.delete.completed",
    ]
    again = _create(client, "ann@example.com")
    assert again["id"] != user


def test_user_groups(client: TestClient, runtime: Runtime) -> None:
    user = create_user(runtime, "ann@example.com")
    groups = [create_group(runtime, f"G{i}", [user] if i < 2 else []) for i in range(3)]
    response = client.get(f"/api/v1/users/{user}/groups")
    assert [g["id"] for g in response.json()] == groups[:2]
    paged = client.get(f"/api/v1/users/{user}/groups?limit=1")
    assert len(paged.json()) == 1 and "next" in links(paged)
    assert_okta_error(client.get("/api/v1/users/00unope/groups"), 404, "E0000007")


def test_a_fetched_user_can_be_put_back_unchanged(client: TestClient, runtime: Runtime) -> None:
    user = create_user(runtime, "ann@example.com", password=PASSWORD)
    fetched = client.get(f"/api/v1/users/{user}").json()
    response = client.put(f"/api/v1/users/{user}", json=fetched)
    assert response.status_code == 200, response.text
    assert response.json()["passwordChanged"] == fetched["passwordChanged"]
    assert fetched["passwordChanged"] is not None
    assert event_types(runtime, target_id=user) == [
        "user.lifecycle.create",
        "user.lifecycle.activate",
    ]
