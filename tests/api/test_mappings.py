"""Okta's Profile Mappings API and the app user schema: shapes, errors, roles, the exact keys a
change enqueues, the mass-change hold, and the plan's attribute diffs; the official SDK reads
and updates a mapping."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    api_client,
    api_token,
    assert_okta_error,
    assign_group,
    clear_keys,
    converge,
    create_app,
    create_group,
    create_scim_app,
    create_user,
    event_types,
    ok,
    queued_subjects,
    require_module,
    sdk_ok,
)

TITLE = 'user.department == "Engineering" ? "Builder" : user.title'


def _world(runtime: Runtime) -> tuple[str, dict[str, str]]:
    people = {
        "eng": create_user(runtime, "eng@example.com", department="Engineering", title="Clerk"),
        "sales": create_user(runtime, "sales@example.com", department="Sales", title="Clerk"),
        "done": create_user(runtime, "done@example.com", department="Engineering", title="Builder"),
    }
    app_id = create_app(runtime, "Wiki")
    assign_group(runtime, app_id, create_group(runtime, "Staff", list(people.values())))
    clear_keys(runtime)
    return app_id, people


def test_the_built_in_mapping_in_okta_shapes(client: TestClient, runtime: Runtime) -> None:
    app_id, _ = _world(runtime)
    listed = ok(client.get("/api/v1/mappings", params={"targetId": app_id}))
    assert [(m["id"], m["source"]["type"], m["target"]["type"]) for m in listed] == [
        (app_id, "user", "appuser")
    ]
    assert ok(client.get("/api/v1/mappings", params={"sourceId": app_id})) == []
    mapping = ok(client.get(f"/api/v1/mappings/{app_id}"))
    assert mapping["target"] == {
        "id": app_id,
        "name": "bookmark",
        "type": "appuser",
        "_links": {"self": {"href": f"http://testserver/api/v1/apps/{app_id}"}},
    }
    assert mapping["properties"]["givenName"] == {
        "expression": "user.firstName",
        "pushStatus": "PUSH",
    }
    assert set(mapping["properties"]) >= {"email", "title", "department", "employeeNumber"}
    assert_okta_error(client.get("/api/v1/mappings/0oaNoSuchApp00000000"), 404, "E0000007")


def test_a_change_enqueues_exactly_the_affected_users(client: TestClient, runtime: Runtime) -> None:
    app_id, people = _world(runtime)
    body = {"properties": {"title": {"expression": TITLE, "pushStatus": "PUSH"}}}
    changed = ok(client.post(f"/api/v1/mappings/{app_id}", json=body))
    assert changed["properties"]["title"] == {"expression": TITLE, "pushStatus": "PUSH"}
    # "done" is a Builder already, "sales" keeps its title: only "eng" changes.
    assert queued_subjects(runtime, app_id) == {people["eng"]}
    assert "app.headwater.mapping.updated" in event_types(runtime)
    clear_keys(runtime)
    # Back to the built-in mapping: the same user again.
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": {"title": None}}))
    assert queued_subjects(runtime, app_id) == {people["eng"]}
    assert ok(client.get(f"/api/v1/mappings/{app_id}"))["properties"]["title"] == {
        "expression": "user.title",
        "pushStatus": "PUSH",
    }


def test_bad_mappings_are_refused_naming_the_place(client: TestClient, runtime: Runtime) -> None:
    app_id, _ = _world(runtime)
    url = f"/api/v1/mappings/{app_id}"
    before = ok(client.get(url))
    typo = {"properties": {"title": {"expression": "String.toLower(user.title)"}}}
    assert_okta_error(
        client.post(url, json=typo), 400, "E0000001", "did you mean String.toLowerCase"
    )
    for body, cause in [
        ({"properties": {"title": {"expression": "user.title +"}}}, "column"),
        ({"properties": {"nope": {"expression": "user.x"}}}, "unknown attribute"),
        ({"properties": {"title": {"pushStatus": "LATER"}}}, "PUSH, CREATE or DONT_PUSH"),
        ({"properties": {"title": {"expression": "x" * 5000}}}, "1 to 1024"),
        ({"properties": []}, "must be an object"),
        ({}, "properties: is required"),
        ({"properties": {"title": {"expression": '"a\u0000"'}}}, "NUL"),
    ]:
        response = client.post(url, json=body)
        assert response.status_code == 400, response.text
        assert any(cause in c["errorSummary"] for c in response.json()["errorCauses"]), (
            body,
            response.text,
        )
    assert ok(client.get(url)) == before
    assert queued_subjects(runtime, app_id) == set()


def test_roles(runtime: Runtime) -> None:
    mine, _ = _world(runtime)
    theirs = create_app(runtime, "Payroll")
    body = {"properties": {"title": {"expression": TITLE}}}
    admin = api_token(runtime, "app-admin", role="APP_ADMIN", apps=[mine])
    with api_client(runtime, admin) as client:
        ok(client.post(f"/api/v1/mappings/{mine}", json=body))
        assert_okta_error(client.post(f"/api/v1/mappings/{theirs}", json=body), 403, "E0000006")
        assert_okta_error(client.get(f"/api/v1/mappings/{theirs}"), 403, "E0000006")
        assert [m["id"] for m in ok(client.get("/api/v1/mappings"))] == [mine]
    reader = api_token(runtime, "reader", role="READ_ONLY_ADMIN")
    with api_client(runtime, reader) as client:
        ok(client.get(f"/api/v1/mappings/{theirs}"))
        assert_okta_error(client.post(f"/api/v1/mappings/{mine}", json=body), 403, "E0000006")


def test_custom_app_attributes(client: TestClient, runtime: Runtime) -> None:
    app_id, people = _world(runtime)
    url = f"/api/v1/meta/schemas/apps/{app_id}/default"
    role = {"title": "Role", "type": "string", "externalNamespace": "urn:example:wiki:2.0:User"}
    schema = ok(client.post(url, json={"definitions": {"custom": {"properties": {"role": role}}}}))
    assert schema["definitions"]["custom"]["properties"]["role"]["externalNamespace"] == (
        "urn:example:wiki:2.0:User"
    )
    assert "costCenter" in ok(client.get(url))["definitions"]["base"]["properties"]
    expression = {"expression": 'user.department == "Sales" ? "seller" : "member"'}
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": {"role": expression}}))
    assert queued_subjects(runtime, app_id) == set(people.values())
    removal = {"definitions": {"custom": {"properties": {"role": None}}}}
    assert_okta_error(client.post(url, json=removal), 400, "E0000001", "is mapped")
    for spec, cause in [
        ({"type": "object"}, "must be string, integer"),
        ({"type": "string", "externalNamespace": "nope"}, "extension URN"),
        ({"type": "string", "externalName": "other"}, "externalName"),
    ]:
        bad = {"definitions": {"custom": {"properties": {"extra": spec}}}}
        assert_okta_error(client.post(url, json=bad), 400, "E0000001", cause)
    bad_name = {"definitions": {"custom": {"properties": {"title": {"type": "string"}}}}}
    assert_okta_error(client.post(url, json=bad_name), 400, "E0000001", "new name")
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": {"role": None}}))
    ok(client.post(url, json=removal))
    assert ok(client.get(url))["definitions"]["custom"]["properties"] == {}


def test_a_mass_change_is_held_until_approved_and_the_plan_shows_diffs(
    client: TestClient, runtime: Runtime
) -> None:
    downstream = InProcessScim().serve(runtime)
    people = [
        create_user(runtime, f"p{n}@example.com", department="Engineering", title="Clerk")
        for n in range(4)
    ]
    app_id = create_scim_app(
        runtime, downstream.base_url, mass_change_threshold=0.5, mass_change_minimum=2
    )
    assign_group(runtime, app_id, create_group(runtime, "Staff", people))
    converge(runtime)
    url = f"/api/v1/mappings/{app_id}"
    body = {"properties": {"title": {"expression": TITLE}}}
    held = client.post(url, json=body)
    assert held.status_code == 202, held.text
    assert held.json()["properties"]["title"]["expression"] == "user.title"
    assert held.json()["_embedded"]["held"]["properties"]["title"]["expression"] == TITLE
    assert queued_subjects(runtime, app_id) == set()
    assert "app.headwater.mass_change.held" in event_types(runtime)
    ok(client.post(url + "/lifecycle/approve"))
    assert queued_subjects(runtime, app_id) == set(people)
    plan = ok(client.get(f"/api/v1/apps/{app_id}/plan"))
    assert plan["summary"] == {"UPDATE_ACCOUNT": 4}
    assert plan["attributeChanges"][people[0]] == {"title": {"from": "Clerk", "to": "Builder"}}
    converge(runtime)
    assert {u["title"] for u in downstream.scim.users()} == {"Builder"}
    # A held change can be rejected: nothing changes.
    back = client.post(url, json={"properties": {"title": None}})
    assert back.status_code == 202
    ok(client.post(url + "/lifecycle/reject"))
    assert ok(client.get(url))["properties"]["title"]["expression"] == TITLE
    assert_okta_error(client.post(url + "/lifecycle/reject"), 400, "E0000001", "no held")


async def test_the_official_sdk_reads_and_updates_a_mapping(
    okta_client: Any, runtime: Runtime
) -> None:
    models = require_module("okta.models")
    app_id, people = _world(runtime)
    listed = sdk_ok(await okta_client.list_profile_mappings(target_id=app_id))
    assert [m.id for m in listed] == [app_id]
    mapping = sdk_ok(await okta_client.get_profile_mapping(app_id))
    assert mapping.properties["email"].expression == "user.email"
    request = models.ProfileMappingRequest(
        properties={
            "title": models.ProfileMappingProperty(expression=TITLE, push_status="PUSH"),
            "department": models.ProfileMappingProperty(push_status="DONT_PUSH"),
        }
    )
    updated = sdk_ok(await okta_client.update_profile_mapping(app_id, request))
    assert updated.properties["title"].expression == TITLE
    assert updated.properties["department"].push_status == "DONT_PUSH"
    assert queued_subjects(runtime, app_id) == set(people.values())
