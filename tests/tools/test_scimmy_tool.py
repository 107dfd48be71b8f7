"""scimmy + scimmy-routers (in-memory handlers, under node) as a SCIM client sees it, over HTTP.

Every assertion pins down what the server does today, gaps included (marked "Gap:"), so that a
new version that behaves differently fails here first. What the handlers in ``server.js``
decide (userName uniqueness, unknown members kept, a deleted user leaving its groups) is
marked "Handler:"; the rest is scimmy's. ``docs/compatibility.md`` explains each gap.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from headwater.testing.servers import ScimmyProcess
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    PATCH_SCHEMA,
    USER_SCHEMA,
    scim_group,
    scim_user,
    unique,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def new_user(client: httpx.Client, prefix: str = "sm", **attributes: Any) -> dict[str, Any]:
    response = client.post("/Users", json=scim_user(f"{unique(prefix)}@example.org", **attributes))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def new_group(
    client: httpx.Client, members: list[str] | None = None, prefix: str = "sm-group"
) -> dict[str, Any]:
    response = client.post("/Groups", json=scim_group(unique(prefix), members or []))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def member_ids(client: httpx.Client, group_id: str) -> list[str]:
    response = client.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return [m["value"] for m in response.json().get("members", [])]


def error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """The SCIM error body of ``response``, which must have ``status`` (and ``scim_type``)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return body


# --- The server -------------------------------------------------------------------------------


def test_starts_and_describes_itself(scimmy: ScimmyProcess, scimmy_client: httpx.Client) -> None:
    assert scimmy.running
    assert scimmy.base_url == f"http://127.0.0.1:{scimmy.port}/scim/v2"
    config = scimmy_client.get("/ServiceProviderConfig")
    assert config.status_code == 200
    assert config.headers["content-type"] == "application/scim+json; charset=utf-8"
    body = config.json()
    # scimmy-routers announces everything scimmy implements, bulk and sort included.
    assert body["patch"] == {"supported": True}
    assert body["filter"] == {"supported": True, "maxResults": 200}
    assert body["sort"] == {"supported": True}
    assert body["bulk"]["supported"] is True
    assert body["etag"] == {"supported": False}
    assert body["changePassword"] == {"supported": False}
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]
    assert body["meta"]["location"] == f"{scimmy.base_url}/ServiceProviderConfig"
    types = scimmy_client.get("/ResourceTypes").json()["Resources"]
    assert sorted(t["endpoint"] for t in types) == ["/Groups", "/Users"]
    # Gap: express adds a weak ETag to every answer, though SCIM ETags are not supported.
    assert config.headers["etag"].startswith('W/"')


def test_bearer_token(scimmy: ScimmyProcess) -> None:
    url = f"{scimmy.base_url}/Users"
    with httpx.Client(trust_env=False, timeout=5) as client:
        refused = client.get(url)
        error(refused, 401)
        # Gap: no WWW-Authenticate header on the 401 (RFC 6750 asks for one).
        assert "www-authenticate" not in refused.headers
        error(client.get(url, headers={"Authorization": "Bearer wrong"}), 401)
        assert client.get(url, headers=scimmy.headers).status_code == 200
        # Discovery needs the token too (scim2-server answers it without one).
        assert client.get(f"{scimmy.base_url}/ServiceProviderConfig").status_code == 401


# --- Users ------------------------------------------------------------------------------------


def test_user_lifecycle(scimmy: ScimmyProcess, scimmy_client: httpx.Client) -> None:
    name = f"{unique('alice')}@example.org"
    body = scim_user(
        name,
        name={"givenName": "Alice", "familyName": "Liddell"},
        emails=[{"value": name, "primary": True}],
        externalId="ext-1",
        active=True,
    )
    created = scimmy_client.post("/Users", json=body)
    assert created.status_code == 201
    user = created.json()
    user_id = user["id"]
    assert UUID.match(user_id)
    assert user["meta"]["location"] == f"{scimmy.base_url}/Users/{user_id}"
    # Gap: no Location header on 201 (RFC 7644 section 3.3 requires one).
    assert "location" not in created.headers
    assert "displayName" not in user  # only what was sent, nothing derived

    found = scimmy_client.get("/Users", params={"filter": f'userName eq "{name}"'}).json()
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == user_id
    by_external_id = scimmy_client.get("/Users", params={"filter": 'externalId eq "ext-1"'})
    assert [u["id"] for u in by_external_id.json()["Resources"]] == [user_id]
    assert scimmy_client.get(f"/Users/{user_id}").json()["userName"] == name

    # PUT replaces: what it leaves out is gone.
    replaced = scimmy_client.put(
        f"/Users/{user_id}", json=scim_user(name, name={"givenName": "Alicia"}, active=True)
    )
    assert replaced.status_code == 200
    assert replaced.json()["name"] == {"givenName": "Alicia"}
    assert "externalId" not in replaced.json()
    assert replaced.json()["meta"]["created"] == user["meta"]["created"]

    # Deactivation, with a path and in the no-path form Entra ID sends.
    off = scimmy_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "path": "active", "value": False})
    )
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert off.json()["meta"]["lastModified"] > user["meta"]["lastModified"]
    on = scimmy_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "value": {"active": True}})
    )
    assert on.json()["active"] is True
    # Any attribute of the schema can be patched.
    patched = scimmy_client.patch(
        f"/Users/{user_id}",
        json=ops(
            {"op": "replace", "path": "displayName", "value": "Al"},
            {"op": "add", "path": "title", "value": "Boss"},
            {"op": "replace", "path": "externalId", "value": "ext-2"},
        ),
    )
    assert {k: patched.json()[k] for k in ("displayName", "title", "externalId")} == {
        "displayName": "Al",
        "title": "Boss",
        "externalId": "ext-2",
    }
    # A PATCH that changes nothing answers 204, without a body.
    same = scimmy_client.patch(
        f"/Users/{user_id}", json=ops({"op": "replace", "path": "title", "value": "Boss"})
    )
    assert (same.status_code, same.content) == (204, b"")

    deleted = scimmy_client.delete(f"/Users/{user_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    error(scimmy_client.get(f"/Users/{user_id}"), 404)
    error(scimmy_client.delete(f"/Users/{user_id}"), 404)


def test_user_uniqueness_and_validation(scimmy_client: httpx.Client) -> None:
    user = new_user(scimmy_client)
    name = user["userName"]
    # Handler: userName is unique whatever its case.
    error(scimmy_client.post("/Users", json=scim_user(name)), 409, "uniqueness")
    error(scimmy_client.post("/Users", json=scim_user(name.upper())), 409, "uniqueness")
    # Gap: but scimmy's filter compares case-sensitively, so a lookup in another case misses
    # the account that a create then collides with.
    upper = scimmy_client.get("/Users", params={"filter": f'userName eq "{name.upper()}"'})
    assert upper.json()["totalResults"] == 0
    other = new_user(scimmy_client)
    error(scimmy_client.put(f"/Users/{other['id']}", json=scim_user(name)), 409, "uniqueness")
    patch = ops({"op": "replace", "path": "userName", "value": name})
    error(scimmy_client.patch(f"/Users/{other['id']}", json=patch), 409, "uniqueness")

    missing = scimmy_client.post("/Users", json={"schemas": [USER_SCHEMA]})
    assert "userName" in error(missing, 400, "invalidValue")["detail"]
    wrong_type = ops({"op": "replace", "path": "active", "value": "False"})
    error(scimmy_client.patch(f"/Users/{user['id']}", json=wrong_type), 400, "invalidValue")
    unknown_op = ops({"op": "frobnicate", "path": "title", "value": "x"})
    error(scimmy_client.patch(f"/Users/{user['id']}", json=unknown_op), 400, "invalidSyntax")
    no_match = ops({"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.org"})
    error(scimmy_client.patch(f"/Users/{user['id']}", json=no_match), 400, "noTarget")
    # Gap: a body that is not JSON gets a SCIM error typed application/json.
    bad_json = scimmy_client.post("/Users", content=b"{not json")
    error(bad_json, 400)
    assert bad_json.headers["content-type"].startswith("application/json")


def test_filters_and_paging(scimmy_client: httpx.Client) -> None:
    prefix = unique("page")
    users = [
        new_user(
            scimmy_client,
            prefix,
            emails=[{"value": f"{prefix}-{n}@example.org", "primary": True}],
            active=n % 2 == 0,
        )
        for n in range(5)
    ]
    starts = {"filter": f'userName sw "{prefix}"'}
    assert scimmy_client.get("/Users", params=starts).json()["totalResults"] == 5
    pages = [
        scimmy_client.get("/Users", params={**starts, "startIndex": start, "count": 2}).json()
        for start in (1, 3, 5)
    ]
    assert [len(p["Resources"]) for p in pages] == [2, 2, 1]
    assert {u["id"] for p in pages for u in p["Resources"]} == {u["id"] for u in users}
    ordered = scimmy_client.get(
        "/Users", params={**starts, "sortBy": "userName", "sortOrder": "descending"}
    ).json()["Resources"]
    assert [u["userName"] for u in ordered] == sorted((u["userName"] for u in users), reverse=True)
    both = f'userName sw "{prefix}" and active eq true'
    assert scimmy_client.get("/Users", params={"filter": both}).json()["totalResults"] == 3

    # Gap: a filter on a sub-attribute fails with 400 as soon as one resource lacks the
    # attribute (here: a user without emails).
    new_user(scimmy_client)
    on_emails = {"filter": f'emails.value eq "{prefix}-1@example.org"'}
    error(scimmy_client.get("/Users", params=on_emails), 400, "invalidValue")
    # Gap: an unknown attribute matches nothing, with 200, instead of answering 400.
    unknown = scimmy_client.get("/Users", params={"filter": 'nosuch eq "x"'})
    assert unknown.status_code == 200
    assert unknown.json()["totalResults"] == 0
    # Gap: itemsPerPage is the page size asked for (20 by default), not the number returned.
    assert (unknown.json()["itemsPerPage"], unknown.json()["Resources"]) == (20, [])
    for expression in ("(((", 'userName xx "a"'):
        error(scimmy_client.get("/Users", params={"filter": expression}), 400, "invalidFilter")
    # Gap: an incomplete comparison is no error either: it matches nothing.
    assert scimmy_client.get("/Users", params={"filter": "userName eq"}).status_code == 200

    # Without count: pages of 20 (scimmy's default), whatever filter.maxResults says.
    total = scimmy_client.get("/Users", params={"count": 0}).json()["totalResults"]
    for _ in range(total, 21):
        new_user(scimmy_client)
    listed = scimmy_client.get("/Users").json()
    assert listed["totalResults"] > 20
    assert (listed["itemsPerPage"], len(listed["Resources"])) == (20, 20)
    empty = scimmy_client.get("/Users", params={"count": 0}).json()
    assert (empty["Resources"], empty["totalResults"]) == ([], listed["totalResults"])


def test_attributes_parameters(scimmy_client: httpx.Client) -> None:
    user = new_user(scimmy_client, name={"givenName": "Ann"}, emails=[{"value": "a@x.org"}])
    only = scimmy_client.get(f"/Users/{user['id']}", params={"attributes": "userName"}).json()
    # Gap: "schemas" goes too (RFC 7643 returns it always).
    assert only == {"id": user["id"], "userName": user["userName"]}
    without = scimmy_client.get(
        f"/Users/{user['id']}", params={"excludedAttributes": "emails,name"}
    ).json()
    assert "emails" not in without
    assert "name" not in without
    assert without["userName"] == user["userName"]


# --- Groups -----------------------------------------------------------------------------------


def test_group_lifecycle(scimmy: ScimmyProcess, scimmy_client: httpx.Client) -> None:
    alice, bob = new_user(scimmy_client), new_user(scimmy_client)
    name = unique("Engineering")
    created = scimmy_client.post("/Groups", json=scim_group(name, [alice["id"]]))
    assert created.status_code == 201
    group = created.json()
    group_id = group["id"]
    assert UUID.match(group_id)
    assert group["meta"]["location"] == f"{scimmy.base_url}/Groups/{group_id}"
    # Members are kept as sent: just the value, no display or $ref added.
    assert group["members"] == [{"value": alice["id"]}]
    user = scimmy_client.get(f"/Users/{alice['id']}").json()
    # Handler: a user's groups are derived from the groups' members.
    assert user["groups"] == [{"value": group_id, "display": name, "type": "direct"}]

    # Handler: display names need not be unique (RFC 7643 does not ask it).
    twin = scimmy_client.post("/Groups", json=scim_group(name))
    assert twin.status_code == 201
    found = scimmy_client.get("/Groups", params={"filter": f'displayName eq "{name}"'}).json()
    assert {g["id"] for g in found["Resources"]} == {group_id, twin.json()["id"]}
    scimmy_client.delete(f"/Groups/{twin.json()['id']}")

    # Renaming by PATCH, in both forms.
    path = f"/Groups/{group_id}"
    renamed = scimmy_client.patch(
        path, json=ops({"op": "replace", "path": "displayName", "value": f"{name}-2"})
    )
    assert renamed.json()["displayName"] == f"{name}-2"
    renamed = scimmy_client.patch(
        path, json=ops({"op": "replace", "value": {"displayName": f"{name}-3"}})
    )
    assert renamed.json()["displayName"] == f"{name}-3"
    # PUT replaces the members with those it names.
    put = scimmy_client.put(path, json=scim_group(f"{name}-4", [bob["id"]]))
    assert put.status_code == 200
    assert member_ids(scimmy_client, group_id) == [bob["id"]]
    put = scimmy_client.put(path, json=scim_group(f"{name}-4"))
    assert member_ids(scimmy_client, group_id) == []

    assert scimmy_client.delete(path).status_code == 204
    error(scimmy_client.get(path), 404)


def test_members(scimmy_client: httpx.Client) -> None:
    alice, bob, carol, dave = (new_user(scimmy_client) for _ in range(4))
    group_id = new_group(scimmy_client)["id"]
    path = f"/Groups/{group_id}"

    values = [{"value": u["id"]} for u in (alice, bob, carol)]
    added = scimmy_client.patch(path, json=ops({"op": "add", "path": "members", "value": values}))
    assert added.status_code == 200
    assert [m["value"] for m in added.json()["members"]] == [alice["id"], bob["id"], carol["id"]]
    # members are returned by default, and left out on request.
    excluded = scimmy_client.get(path, params={"excludedAttributes": "members"}).json()
    assert "members" not in excluded
    # Gap: filtering groups on members fails with 400 while any group has no members (the
    # same fault as for any sub-attribute some resource lacks).
    empty_group = new_group(scimmy_client)
    by_member = {"filter": f'members[value eq "{bob["id"]}"]'}
    error(scimmy_client.get("/Groups", params=by_member), 400, "invalidValue")
    scimmy_client.delete(f"/Groups/{empty_group['id']}")

    # Both removal forms work.
    by_filter = ops({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'})
    assert scimmy_client.patch(path, json=by_filter).status_code == 200
    by_value = ops({"op": "remove", "path": "members", "value": [{"value": carol["id"]}]})
    assert scimmy_client.patch(path, json=by_value).status_code == 200
    assert member_ids(scimmy_client, group_id) == [alice["id"]]
    # Removing someone who is not a member changes nothing: 204, in either form.
    for absent in (by_filter, by_value):
        assert scimmy_client.patch(path, json=absent).status_code == 204

    replace = ops({"op": "replace", "path": "members", "value": [{"value": dave["id"]}]})
    assert scimmy_client.patch(path, json=replace).status_code == 200
    assert member_ids(scimmy_client, group_id) == [dave["id"]]

    # Handler: unknown member ids are kept as given.
    unknown = ops({"op": "add", "path": "members", "value": [{"value": "no-such-user"}]})
    assert scimmy_client.patch(path, json=unknown).status_code == 200
    assert member_ids(scimmy_client, group_id) == [dave["id"], "no-such-user"]
    # Handler: a deleted user leaves its groups.
    assert scimmy_client.delete(f"/Users/{dave['id']}").status_code == 204
    assert member_ids(scimmy_client, group_id) == ["no-such-user"]

    # Removing every member takes the attribute away: no "members" at all, not [].
    everyone = scimmy_client.patch(path, json=ops({"op": "remove", "path": "members"}))
    assert everyone.status_code == 200
    assert "members" not in everyone.json()
    assert "members" not in scimmy_client.get(path).json()
