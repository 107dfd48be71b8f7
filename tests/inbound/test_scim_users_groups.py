"""``/scim/v2`` Users and Groups: filters translated to SQL, sorting, paging, ETags, SCIM errors
for bad input (never a 500), one source never seeing another's, and mastery: what a source
writes, admins cannot change elsewhere (400 naming the source)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.inbound.conftest import BASE, issue_source

from headwater import clock
from headwater.domain.inbound import ENTERPRISE_USER
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import (
    MovableClock,
    api_client,
    assert_okta_error,
    create_user,
    events,
    statements,
)

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def hire(http: TestClient, login: str, **extra: Any) -> dict[str, Any]:
    first, _, last = login.partition("@")[0].partition(".")
    body = {
        "userName": login,
        "name": {"givenName": first.title(), "familyName": (last or "tester").title()},
        "emails": [{"value": login, "primary": True}],
        **extra,
    }
    response = http.post("Users", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    created: dict[str, Any] = response.json()
    return created


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [resource["userName"] for resource in response.json()["Resources"]]


def scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


@pytest.fixture
def staff(http: TestClient) -> dict[str, dict[str, Any]]:
    return {
        "ann": hire(
            http,
            "ann.lee@example.com",
            title="Accountant",
            externalId="E-1",
            **{ENTERPRISE_USER: {"department": "Finance", "employeeNumber": "1"}},
        ),
        "bob": hire(
            http,
            "bob.ray@example.com",
            **{ENTERPRISE_USER: {"department": "Sales"}},
        ),
        "cat": hire(http, "cat.fox@corp.example", title="Engineer", active=False),
    }


FILTERS = [
    ('userName eq "ANN.LEE@example.com"', ["ann.lee@example.com"]),
    ('userName co "ray"', ["bob.ray@example.com"]),
    ('userName sw "c"', ["cat.fox@corp.example"]),
    ("title pr", ["ann.lee@example.com", "cat.fox@corp.example"]),
    ('title pr and userName ew "corp.example"', ["cat.fox@corp.example"]),
    ('userName sw "a" or userName sw "b"', ["ann.lee@example.com", "bob.ray@example.com"]),
    ('externalId eq "E-1"', ["ann.lee@example.com"]),
    ("active eq false", ["cat.fox@corp.example"]),
    ('emails[value eq "bob.ray@example.com"]', ["bob.ray@example.com"]),
    ('emails.value co "corp"', ["cat.fox@corp.example"]),
    (f'{ENTERPRISE_USER}:department eq "Finance"', ["ann.lee@example.com"]),
    ('name.familyName eq "Fox"', ["cat.fox@corp.example"]),
    ("not (title pr) and userName pr", ["bob.ray@example.com"]),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filters(
    http: TestClient, staff: dict[str, Any], expression: str, expected: list[str]
) -> None:
    found = http.get("Users", params={"filter": expression, "sortBy": "userName"})
    assert names(found) == expected
    assert found.json()["totalResults"] == len(expected)


def test_filters_on_last_modified_and_run_in_sql(runtime: Runtime, http: TestClient) -> None:
    with MovableClock() as moving:
        hire(http, "old.one@example.com")
        moving.advance(timedelta(hours=1))
        middle = clock.utcnow().isoformat().replace("+00:00", "Z")
        moving.advance(timedelta(hours=1))
        hire(http, "new.one@example.com")
    newer = http.get("Users", params={"filter": f'meta.lastModified gt "{middle}"'})
    assert names(newer) == ["new.one@example.com"]
    older = http.get("Users", params={"filter": f'meta.lastModified lt "{middle}"'})
    assert names(older) == ["old.one@example.com"]
    with statements(runtime) as sent:
        http.get("Users", params={"filter": 'userName eq "new.one@example.com"'})
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT") and "users" in s]
    assert any("login_lower" in s and "WHERE" in s.upper() for s in selects)


def test_sorting_and_paging(http: TestClient, staff: dict[str, Any]) -> None:
    descending = http.get("Users", params={"sortBy": "userName", "sortOrder": "descending"})
    assert names(descending) == [
        "cat.fox@corp.example",
        "bob.ray@example.com",
        "ann.lee@example.com",
    ]
    page = http.get("Users", params={"sortBy": "userName", "startIndex": 2, "count": 1})
    assert names(page) == ["bob.ray@example.com"]
    body = page.json()
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (3, 2, 1)
    assert http.get("Users", params={"count": 0}).json()["Resources"] == []
    assert http.get("Users", params={"count": 10**9}).json()["itemsPerPage"] == 3
    assert names(http.get("Users", params={"startIndex": -5, "count": 1})) == [
        "ann.lee@example.com"
    ]
    searched = http.post(
        "Users/.search",
        json={"filter": 'userName sw "b"', "attributes": ["userName"], "count": 5},
    )
    assert names(searched) == ["bob.ray@example.com"]
    assert "emails" not in searched.json()["Resources"][0]


def test_etags_and_if_match(http: TestClient, staff: dict[str, Any]) -> None:
    ann = staff["ann"]
    read = http.get(f"Users/{ann['id']}")
    version = read.headers["ETag"]
    assert version == read.json()["meta"]["version"] == ann["meta"]["version"]
    body = {**read.json(), "title": "Controller"}
    changed = http.put(f"Users/{ann['id']}", json=body, headers={"If-Match": version})
    assert changed.status_code == 200 and changed.headers["ETag"] != version
    stale = http.put(f"Users/{ann['id']}", json=body, headers={"If-Match": version})
    scim_error(stale, 412)
    gone = http.delete(f"Users/{ann['id']}", headers={"If-Match": version})
    scim_error(gone, 412)
    assert http.get(f"Users/{ann['id']}").json()["title"] == "Controller"


def test_bad_input_gets_scim_errors_never_a_500(http: TestClient, staff: dict[str, Any]) -> None:
    ann = staff["ann"]
    scim_error(http.get("Users", params={"filter": 'userName eq "x'}), 400, "invalidFilter")
    scim_error(http.get("Users", params={"filter": 'nosuch eq "x"'}), 400, "invalidFilter")
    scim_error(http.get("Users", params={"filter": "active gt 3"}), 400, "invalidFilter")
    scim_error(http.get("Users", params={"filter": 'userName eq "a" or ' * 300 + "title pr"}), 400)
    scim_error(http.get("Users", params={"count": "many"}), 400)
    scim_error(http.get("Users", params={"sortBy": "password"}), 400)
    scim_error(http.get("Users", params={"sortOrder": "sideways"}), 400)
    scim_error(http.get("Users/00uNoSuchUser"), 404)
    scim_error(http.get("Users/" + "x" * 300), 404)
    scim_error(http.get("Nowhere"), 404)
    scim_error(http.post("ServiceProviderConfig", json={}), 405)
    scim_error(http.post("Bulk", json={}), 400, "invalidSyntax")
    scim_error(http.get("Bulk"), 405)
    malformed = http.post(
        "Users", content=b"{not json", headers={"Content-Type": "application/scim+json"}
    )
    scim_error(malformed, 400, "invalidSyntax")
    huge = b'{"userName": "' + b"x" * 1_100_000 + b'"}'
    too_large = http.post("Users", content=huge, headers={"Content-Type": "application/scim+json"})
    scim_error(too_large, 413)
    assert too_large.headers["content-type"] == "application/scim+json"
    scim_error(http.post("Users", json=[]), 400)
    scim_error(http.post("Users", json={"userName": "no.names@example.com"}), 400)
    scim_error(http.post("Users", json={"userName": 7}), 400)
    duplicate = http.post(
        "Users",
        json={
            "userName": "ANN.LEE@example.com",
            "name": {"givenName": "A", "familyName": "L"},
            "emails": [{"value": "a@example.com"}],
        },
    )
    scim_error(duplicate, 409, "uniqueness")
    scim_error(http.post("Groups", json={"displayName": "G", "members": [{"value": "00uX"}]}), 400)
    scim_error(http.post("Groups", json={"members": []}), 400)
    scim_error(http.put(f"Users/{ann['id']}", json={"userName": "\u0000bad"}), 400)
    scim_error(http.get("Users", headers={"Authorization": "Bearer wrong"}), 401)
    unauthenticated = http.get("Users", headers={"Authorization": ""})
    scim_error(unauthenticated, 401)
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")


def test_groups_filters_and_members(http: TestClient, staff: dict[str, Any]) -> None:
    ann, bob = staff["ann"]["id"], staff["bob"]["id"]
    finance = http.post(
        "Groups", json={"displayName": "Finance", "externalId": "G-1", "members": [{"value": ann}]}
    ).json()
    http.post("Groups", json={"displayName": "Sales", "members": [{"value": bob}]})
    by_member = http.get("Groups", params={"filter": f'members[value eq "{ann}"]'}).json()
    assert [g["displayName"] for g in by_member["Resources"]] == ["Finance"]
    by_name = http.get("Groups", params={"filter": 'displayName sw "sal"'}).json()
    assert [g["displayName"] for g in by_name["Resources"]] == ["Sales"]
    external = http.get("Groups", params={"filter": 'externalId eq "G-1"'}).json()
    assert external["Resources"][0]["id"] == finance["id"]
    lean = http.get("Groups", params={"excludedAttributes": "members"}).json()
    assert all("members" not in g for g in lean["Resources"])
    assert http.delete(f"Groups/{finance['id']}").status_code == 204
    scim_error(http.get(f"Groups/{finance['id']}"), 404)


def test_a_source_sees_only_what_it_masters(runtime: Runtime, http: TestClient) -> None:
    mine = hire(http, "ann.lee@example.com")
    create_user(runtime, "admin.made@example.com")
    _, other_token = issue_source(runtime, "Contractors")
    app = create_app(runtime, start_worker=False)
    with TestClient(app, base_url=BASE + "/") as other:
        other.headers["Authorization"] = f"Bearer {other_token}"
        assert other.get("Users").json()["totalResults"] == 0
        scim_error(other.get(f"Users/{mine['id']}"), 404)
        scim_error(other.patch(f"Users/{mine['id']}", json={"Operations": []}), 404)
        scim_error(other.delete(f"Users/{mine['id']}"), 404)
    assert names(http.get("Users")) == ["ann.lee@example.com"]


def test_admins_cannot_change_what_a_source_masters(
    runtime: Runtime, http: TestClient, staff: dict[str, Any]
) -> None:
    ann = staff["ann"]["id"]
    group = http.post("Groups", json={"displayName": "Finance", "members": [{"value": ann}]})
    group_id = group.json()["id"]
    other = create_user(runtime, "admin.made@example.com")
    with api_client(runtime) as admin:
        refused = admin.post(f"/api/v1/users/{ann}", json={"profile": {"firstName": "Eve"}})
        assert_okta_error(refused, 400, "E0000001")
        assert "mastered by source HR" in refused.json()["errorCauses"][0]["errorSummary"]
        assert "profile.firstName" in refused.json()["errorCauses"][0]["errorSummary"]
        custom = admin.post(f"/api/v1/users/{ann}", json={"profile": {"badge": "B-7"}})
        assert custom.status_code == 200, custom.text
        renamed = admin.put(f"/api/v1/groups/{group_id}", json={"profile": {"name": "Money"}})
        assert_okta_error(renamed, 400, "E0000001")
        added = admin.put(f"/api/v1/groups/{group_id}/users/{other}")
        assert_okta_error(added, 400, "E0000001")
        assert "mastered by source HR" in added.text
        # An admin may still take a mastered person offline (offboarding always wins).
        assert admin.post(f"/api/v1/users/{ann}/lifecycle/deactivate").status_code == 200
    # The source's own update keeps the attribute an admin added.
    put = http.put(f"Users/{ann}", json={**staff["ann"], "title": "CFO", "active": True})
    assert put.status_code == 200, put.text
    with api_client(runtime) as admin:
        profile = admin.get(f"/api/v1/users/{ann}").json()["profile"]
    assert profile["badge"] == "B-7" and profile["title"] == "CFO"
    actors = {event.actor["displayName"] for event in events(runtime, "user.lifecycle.create")}
    assert actors == {"HR", "Headwater"}
    updates = events(runtime, "user.account.update_profile", target_id=ann)
    assert [e.actor["type"] for e in updates] == ["Token", "Source"]
