"""Users: create, read, list, filter, update, lifecycle and delete, as Okta answers them, and
the reconcile keys each change leaves in the outbox."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from dirkit import (
    PASSWORD,
    add_mapping,
    assign_group,
    assign_user,
    clear_keys,
    create_group,
    create_user,
    error,
    event_types,
    keys,
    link_targets,
    make_app,
    user_row,
)
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime

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
    user = create_user(client, "ann@example.com", activate=activate, password=password)
    assert user["status"] == status
    assert user["id"].startswith("00u") and len(user["id"]) == 20
    assert (user["activated"] is not None) == (status == "ACTIVE")
    assert (user["passwordChanged"] is not None) == (password is not None)
    assert user["lastLogin"] is None
    assert user["created"].endswith("Z") and len(user["created"]) == 24


def test_user_shape_never_shows_the_password(client: TestClient, runtime: Runtime) -> None:
    user = create_user(client, "ann@example.com", password=PASSWORD, title="Dev")
    assert user["profile"] == {
        "login": "ann@example.com",
        "email": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Tester",
        "title": "Dev",
    }
    assert user["credentials"] == {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}}
    assert PASSWORD not in client.get(f"/api/v1/users/{user['id']}").text
    row = user_row(runtime, user["id"])
    assert row is not None and row.password_hash is not None
    assert row.password_hash.startswith("$argon2") and PASSWORD not in row.password_hash
    assert isinstance(user["type"]["id"], str)


def test_user_without_password_has_no_password_credential(client: TestClient) -> None:
    user = create_user(client, "ann@example.com")
    assert user["credentials"] == {"provider": {"type": "OKTA", "name": "OKTA"}}


def test_single_user_links_its_legal_lifecycle_actions(client: TestClient) -> None:
    user = create_user(client, "ann@example.com", password=PASSWORD)
    links = user["_links"]
    assert set(links) == {"self", "suspend", "deactivate"}
    assert links["suspend"]["href"].endswith(f"/api/v1/users/{user['id']}/lifecycle/suspend")
    listed = client.get("/api/v1/users").json()[0]
    assert set(listed["_links"]) == {"self"}


def test_login_is_unique_case_insensitively(client: TestClient) -> None:
    create_user(client, "ann@example.com")
    response = client.post("/api/v1/users", json={"profile": _profile("ANN@example.com")})
    body = error(response, 400, "E0000001")
    cause = "login: An object with this field already exists in the current organization"
    assert body["errorCauses"] == [{"errorSummary": cause}]


def test_create_with_group_ids_adds_memberships(client: TestClient) -> None:
    group = create_group(client, "Accounting")
    user = client.post(
        "/api/v1/users", json={"profile": _profile("ann@example.com"), "groupIds": [group["id"]]}
    ).json()
    members = client.get(f"/api/v1/groups/{group['id']}/users").json()
    assert [m["id"] for m in members] == [user["id"]]
    unknown = client.post(
        "/api/v1/users", json={"profile": _profile("bob@example.com"), "groupIds": ["00gnope"]}
    )
    error(unknown, 400, "E0000001")


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
            causes = error(response, 400, "E0000001")["errorCauses"]
            assert any(field in cause["errorSummary"] for cause in causes), causes
    assert client.get("/api/v1/users").json() == []


# --- Read and list -----------------------------------------------------------------------------


def test_get_by_id_and_by_login(client: TestClient) -> None:
    user = create_user(client, "ann@example.com")
    assert client.get(f"/api/v1/users/{user['id']}").json()["id"] == user["id"]
    assert client.get("/api/v1/users/ANN@example.com").json()["id"] == user["id"]
    error(client.get("/api/v1/users/00unknown"), 404, "E0000007")
    error(client.get("/api/v1/users/nobody@example.com"), 404, "E0000007")


def test_list_pages_with_cursor_links(client: TestClient) -> None:
    made = [create_user(client, f"user{i}@example.com")["id"] for i in range(5)]
    seen: list[str] = []
    url = "/api/v1/users?limit=2"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        links = link_targets(response)
        assert next(iter(links)) == "self"
        seen += [u["id"] for u in response.json()]
        url = links.get("next", "")
        pages += 1
        assert "after=" in url or not url
    assert seen == made and pages == 3


def test_limit_is_capped_and_defaulted(client: TestClient) -> None:
    create_user(client, "ann@example.com")
    for limit in ("0", "-5", "100000"):
        assert client.get(f"/api/v1/users?limit={limit}").status_code == 200
    error(client.get("/api/v1/users?limit=ten"), 400, "E0000001")
    error(client.get("/api/v1/users?after=not%20a%20cursor"), 400, "E0000001")


@pytest.fixture
def people(client: TestClient) -> dict[str, str]:
    ids = {
        "ann": create_user(client, "ann@example.com", password=PASSWORD, department="Sales")["id"],
        "bob": create_user(client, "bob@example.com", activate=False, department="IT")["id"],
        "cyd": create_user(client, "cyd@corp.example.org", department="Sales")["id"],
        "dee": create_user(client, "dee@example.com", password=PASSWORD)["id"],
    }
    client.post(f"/api/v1/users/{ids['dee']}/lifecycle/deactivate")
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
    error(client.get(f"/api/v1/users?{quote(query, safe='=')}"), 400, "E0000001")


# --- Update ------------------------------------------------------------------------------------


def test_post_merges_and_put_replaces(client: TestClient, runtime: Runtime) -> None:
    user = create_user(client, "ann@example.com", title="Dev", city="Oslo")
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
    assert event_types(runtime, user["id"]).count("user.account.update_profile") == 2


def test_put_needs_a_complete_profile(client: TestClient) -> None:
    user = create_user(client, "ann@example.com")
    partial = client.put(f"/api/v1/users/{user['id']}", json={"profile": {"title": "x"}})
    error(partial, 400, "E0000001")
    error(client.put(f"/api/v1/users/{user['id']}", json={}), 400, "E0000001")


def test_login_change_is_checked_and_frees_the_old_login(client: TestClient) -> None:
    ann = create_user(client, "ann@example.com")
    bob = create_user(client, "bob@example.com")
    taken = client.post(
        f"/api/v1/users/{bob['id']}", json={"profile": {"login": "Ann@Example.com"}}
    )
    error(taken, 400, "E0000001")
    moved = client.post(
        f"/api/v1/users/{ann['id']}", json={"profile": {"login": "ann2@example.com"}}
    )
    assert moved.status_code == 200
    assert client.get("/api/v1/users/ann2@example.com").json()["id"] == ann["id"]
    create_user(client, "ann@example.com")


def test_setting_a_password_then_activating_gives_active(client: TestClient) -> None:
    user = create_user(client, "ann@example.com", activate=False)
    response = client.post(
        f"/api/v1/users/{user['id']}", json={"credentials": {"password": {"value": PASSWORD}}}
    )
    assert response.json()["credentials"]["password"] == {}
    client.post(f"/api/v1/users/{user['id']}/lifecycle/activate")
    assert client.get(f"/api/v1/users/{user['id']}").json()["status"] == "ACTIVE"


def test_profile_update_enqueues_the_users_apps(client: TestClient, runtime: Runtime) -> None:
    app_id = make_app(runtime)
    user = create_user(client, "ann@example.com")
    assign_user(runtime, app_id, user["id"])
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user['id']}", json={"profile": {"title": "Boss"}})
    assert keys(runtime) == {(app_id, "user", user["id"])}
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user['id']}", json={"profile": {"title": "Boss"}})
    assert keys(runtime) == set()


# --- Lifecycle ---------------------------------------------------------------------------------


def _status(client: TestClient, user_id: str) -> str:
    status: str = client.get(f"/api/v1/users/{user_id}").json()["status"]
    return status


def _act(client: TestClient, user_id: str, action: str, **kwargs: object) -> object:
    return client.post(f"/api/v1/users/{user_id}/lifecycle/{action}", **kwargs)  # type: ignore[arg-type]


def test_full_lifecycle_with_password(client: TestClient, runtime: Runtime) -> None:
    uid = create_user(client, "ann@example.com", activate=False, password=PASSWORD)["id"]
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
    assert event_types(runtime, uid) == [
        "user.lifecycle.create",
        *(f"user.lifecycle.{action}" for action, _ in steps),
    ]


def test_lifecycle_without_password_and_reactivate(client: TestClient) -> None:
    uid = create_user(client, "ann@example.com", activate=False)["id"]
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
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for number, (setup, action, status, code) in enumerate(ILLEGAL_CALLS):
        with subtests.test(msg=f"{setup} then {action}"):
            uid = create_user(client, f"user{number}@example.com", password=PASSWORD)["id"]
            for step in setup:
                assert client.post(f"/api/v1/users/{uid}/lifecycle/{step}").status_code == 200
            before = _status(client, uid)
            error(client.post(f"/api/v1/users/{uid}/lifecycle/{action}"), status, code)
            assert _status(client, uid) == before


def test_lifecycle_accepts_any_empty_body(client: TestClient) -> None:
    uid = create_user(client, "ann@example.com", password=PASSWORD)["id"]
    response = client.post(
        f"/api/v1/users/{uid}/lifecycle/suspend?sendEmail=false",
        content=b"",
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    error(client.post("/api/v1/users/00unknown/lifecycle/suspend"), 404, "E0000007")
    error(client.post(f"/api/v1/users/{uid}/lifecycle/explode"), 404, "E0000007")


def test_deactivate_removes_direct_assignments_keeps_groups(
    client: TestClient, runtime: Runtime
) -> None:
    direct_app, group_app = make_app(runtime, "Direct"), make_app(runtime, "ByGroup")
    user = create_user(client, "ann@example.com", password=PASSWORD)
    group = create_group(client, "Accounting")
    client.put(f"/api/v1/groups/{group['id']}/users/{user['id']}")
    assign_user(runtime, direct_app, user["id"])
    assign_group(runtime, group_app, group["id"])
    clear_keys(runtime)
    client.post(f"/api/v1/users/{user['id']}/lifecycle/deactivate")
    assert keys(runtime) == {(direct_app, "user", user["id"]), (group_app, "user", user["id"])}
    with runtime.database.read() as session:
        assert session.execute(select(t.AppUserAssignment)).first() is None
    members = client.get(f"/api/v1/groups/{group['id']}/users").json()
    assert [m["id"] for m in members] == [user["id"]]
    assert "application.user_membership.remove" in event_types(runtime, user["id"])


def test_suspend_and_reactivation_enqueue(client: TestClient, runtime: Runtime) -> None:
    app_id = make_app(runtime)
    user = create_user(client, "ann@example.com", password=PASSWORD)
    assign_user(runtime, app_id, user["id"])
    clear_keys(runtime)
    _act(client, user["id"], "suspend")
    assert keys(runtime) == {(app_id, "user", user["id"])}


# --- Delete ------------------------------------------------------------------------------------


def test_delete_deactivates_first_then_deletes(client: TestClient, runtime: Runtime) -> None:
    app_id = make_app(runtime)
    user = create_user(client, "ann@example.com", password=PASSWORD)
    group = create_group(client, "Accounting")
    client.put(f"/api/v1/groups/{group['id']}/users/{user['id']}")
    assign_group(runtime, app_id, group["id"])
    mapping = add_mapping(runtime, app_id, group["id"])

    assert client.delete(f"/api/v1/users/{user['id']}").status_code == 204
    assert _status(client, user["id"]) == "DEPROVISIONED"
    clear_keys(runtime)
    before = client.get(f"/api/v1/groups/{group['id']}").json()["lastMembershipUpdated"]

    assert client.delete(f"/api/v1/users/{user['id']}").status_code == 204
    error(client.get(f"/api/v1/users/{user['id']}"), 404, "E0000007")
    error(client.get("/api/v1/users/ann@example.com"), 404, "E0000007")
    error(client.delete(f"/api/v1/users/{user['id']}"), 404, "E0000007")
    error(client.post(f"/api/v1/users/{user['id']}/lifecycle/activate"), 404, "E0000007")
    assert client.get('/api/v1/users?filter=status eq "DEPROVISIONED"').json() == []
    assert client.get(f"/api/v1/groups/{group['id']}/users").json() == []
    after = client.get(f"/api/v1/groups/{group['id']}").json()["lastMembershipUpdated"]
    assert after >= before
    assert keys(runtime) == {(app_id, "user", user["id"]), (app_id, "push", mapping)}
    row = user_row(runtime, user["id"])
    assert row is not None and row.status == "DELETED"
    assert event_types(runtime, user["id"])[-2:] == [
        "user.lifecycle.delete.initiated",
        "user.lifecycle.delete.completed",
    ]
    again = create_user(client, "ann@example.com")
    assert again["id"] != user["id"]


def test_user_groups(client: TestClient) -> None:
    user = create_user(client, "ann@example.com")
    groups = [create_group(client, f"G{i}") for i in range(3)]
    for group in groups[:2]:
        client.put(f"/api/v1/groups/{group['id']}/users/{user['id']}")
    response = client.get(f"/api/v1/users/{user['id']}/groups")
    assert [g["id"] for g in response.json()] == [g["id"] for g in groups[:2]]
    paged = client.get(f"/api/v1/users/{user['id']}/groups?limit=1")
    assert len(paged.json()) == 1 and "next" in link_targets(paged)
    error(client.get("/api/v1/users/00unope/groups"), 404, "E0000007")


def test_a_fetched_user_can_be_put_back_unchanged(client: TestClient, runtime: Runtime) -> None:
    user = create_user(client, "ann@example.com", password=PASSWORD)
    fetched = client.get(f"/api/v1/users/{user['id']}").json()
    response = client.put(f"/api/v1/users/{user['id']}", json=fetched)
    assert response.status_code == 200, response.text
    assert response.json()["passwordChanged"] == user["passwordChanged"]
    assert event_types(runtime, user["id"]) == ["user.lifecycle.create", "user.lifecycle.activate"]
