"""The directory's user schema (``/api/v1/meta/schemas/user/default``): Okta's shape, typed
profile writes (400 naming the attribute, nothing written), expressions checked against it when
saved, removals that a mapping or template block and that turn group rules INVALID, bounds and
roles."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    api_client,
    api_token,
    assert_okta_error,
    create_app,
    create_group,
    create_rule,
    create_user,
    event_types,
    members,
    ok,
)

URL = "/api/v1/meta/schemas/user/default"


def _declare(client: TestClient, **properties: Any) -> dict[str, Any]:
    body = {"definitions": {"custom": {"properties": properties}}}
    return ok(client.post(URL, json=body))  # type: ignore[no-any-return]


def _typed(client: TestClient) -> None:
    _declare(
        client,
        costCenter2={"title": "Cost centre", "type": "string", "maxLength": 10},
        level={"title": "Level", "type": "integer", "enum": [1, 2, 3]},
        score={"title": "Score", "type": "number", "description": "a rating"},
        contractor={"title": "Contractor", "type": "boolean"},
        badges={"title": "Badges", "type": "array", "items": {"type": "string"}},
    )


def _profile(login: str, **extra: Any) -> dict[str, Any]:
    return {"login": login, "email": login, "firstName": "Ann", "lastName": "Tester", **extra}


def test_the_default_schema_in_okta_shape(client: TestClient) -> None:
    schema = ok(client.get(URL))
    assert schema["definitions"]["custom"]["properties"] == {}
    base = schema["definitions"]["base"]
    assert {"login", "email", "firstName", "lastName"} <= set(base["required"])
    assert base["properties"]["login"]["type"] == "string"
    assert schema["properties"]["profile"]["allOf"][0] == {"$ref": "#/definitions/custom"}
    assert ok(client.get("/api/v1/meta/schemas/user/otyheadwaterdefault0"))["name"] == "user"
    assert_okta_error(client.get("/api/v1/meta/schemas/user/other"), 404, "E0000007")


def test_declare_change_and_remove_custom_attributes(client: TestClient, runtime: Runtime) -> None:
    _typed(client)
    schema = ok(client.get(URL))
    custom = schema["definitions"]["custom"]["properties"]
    assert sorted(custom) == ["badges", "contractor", "costCenter2", "level", "score"]
    assert custom["level"]["enum"] == [1, 2, 3]
    assert custom["badges"]["items"] == {"type": "string"}
    assert custom["costCenter2"]["maxLength"] == 10
    changed = _declare(client, score={"title": "Rating", "type": "number"}, badges=None)
    assert sorted(changed["definitions"]["custom"]["properties"]) == [
        "contractor",
        "costCenter2",
        "level",
        "score",
    ]
    assert changed["definitions"]["custom"]["properties"]["score"]["title"] == "Rating"
    assert "system.headwater.user_schema.update" in event_types(runtime, "system.headwater")


def test_profile_writes_of_the_wrong_type_are_refused_and_nothing_is_written(
    client: TestClient, runtime: Runtime
) -> None:
    _typed(client)
    bad_create = client.post(
        "/api/v1/users", json={"profile": _profile("a@example.com", level="3")}
    )
    assert_okta_error(bad_create, 400, "E0000001", "level: must be an integer")
    assert ok(client.get("/api/v1/users")) == []
    good = _profile("a@example.com", level=2, score=4.5, contractor=True, badges=["x"])
    user = ok(client.post("/api/v1/users", json={"profile": good}))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"contractor": "yes"}, "contractor: must be a boolean"),
        ({"score": "high"}, "score: must be a number"),
        ({"level": 7}, "level: Does not match one of the enumerated values"),
        ({"costCenter2": "x" * 11}, "costCenter2: must be at most 10 characters"),
        ({"badges": [1]}, "badges: array items must be a string"),
        ({"badges": "x"}, "badges: must be an array of strings"),
        ({"undeclared": "x"}, "undeclared: Property name 'undeclared' is not defined"),
    ]
    for changes, cause in cases:
        partial = client.post(f"/api/v1/users/{user['id']}", json={"profile": changes})
        assert_okta_error(partial, 400, "E0000001", cause)
        full = client.put(f"/api/v1/users/{user['id']}", json={"profile": {**good, **changes}})
        assert_okta_error(full, 400, "E0000001", cause)
    stored = ok(client.get(f"/api/v1/users/{user['id']}"))["profile"]
    assert (stored["level"], stored["contractor"], stored["badges"]) == (2, True, ["x"])
    ok(client.post(f"/api/v1/users/{user['id']}", json={"profile": {"level": 3}}))


def test_required_custom_attributes(client: TestClient) -> None:
    _declare(client, site={"title": "Site", "type": "string", "required": True})
    missing = client.post("/api/v1/users", json={"profile": _profile("b@example.com")})
    assert_okta_error(missing, 400, "E0000001", "site: The field cannot be left blank")
    user = ok(client.post("/api/v1/users", json={"profile": _profile("b@example.com", site="L")}))
    removed = client.post(f"/api/v1/users/{user['id']}", json={"profile": {"site": None}})
    assert_okta_error(removed, 400, "E0000001", "site: The field cannot be left blank")


def test_a_schema_without_custom_attributes_keeps_profiles_free(client: TestClient) -> None:
    user = _profile("c@example.com", anything="goes", count=3)
    ok(client.post("/api/v1/users", json={"profile": user}))


def test_expressions_are_checked_against_the_schema_when_saved(
    client: TestClient, runtime: Runtime
) -> None:
    group = create_group(runtime, "Contractors")
    app_id = create_app(runtime, "Wiki")
    # Without custom attributes, any attribute may be read (as before).
    free = create_rule(runtime, "free", 'user.anything == "x"', [group], activate=False)
    assert free
    _typed(client)
    rule = {
        "type": "group_rule",
        "name": "contractors",
        "conditions": {"expression": {"value": "user.contractr == true"}},
        "actions": {"assignUserToGroups": {"groupIds": [group]}},
    }
    refused = client.post("/api/v1/groups/rules", json=rule)
    assert_okta_error(refused, 400, "E0000001", "unknown attribute user.contractr")
    assert "did you mean user.contractor" in refused.text
    rule["conditions"]["expression"]["value"] = 'user.level == "x"'  # type: ignore[index]
    mistyped = client.post("/api/v1/groups/rules", json=rule)
    assert_okta_error(mistyped, 400, "E0000001", "cannot compare a number with a string")
    rule["conditions"]["expression"]["value"] = "user.level == 3 || user.contractor"  # type: ignore[index]
    ok(client.post("/api/v1/groups/rules", json=rule))
    mapping = client.post(
        f"/api/v1/mappings/{app_id}",
        json={"properties": {"title": {"expression": "user.nosuch", "pushStatus": "PUSH"}}},
    )
    assert_okta_error(mapping, 400, "E0000001", "properties.title.expression")
    expression = 'user.contractor ? "Contractor" : user.title'
    ok(
        client.post(
            f"/api/v1/mappings/{app_id}",
            json={"properties": {"title": {"expression": expression, "pushStatus": "PUSH"}}},
        )
    )
    template = {"userNameTemplate": "${source.nosuch}"}
    refused_template = client.put(f"/api/v1/apps/{app_id}/provisioning/settings", json=template)
    assert_okta_error(refused_template, 400, "E0000001", "unknown attribute source.nosuch")


def test_removing_an_attribute_a_mapping_reads_is_refused_naming_it(
    client: TestClient, runtime: Runtime
) -> None:
    _typed(client)
    app_id = create_app(runtime, "Wiki")
    expression = 'user.contractor ? "Contractor" : user.title'
    ok(
        client.post(
            f"/api/v1/mappings/{app_id}",
            json={"properties": {"title": {"expression": expression, "pushStatus": "PUSH"}}},
        )
    )
    refused = client.post(
        URL, json={"definitions": {"custom": {"properties": {"contractor": None}}}}
    )
    body = assert_okta_error(refused, 400, "E0000001", "attribute mapping of app Wiki")
    assert "title" in str(body)
    assert "contractor" in ok(client.get(URL))["definitions"]["custom"]["properties"]


def test_removing_an_attribute_an_active_rule_reads_invalidates_the_rule(
    client: TestClient, runtime: Runtime
) -> None:
    _typed(client)
    contractor = create_user(runtime, "d@example.com", contractor=True)
    group = create_group(runtime, "Contractors")
    rule_id = create_rule(runtime, "contractors", "user.contractor == true", [group])
    other = create_rule(runtime, "levels", "user.level == 3", [group])
    assert members(runtime, group) == {contractor}
    _declare(client, contractor=None)
    invalid = ok(client.get(f"/api/v1/groups/rules/{rule_id}"))
    assert invalid["status"] == "INVALID"
    assert "user.contractor was removed" in invalid["invalidReason"]
    assert ok(client.get(f"/api/v1/groups/rules/{other}"))["status"] == "ACTIVE"
    assert members(runtime, group) == {contractor}  # nothing else changed
    assert "group.rule.invalidate" in event_types(runtime, "group.rule", rule_id)


def test_bounds(client: TestClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"1bad": {"type": "string"}}, "names are 1 to 50 letters"),
        ({"a" * 51: {"type": "string"}}, "names are 1 to 50 letters"),
        ({"login": {"type": "string"}}, "is a base attribute"),
        ({"x": {"type": "object"}}, "must be string, integer, number, boolean or array"),
        ({"x": {"type": "array", "items": {"type": "integer"}}}, "arrays hold strings"),
        ({"x": {"type": "string", "title": ""}}, "title: must be 1 to 255"),
        ({"x": {"type": "string", "description": "d" * 1025}}, "description"),
        ({"x": {"type": "string", "minLength": 5, "maxLength": 2}}, "not be more than maxLength"),
        ({"x": {"type": "boolean", "maxLength": 2}}, "only strings have a length"),
        ({"x": {"type": "string", "maxLength": 10**9}}, "maxLength: must be 0 to"),
        ({"x": {"type": "string", "enum": []}}, "enum: must be a list of 1 to 100"),
        ({"x": {"type": "boolean", "enum": [True]}}, "only string and integer"),
        ({"x": {"type": "string", "bogus": 1}}, "unknown field 'bogus'"),
        ({"x": "string"}, "must be an object"),
        ([], "must be an object"),
    ]
    for properties, cause in cases:
        body = {"definitions": {"custom": {"properties": properties}}}
        assert_okta_error(client.post(URL, json=body), 400, "E0000001", cause)
    assert_okta_error(client.post(URL, json={}), 400, "E0000001", "is required")
    many = {f"a{i}": {"type": "string"} for i in range(101)}
    body = {"definitions": {"custom": {"properties": many}}}
    assert_okta_error(client.post(URL, json=body), 400, "E0000001", "at most 100")
    _declare(client, x={"type": "string"})
    changed = client.post(
        URL, json={"definitions": {"custom": {"properties": {"x": {"type": "integer"}}}}}
    )
    assert_okta_error(changed, 400, "E0000001", "x.type: cannot change")


def test_only_a_super_admin_changes_the_schema(runtime: Runtime) -> None:
    body = {"definitions": {"custom": {"properties": {"x": {"type": "string"}}}}}
    tokens = [
        api_token(runtime, "reader", role="READ_ONLY_ADMIN"),
        api_token(runtime, "apps", role="APP_ADMIN", apps=[create_app(runtime, "Mine")]),
    ]
    for token in tokens:
        with api_client(runtime, token) as client:
            assert_okta_error(client.post(URL, json=body), 403, "E0000006")
    with api_client(runtime, tokens[0]) as client:
        ok(client.get(URL))
    with api_client(runtime, api_token(runtime, "super")) as client:
        _declare(client, x={"type": "string"})
