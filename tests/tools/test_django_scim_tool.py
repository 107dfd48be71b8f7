"""django-scim2 (stock views and adapters, SQLite) as a SCIM client sees it, over HTTP.

Every assertion pins down what the server does today, gaps included (marked "Gap:"), so that a
new version that behaves differently fails here first. ``docs/compatibility.md`` explains what
each gap means for a client.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from headwater.testing.servers import DjangoScimProcess
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    PATCH_SCHEMA,
    USER_SCHEMA,
    scim_group,
    scim_user,
    unique,
)


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def new_user(client: httpx.Client, prefix: str = "dj", **attributes: Any) -> dict[str, Any]:
    response = client.post("/Users", json=scim_user(f"{unique(prefix)}@example.org", **attributes))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def new_group(client: httpx.Client, prefix: str = "dj-group") -> dict[str, Any]:
    response = client.post("/Groups", json=scim_group(unique(prefix)))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def member_ids(client: httpx.Client, group_id: str) -> set[str]:
    response = client.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return {m["value"] for m in response.json()["members"]}


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The SCIM error body of ``response``, which must have ``status``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == status  # Gap: a number, where RFC 7644 says a string
    return body


# --- The server -------------------------------------------------------------------------------


def test_starts_and_describes_itself(
    django_scim: DjangoScimProcess, django_client: httpx.Client
) -> None:
    assert django_scim.running
    assert django_scim.base_url == f"http://127.0.0.1:{django_scim.port}/scim/v2"
    config = django_client.get("/ServiceProviderConfig")
    assert config.status_code == 200
    assert config.headers["content-type"] == "application/scim+json"
    body = config.json()
    assert body["patch"] == {"supported": True}
    # Gap: it says it cannot filter, though it filters on userName and the name fields.
    assert body["filter"] == {"supported": False, "maxResults": 50}
    assert body["bulk"]["supported"] is False
    assert body["sort"] == {"supported": False}
    assert body["etag"] == {"supported": False}
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]
    assert body["meta"]["location"] == f"{django_scim.base_url}/ServiceProviderConfig"
    types = django_client.get("/ResourceTypes").json()["Resources"]
    # Gap: endpoints are full paths, where RFC 7643 expects them relative to the base URL.
    assert sorted(t["endpoint"] for t in types) == ["/scim/v2/Groups", "/scim/v2/Users"]
    # Bulk and /Me: 501 with an empty body.
    for response in (django_client.post("/Bulk", json={}), django_client.get("/Me")):
        assert (response.status_code, response.content) == (501, b"")


def test_bearer_token(django_scim: DjangoScimProcess) -> None:
    url = f"{django_scim.base_url}/Users"
    with httpx.Client(trust_env=False, timeout=5) as client:
        refused = client.get(url)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="django-scim2"'
        # Gap: the 401 is an empty HTML answer, not a SCIM error.
        assert refused.headers["content-type"].startswith("text/html")
        assert refused.content == b""
        wrong = client.get(url, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        assert client.get(url, headers=django_scim.headers).status_code == 200
        # Discovery needs the token too (scim2-server answers it without one).
        assert client.get(f"{django_scim.base_url}/ServiceProviderConfig").status_code == 401


# --- Users ------------------------------------------------------------------------------------


def test_user_lifecycle(django_scim: DjangoScimProcess, django_client: httpx.Client) -> None:
    name = f"{unique('alice')}@example.org"
    body = scim_user(
        name,
        name={"givenName": "Alice", "familyName": "Liddell"},
        emails=[{"value": name, "primary": True}],
        externalId="ext-1",
        active=True,
    )
    created = django_client.post("/Users", json=body)
    assert created.status_code == 201
    user = created.json()
    user_id = user["id"]
    assert user_id.isdigit()  # Django's primary key
    assert created.headers["location"] == f"{django_scim.base_url}/Users/{user_id}"
    assert user["meta"]["location"] == created.headers["location"]
    assert user["displayName"] == "Alice Liddell"  # made from the name parts
    assert user["groups"] == []

    found = django_client.get("/Users", params={"filter": f'userName eq "{name}"'}).json()
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == user_id
    assert django_client.get(f"/Users/{user_id}").json()["userName"] == name

    # PUT replaces: what it leaves out is cleared.
    replaced = django_client.put(
        f"/Users/{user_id}", json=scim_user(name, name={"givenName": "Alicia"}, active=True)
    )
    assert replaced.status_code == 200
    assert replaced.json()["name"]["givenName"] == "Alicia"
    assert replaced.json()["name"]["familyName"] == ""
    assert replaced.json()["externalId"] == ""

    # Deactivation, with a path and in the no-path form Entra ID sends.
    off = django_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "path": "active", "value": False})
    )
    assert off.status_code == 200
    assert off.json()["active"] is False
    on = django_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "value": {"active": True}})
    )
    assert on.json()["active"] is True
    renamed = django_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "path": "name.givenName", "value": "Al"})
    )
    assert renamed.json()["name"]["givenName"] == "Al"
    # Gap: meta.lastModified is the creation time, whatever changed since.
    assert renamed.json()["meta"]["lastModified"] == user["meta"]["created"]

    deleted = django_client.delete(f"/Users/{user_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    error(django_client.get(f"/Users/{user_id}"), 404)
    error(django_client.delete(f"/Users/{user_id}"), 404)


def test_user_uniqueness_and_validation(django_client: httpx.Client) -> None:
    user = new_user(django_client)
    duplicate = error(django_client.post("/Users", json=scim_user(user["userName"])), 409)
    assert "scimType" not in duplicate  # Gap: no "uniqueness" scimType
    assert "UNIQUE constraint failed" in duplicate["detail"]  # the database's own message

    # Gap: userName is unique only case-sensitively, though filters ignore case: two accounts
    # that differ in case are both found by one filter.
    upper = django_client.post("/Users", json=scim_user(user["userName"].upper()))
    assert upper.status_code == 201
    found = django_client.get("/Users", params={"filter": f'userName eq "{user["userName"]}"'})
    assert found.json()["totalResults"] == 2

    # Renaming onto a taken userName: PUT says 409, PATCH fails with 500 (Gap).
    other = new_user(django_client)
    taken = scim_user(user["userName"])
    error(django_client.put(f"/Users/{other['id']}", json=taken), 409)
    patch = ops({"op": "replace", "path": "userName", "value": user["userName"]})
    error(django_client.patch(f"/Users/{other['id']}", json=patch), 500)

    # Gap: nothing is required; a user without userName is created with an empty one.
    nameless = django_client.post("/Users", json={"schemas": [USER_SCHEMA]})
    assert nameless.status_code == 201
    assert nameless.json()["userName"] == ""
    django_client.delete(f"/Users/{nameless.json()['id']}")
    # Gap: absent attributes come back empty rather than absent.
    assert user["externalId"] == ""
    assert user["emails"] == [{"value": "", "primary": True}]

    bad_json = django_client.post("/Users", content=b"{not json")
    assert "Could not decode JSON body" in error(bad_json, 400)["detail"]
    wrong_type = ops({"op": "replace", "path": "active", "value": "False"})
    error(django_client.patch(f"/Users/{user['id']}", json=wrong_type), 400)
    unknown_op = ops({"op": "frobnicate", "path": "title", "value": "x"})
    error(django_client.patch(f"/Users/{user['id']}", json=unknown_op), 400)


def test_user_patch_gaps(django_client: httpx.Client) -> None:
    """Gap: PATCH on a user implements "replace" of userName, the name parts, active and
    emails, and nothing else: every other path, and every "add" or "remove", is a 501."""
    user_id = new_user(django_client)["id"]
    for operation in (
        {"op": "replace", "path": "displayName", "value": "Al"},
        {"op": "replace", "path": "externalId", "value": "ext"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@example.org"},
        {"op": "add", "path": "title", "value": "Boss"},
        {"op": "remove", "path": "name.givenName"},
    ):
        response = django_client.patch(f"/Users/{user_id}", json=ops(operation))
        error(response, 501)


def test_filters(django_client: httpx.Client) -> None:
    prefix = unique("page")
    users = [
        new_user(django_client, prefix, externalId=f"{prefix}-{n}", active=True) for n in range(5)
    ]
    starts = {"filter": f'userName sw "{prefix}"'}
    assert django_client.get("/Users", params=starts).json()["totalResults"] == 5
    # Paging is honoured (startIndex, count); sortBy is ignored.
    pages = [
        django_client.get("/Users", params={**starts, "startIndex": start, "count": 2}).json()
        for start in (1, 3, 5)
    ]
    assert [len(p["Resources"]) for p in pages] == [2, 2, 1]
    assert {u["id"] for p in pages for u in p["Resources"]} == {u["id"] for u in users}

    # Gap: a filter on an attribute it does not map (externalId, id, emails, active on SQLite)
    # or does not know matches nothing, with 200, instead of answering 400.
    for expression in (
        f'externalId eq "{prefix}-1"',
        f'id eq "{users[0]["id"]}"',
        f'emails.value eq "{users[0]["userName"]}"',
        f'userName eq "{users[0]["userName"]}" and active eq true',
        'nosuch eq "x"',
    ):
        found = django_client.get("/Users", params={"filter": expression})
        assert found.status_code == 200, expression
        assert found.json()["totalResults"] == 0, expression

    invalid = error(django_client.get("/Users", params={"filter": "userName eq"}), 400)
    assert "scimType" not in invalid  # Gap: no "invalidFilter" scimType
    assert invalid["detail"].startswith("Invalid filter/search query")


def test_attributes_parameters_are_ignored(django_client: httpx.Client) -> None:
    """Gap: ``attributes`` and ``excludedAttributes`` change nothing."""
    user = new_user(django_client)
    for params in ({"attributes": "userName"}, {"excludedAttributes": "emails,name"}):
        assert django_client.get(f"/Users/{user['id']}", params=params).json() == user


# --- Groups -----------------------------------------------------------------------------------


def test_group_lifecycle(django_client: httpx.Client) -> None:
    member = new_user(django_client)
    name = unique("Engineering")
    created = django_client.post("/Groups", json=scim_group(name, [member["id"]]))
    assert created.status_code == 201
    group = created.json()
    group_id = group["id"]
    assert group_id.isdigit()
    assert "created" not in group["meta"]  # Gap: groups carry no timestamps
    # Gap: members given at creation are dropped without a word.
    assert group["members"] == []
    assert member_ids(django_client, group_id) == set()

    error(django_client.post("/Groups", json=scim_group(name)), 409)  # names are unique
    # Gap: groups cannot be filtered: every filter matches nothing.
    for expression in (f'displayName eq "{name}"', f'id eq "{group_id}"'):
        found = django_client.get("/Groups", params={"filter": expression}).json()
        assert found["totalResults"] == 0, expression
    listed = django_client.get("/Groups", params={"count": 500}).json()["Resources"]
    assert group_id in {g["id"] for g in listed}

    # Gap: a group cannot be renamed by PATCH, in either form.
    for operation in (
        {"op": "replace", "path": "displayName", "value": f"{name}-2"},
        {"op": "replace", "value": {"displayName": f"{name}-2"}},
    ):
        error(django_client.patch(f"/Groups/{group_id}", json=ops(operation)), 501)

    add = ops({"op": "add", "path": "members", "value": [{"value": member["id"]}]})
    assert django_client.patch(f"/Groups/{group_id}", json=add).status_code == 200
    # PUT renames, but (Gap) ignores members: it neither sets nor clears them.
    other = new_user(django_client)
    put = django_client.put(f"/Groups/{group_id}", json=scim_group(f"{name}-2", [other["id"]]))
    assert put.status_code == 200
    assert put.json()["displayName"] == f"{name}-2"
    assert member_ids(django_client, group_id) == {member["id"]}
    put = django_client.put(f"/Groups/{group_id}", json=scim_group(f"{name}-3"))
    assert member_ids(django_client, group_id) == {member["id"]}

    deleted = django_client.delete(f"/Groups/{group_id}")
    assert deleted.status_code == 204
    error(django_client.get(f"/Groups/{group_id}"), 404)


def test_members(django_scim: DjangoScimProcess, django_client: httpx.Client) -> None:
    alice, bob, carol = (new_user(django_client) for _ in range(3))
    group_id = new_group(django_client)["id"]
    path = f"/Groups/{group_id}"

    values = [{"value": u["id"]} for u in (alice, bob, carol)]
    added = django_client.patch(path, json=ops({"op": "add", "path": "members", "value": values}))
    assert added.status_code == 200
    members = added.json()["members"]
    assert {m["value"] for m in members} == {alice["id"], bob["id"], carol["id"]}
    # Members always come back, with display and $ref, even when asked to leave them out.
    assert {"value", "display", "$ref"} == set(members[0])
    assert members[0]["$ref"].startswith(f"{django_scim.base_url}/Users/")
    excluded = django_client.get(path, params={"excludedAttributes": "members"}).json()
    assert len(excluded["members"]) == 3
    user = django_client.get(f"/Users/{alice['id']}").json()
    assert [g["value"] for g in user["groups"]] == [group_id]

    # Gap: removing a member by a path filter (RFC 7644 section 3.5.2.2) is not implemented.
    by_filter = ops({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'})
    error(django_client.patch(path, json=by_filter), 501)
    assert bob["id"] in member_ids(django_client, group_id)
    # The value-list form (what Entra ID sends) works.
    by_value = ops({"op": "remove", "path": "members", "value": [{"value": bob["id"]}]})
    assert django_client.patch(path, json=by_value).status_code == 200
    assert member_ids(django_client, group_id) == {alice["id"], carol["id"]}
    assert django_client.patch(path, json=by_value).status_code == 200  # not a member: no-op
    # Gap: "remove all members" (no value) answers 200 and removes nothing.
    everyone = ops({"op": "remove", "path": "members"})
    assert django_client.patch(path, json=everyone).status_code == 200
    assert member_ids(django_client, group_id) == {alice["id"], carol["id"]}
    # Gap: members cannot be replaced as a whole.
    replace = ops({"op": "replace", "path": "members", "value": [{"value": bob["id"]}]})
    error(django_client.patch(path, json=replace), 501)

    # Unknown members are refused: 400 for a missing user, 500 (Gap) for a non-numeric id.
    unknown = ops({"op": "add", "path": "members", "value": [{"value": "999999"}]})
    assert "non-existent user" in error(django_client.patch(path, json=unknown), 400)["detail"]
    not_a_number = ops({"op": "add", "path": "members", "value": [{"value": "abc"}]})
    error(django_client.patch(path, json=not_a_number), 500)

    # A deleted user leaves its groups.
    assert django_client.delete(f"/Users/{carol['id']}").status_code == 204
    assert member_ids(django_client, group_id) == {alice["id"]}


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_pagination_defaults(django_client: httpx.Client, resource: str) -> None:
    """No ``count``: up to 50 per page (its ``filter.maxResults``); ``count=0``: none."""
    listed = django_client.get(f"/{resource}").json()
    assert listed["startIndex"] == 1
    assert listed["itemsPerPage"] == len(listed["Resources"]) <= 50
    empty = django_client.get(f"/{resource}", params={"count": 0}).json()
    assert empty["Resources"] == []
    assert empty["totalResults"] == listed["totalResults"]
