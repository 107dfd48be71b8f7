"""Group rules over the API: Okta's shapes, validation on save, lifecycle, provenance of the
memberships they hold, and the keys those memberships enqueue."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.group_rules import MAX_RULES
from headwater.errors import HeadwaterError
from headwater.runtime import Runtime
from headwater.server import create_app as server_app
from headwater.services import group_rules
from headwater.testing.toolkit import (
    add_member,
    api_client,
    api_token,
    assert_okta_error,
    assign_group,
    clear_keys,
    console_client,
    console_sign_in,
    create_admin,
    create_app,
    create_group,
    create_rule,
    create_user,
    delete_group,
    event_types,
    events,
    links,
    members,
    ok,
    queued_subjects,
    remove_member,
    rename_group,
    update_user,
)

ENGINEERING = 'user.department == "Engineering"'


def rule_body(name: str, expression: str, group_ids: list[str], **people: list[str]) -> Any:
    return {
        "type": "group_rule",
        "name": name,
        "conditions": {
            "people": {
                "users": {"exclude": people.get("users", [])},
                "groups": {"exclude": people.get("groups", [])},
            },
            "expression": {"value": expression, "type": "urn:okta:expression:1.0"},
        },
        "actions": {"assignUserToGroups": {"groupIds": group_ids}},
    }


def test_a_rule_is_created_inactive_in_oktas_shape(client: TestClient, runtime: Runtime) -> None:
    group = create_group(runtime, "Engineering")
    rule = ok(
        client.post("/api/v1/groups/rules", json=rule_body("Dept is Eng", ENGINEERING, [group]))
    )
    assert rule["id"].startswith("0pr")
    assert rule["type"] == "group_rule"
    assert rule["status"] == "INACTIVE"
    assert rule["conditions"]["expression"] == {
        "value": ENGINEERING,
        "type": "urn:okta:expression:1.0",
    }
    assert rule["conditions"]["people"] == {"users": {"exclude": []}, "groups": {"exclude": []}}
    assert rule["actions"] == {"assignUserToGroups": {"groupIds": [group]}}
    assert ok(client.get(f"/api/v1/groups/rules/{rule['id']}")) == rule
    assert event_types(runtime, target_id=rule["id"]) == ["group.rule.create"]


def test_activation_fills_the_group_and_enqueues_downstream_keys(
    client: TestClient, runtime: Runtime
) -> None:
    group = create_group(runtime, "Engineering")
    app = create_app(runtime, "Wiki")
    assign_group(runtime, app, group)
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    bob = create_user(runtime, "bob@example.com", department="Sales")
    rule = ok(client.post("/api/v1/groups/rules", json=rule_body("Eng", ENGINEERING, [group])))
    clear_keys(runtime)
    assert members(runtime, group) == set()
    ok(client.post(f"/api/v1/groups/rules/{rule['id']}/lifecycle/activate"), 204)
    assert members(runtime, group) == {ann}
    assert queued_subjects(runtime, app) == {ann}
    assert ok(client.get(f"/api/v1/groups/rules/{rule['id']}"))["status"] == "ACTIVE"
    explained = ok(client.get(f"/api/v1/apps/{app}/users/{ann}/explain"))
    assert (
        'Ann is in Engineering because rule Eng matched user.department == "Engineering".'
        in explained["reasons"]
    )
    # A profile change re-evaluates the active rule in the same transaction.
    clear_keys(runtime)
    update_user(runtime, bob, department="Engineering")
    assert members(runtime, group) == {ann, bob}
    assert queued_subjects(runtime, app) == {bob}
    update_user(runtime, ann, department="Sales")
    assert members(runtime, group) == {bob}
    # A new user is evaluated when created.
    cyd = create_user(runtime, "cyd@example.com", department="Engineering")
    assert members(runtime, group) == {bob, cyd}


def test_provenance_manual_and_rule_memberships_are_independent(runtime: Runtime) -> None:
    group = create_group(runtime, "Engineering")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    add_member(runtime, group, ann)  # by hand first
    rule = create_rule(runtime, "Eng", ENGINEERING, [group])
    # Removing the manual membership leaves the rule's.
    remove_member(runtime, group, ann)
    assert members(runtime, group) == {ann}
    # The rule no longer matching removes it (nothing manual is left).
    update_user(runtime, ann, department="Sales")
    assert members(runtime, group) == set()
    # A manual membership survives the rule letting go.
    update_user(runtime, ann, department="Engineering")
    add_member(runtime, group, ann)
    update_user(runtime, ann, department="Sales")
    assert members(runtime, group) == {ann}
    with runtime.database.read() as session:
        held = session.execute(select(t.GroupRuleMember).where(t.GroupRuleMember.rule_id == rule))
        assert held.first() is None


def test_deactivate_keeps_and_delete_with_remove_users_takes_back_only_its_own(
    client: TestClient, runtime: Runtime
) -> None:
    eng = create_group(runtime, "Engineering")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    bob = create_user(runtime, "bob@example.com", department="Engineering")
    rule = create_rule(runtime, "Eng", ENGINEERING, [eng])
    other = create_rule(runtime, "Bob", 'user.login == "bob@example.com"', [eng])
    add_member(runtime, eng, ann)
    ok(client.post(f"/api/v1/groups/rules/{rule}/lifecycle/deactivate"), 204)
    assert members(runtime, eng) == {ann, bob}  # kept, as Okta does
    # An active rule cannot be deleted, an inactive one cannot be edited while active.
    assert_okta_error(client.delete(f"/api/v1/groups/rules/{other}"), 400, "E0000001")
    edit = client.put(f"/api/v1/groups/rules/{other}", json=rule_body("X", "true", [eng]))
    assert_okta_error(edit, 400, "E0000001", "deactivate it first")
    response = client.delete(f"/api/v1/groups/rules/{rule}?removeUsers=true")
    assert response.status_code == 202
    # ann stays (manual), bob stays (the other rule holds him).
    assert members(runtime, eng) == {ann, bob}
    ok(client.post(f"/api/v1/groups/rules/{other}/lifecycle/deactivate"), 204)
    assert client.delete(f"/api/v1/groups/rules/{other}?removeUsers=true").status_code == 202
    assert members(runtime, eng) == {ann}
    assert_okta_error(client.get(f"/api/v1/groups/rules/{other}"), 404, "E0000007")


def test_delete_without_remove_users_hands_memberships_over(
    client: TestClient, runtime: Runtime
) -> None:
    eng = create_group(runtime, "Engineering")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    rule = create_rule(runtime, "Eng", ENGINEERING, [eng])
    ok(client.post(f"/api/v1/groups/rules/{rule}/lifecycle/deactivate"), 204)
    assert client.delete(f"/api/v1/groups/rules/{rule}").status_code == 202
    update_user(runtime, ann, department="Sales")
    assert members(runtime, eng) == {ann}
    remove_member(runtime, eng, ann)
    assert members(runtime, eng) == set()


def test_put_replaces_an_inactive_rule(client: TestClient, runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    sales = create_group(runtime, "Sales")
    rule = create_rule(runtime, "Eng", ENGINEERING, [eng], activate=False)
    body = rule_body("Sales", 'user.department == "Sales"', [sales])
    replaced = ok(client.put(f"/api/v1/groups/rules/{rule}", json=body))
    assert replaced["name"] == "Sales"
    assert replaced["actions"]["assignUserToGroups"]["groupIds"] == [sales]
    assert replaced["status"] == "INACTIVE"


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"conditions": {"expression": {"value": 'String.toLower(user.x) == "a"'}}}, "column 1"),
        ({"conditions": {"expression": {"value": 'user.department + "x"'}}}, "must give a boolean"),
        ({"conditions": {"expression": {"value": 'user.a == "b" &&'}}}, "column"),
        ({"conditions": {"expression": {"value": "x", "type": "urn:other"}}}, "type"),
        ({"actions": {"assignUserToGroups": {"groupIds": []}}}, "groupIds"),
        ({"actions": {"assignUserToGroups": {"groupIds": ["00gNope"]}}}, "does not exist"),
        ({"actions": {"assignUserToGroups": {"groupIds": [5]}}}, "groupIds"),
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"type": "other"}, "type"),
        ({"conditions": {"expression": {"value": 'user.a == "\u0000"'}}}, "NUL"),
        ({"conditions": {"expression": {"value": 'isMemberOfGroup("00gNope")'}}}, "does not exist"),
    ],
)
def test_bad_rules_are_refused_with_a_cause(
    client: TestClient, runtime: Runtime, change: dict[str, Any], cause: str
) -> None:
    group = create_group(runtime, "Engineering")
    body = rule_body("Eng", ENGINEERING, [group]) | change
    response = client.post("/api/v1/groups/rules", json=body)
    assert_okta_error(response, 400, "E0000001", cause)
    with runtime.database.read() as session:
        assert session.execute(select(t.GroupRule)).first() is None


def test_unknown_function_names_its_position_and_a_suggestion(
    client: TestClient, runtime: Runtime
) -> None:
    group = create_group(runtime, "Engineering")
    body = rule_body("Eng", 'String.toLower(user.x) == "a"', [group])
    error = assert_okta_error(client.post("/api/v1/groups/rules", json=body), 400, "E0000001")
    cause = error["errorCauses"][0]["errorSummary"]
    assert "unknown function String.toLower at column 1" in cause
    assert "did you mean String.toLowerCase?" in cause


def test_rules_feeding_each_other_are_refused(client: TestClient, runtime: Runtime) -> None:
    a = create_group(runtime, "A")
    b = create_group(runtime, "B")
    ok(
        client.post(
            "/api/v1/groups/rules", json=rule_body("A to B", f'isMemberOfGroup("{a}")', [b])
        )
    )
    cyclic = rule_body("B to A", 'isMemberOfGroupName("B")', [a])
    assert_okta_error(client.post("/api/v1/groups/rules", json=cyclic), 400, "E0000001", "A to B")
    self_loop = rule_body("Self", f'isMemberOfAnyGroup("{a}")', [a])
    assert_okta_error(client.post("/api/v1/groups/rules", json=self_loop), 400, "E0000001")
    excluded = rule_body("Excl", "true", [a], groups=[b])
    assert_okta_error(client.post("/api/v1/groups/rules", json=excluded), 400, "E0000001")


def test_chained_rules_and_exclusions(runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    on_call = create_group(runtime, "On call")
    contractors = create_group(runtime, "Contractors")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    bob = create_user(runtime, "bob@example.com", department="Engineering")
    cyd = create_user(runtime, "cyd@example.com", department="Engineering")
    add_member(runtime, contractors, cyd)
    create_rule(runtime, "On call", f'isMemberOfGroup("{eng}")', [on_call])
    create_rule(
        runtime, "Eng", ENGINEERING, [eng], exclude_users=[bob], exclude_groups=[contractors]
    )
    assert members(runtime, eng) == {ann}
    assert members(runtime, on_call) == {ann}
    remove_member(runtime, contractors, cyd)  # cyd is no longer excluded
    assert members(runtime, eng) == members(runtime, on_call) == {ann, cyd}
    update_user(runtime, ann, department="Sales")
    assert members(runtime, eng) == members(runtime, on_call) == {cyd}


def test_deleting_a_group_invalidates_its_rules_and_changes_nothing_else(
    client: TestClient, runtime: Runtime
) -> None:
    eng = create_group(runtime, "Engineering")
    staff = create_group(runtime, "Staff")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    rule = create_rule(runtime, "Eng", ENGINEERING, [eng, staff])
    delete_group(runtime, eng)
    body = ok(client.get(f"/api/v1/groups/rules/{rule}"))
    assert body["status"] == "INVALID"
    assert "was deleted" in body["invalidReason"]
    assert members(runtime, staff) == {ann}
    update_user(runtime, ann, department="Sales")
    assert members(runtime, staff) == {ann}  # an invalid rule changes nothing
    (event,) = events(runtime, "group.rule.invalidate", target_id=rule)
    assert event.severity == "WARN"
    assert_okta_error(
        client.post(f"/api/v1/groups/rules/{rule}/lifecycle/activate"), 400, "E0000001"
    )


def test_list_pages_and_searches(client: TestClient, runtime: Runtime) -> None:
    group = create_group(runtime, "Engineering")
    made = [
        create_rule(runtime, f"Rule {i}", ENGINEERING, [group], activate=False) for i in range(5)
    ]
    create_rule(runtime, "Other", ENGINEERING, [group], activate=False)
    first = client.get("/api/v1/groups/rules?limit=2")
    assert [r["id"] for r in ok(first)] == made[:2]
    following = client.get(links(first)["next"])
    assert [r["id"] for r in ok(following)] == made[2:4]
    found = ok(client.get("/api/v1/groups/rules?search=other"))
    assert [r["name"] for r in found] == ["Other"]
    assert_okta_error(client.get("/api/v1/groups/rules?after=not-an-id"), 400, "E0000001")


def test_a_read_only_admin_reads_rules_and_cannot_change_them(runtime: Runtime) -> None:
    group = create_group(runtime, "Engineering")
    rule = create_rule(runtime, "Eng", ENGINEERING, [group], activate=False)
    token = api_token(runtime, "reader", role="READ_ONLY_ADMIN")
    with api_client(runtime, token) as reader:
        assert ok(reader.get(f"/api/v1/groups/rules/{rule}"))["id"] == rule
        assert len(ok(reader.get("/api/v1/groups/rules"))) == 1
        refused = reader.post(f"/api/v1/groups/rules/{rule}/lifecycle/activate")
        assert_okta_error(refused, 403, "E0000006")
        body = rule_body("X", ENGINEERING, [group])
        assert_okta_error(reader.post("/api/v1/groups/rules", json=body), 403, "E0000006")
    with runtime.database.read() as session:
        assert session.get(t.GroupRule, rule).status == "INACTIVE"  # type: ignore[union-attr]


def test_the_console_lists_rules_and_previews_an_expression(runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    create_user(runtime, "ann@example.com", department="Engineering")
    create_user(runtime, "bob@example.com", department="Sales")
    create_rule(runtime, "Dept is Eng", ENGINEERING, [eng])
    create_admin(runtime, "reader", role="READ_ONLY_ADMIN")
    with console_client(server_app(runtime, start_worker=False)) as client:
        console_sign_in(client, "reader")
        page = client.get("/console/rules")
        assert page.status_code == 200
        assert "Dept is Eng" in page.text and "ACTIVE" in page.text
        preview = client.get("/console/rules", params={"expression": 'user.department == "Sales"'})
        assert "1 of 2 people match" in preview.text and "bob@example.com" in preview.text
        bad = client.get("/console/rules", params={"expression": 'String.toLower(user.x) == "a"'})
        assert "did you mean String.toLowerCase?" in bad.text


@pytest.mark.slow
def test_oktas_two_thousand_rules_work_and_one_more_is_refused(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    group = create_group(runtime, "Engineering")
    ann = create_user(runtime, "ann@example.com", department="Dept 7")
    with runtime.database.transaction() as session:
        made = [
            group_rules.create_rule(
                session,
                SYSTEM,
                group_rules.RuleSpec(f"Rule {i}", f'user.department == "Dept {i}"', [group]),
            ).id
            for i in range(MAX_RULES)
        ]
    with runtime.database.transaction() as session:
        spec = group_rules.RuleSpec("One more", "true", [group])
        with pytest.raises(HeadwaterError) as refused:
            group_rules.create_rule(session, SYSTEM, spec)
    assert refused.value.status == 400 and "2000" in refused.value.causes[0]
    for rule_id in made:
        with runtime.database.transaction() as session:
            group_rules.activate_rule(session, SYSTEM, rule_id)
        group_rules.run_sweep(runtime.database, rule_id, SYSTEM)
    assert members(runtime, group) == {ann}
    update_user(runtime, ann, department="Dept 1999")
    assert members(runtime, group) == {ann}
    update_user(runtime, ann, department="Nowhere")
    assert members(runtime, group) == set()


def test_a_rule_reading_a_group_by_name_follows_its_rename(runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    badge = create_group(runtime, "Badge")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    create_rule(runtime, "Eng", ENGINEERING, [eng])
    create_rule(runtime, "Badge", 'isMemberOfGroupNameStartsWith("Eng")', [badge])
    assert members(runtime, badge) == {ann}
    rename_group(runtime, eng, "R&D")
    update_user(runtime, ann, title="Lead")  # any change re-evaluates the person
    assert members(runtime, badge) == set()
