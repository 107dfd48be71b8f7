"""The Group Push Mapping API (Okta's shapes and errors), push rules, and the operator
extensions (reconcile, tasks, orphans, plan, explain), on SQLite and PostgreSQL.

The downstream is not involved here: these tests check what the API stores, shows and enqueues.
The engine's side is in ``tests/engine/test_group_push_engine.py`` and ``test_drift.py``. The
two official SDK tests need the ``okta`` package: without it they skip, or fail under CI.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater import clock
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    add_member,
    assert_okta_error,
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_user,
    event_types,
    links,
    ok,
    queued,
    record_app_group,
    record_task,
    require_module,
    sdk_ok,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --- Helpers ----------------------------------------------------------------------------------


def url(app_id: str, suffix: str = "") -> str:
    return f"/api/v1/apps/{app_id}/group-push/mappings{suffix}"


def create(client: TestClient, app_id: str, **body: Any) -> Any:
    """``POST`` a mapping: the endpoint under test."""
    return client.post(url(app_id), json=body)


def push(client: TestClient, app_id: str, group_id: str, **extra: Any) -> dict[str, Any]:
    """A mapping created through the endpoint under test; returns what it answered."""
    body = {"sourceGroupId": group_id, "targetGroupName": f"pushed-{group_id}", **extra}
    mapping: dict[str, Any] = ok(create(client, app_id, **body), 201)
    return mapping


def push_keys(runtime: Runtime, app_id: str) -> dict[str, bool]:
    """Push keys waiting in the outbox: mapping id → observe."""
    return {
        k.subject_id: k.observe for k in queued(runtime) if (k.app_id, k.kind) == (app_id, "push")
    }


def stored(runtime: Runtime, mapping_id: str) -> t.PushMapping | None:
    with runtime.database.read() as session:
        row = session.get(t.PushMapping, mapping_id)
        session.expunge_all()
        return row


def as_if_pushed_once(runtime: Runtime, mapping_id: str) -> None:
    """Clear ``full_push`` as the engine does after its first full push (engine state, so
    written directly: no service clears it)."""
    with runtime.database.transaction() as session:
        row = session.get(t.PushMapping, mapping_id)
        assert row is not None
        row.full_push = False


# --- Create -----------------------------------------------------------------------------------


def test_create_by_name_returns_okta_shape(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "AppPushGroup")
    clear_keys(runtime)
    response = create(client, app_id, sourceGroupId=group_id, targetGroupName="acct-push")
    mapping = ok(response, 201)
    assert mapping["id"].startswith("gPm")
    assert mapping["sourceGroupId"] == group_id
    assert (mapping["targetGroupId"], mapping["status"], mapping["errorSummary"]) == (
        None,
        "ACTIVE",
        None,
    )
    assert mapping["lastPush"] is None
    assert TIMESTAMP.match(mapping["created"]) and TIMESTAMP.match(mapping["lastUpdated"])
    assert "appConfig" not in mapping
    assert set(mapping["_links"]) == {"app", "sourceGroup"}
    assert mapping["_links"]["app"]["href"].endswith(f"/api/v1/apps/{app_id}")
    assert mapping["_links"]["sourceGroup"]["href"].endswith(f"/api/v1/groups/{group_id}")
    assert mapping["skippedMembers"] == 0
    assert push_keys(runtime, app_id) == {mapping["id"]: False}
    assert "application.provision.group_push.mapping.created" in event_types(runtime)
    row = stored(runtime, mapping["id"])
    assert row is not None and row.target_group_name == "acct-push" and row.full_push


def test_a_target_name_equal_to_the_source_name_follows_renames(
    client: TestClient, runtime: Runtime
) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "AppPushGroup")
    mapping = push(client, app_id, group_id, targetGroupName="AppPushGroup")
    row = stored(runtime, mapping["id"])
    assert row is not None and row.target_group_name is None


def test_status_inactive_and_app_config_are_accepted(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    config = {"type": "ACTIVE_DIRECTORY", "distinguishedName": "ou=x"}
    mapping = push(client, app_id, group_id, status="INACTIVE", appConfig=config)
    assert mapping["status"] == "INACTIVE" and "appConfig" not in mapping


@pytest.mark.parametrize(
    "body",
    [
        {"targetGroupName": "x"},
        {"sourceGroupId": "GROUP"},
        {"sourceGroupId": "GROUP", "targetGroupName": "x", "targetGroupId": "00gX"},
        {"sourceGroupId": "GROUP", "targetGroupName": ""},
        {"sourceGroupId": "GROUP", "targetGroupName": "x" * 256},
        {"sourceGroupId": "GROUP", "targetGroupName": "x", "status": "ERROR"},
        {"sourceGroupId": 42, "targetGroupName": "x"},
    ],
)
def test_invalid_bodies_are_okta_validation_errors(
    client: TestClient, runtime: Runtime, body: dict[str, Any]
) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    body = {k: (group_id if v == "GROUP" else v) for k, v in body.items()}
    assert_okta_error(create(client, app_id, **body), 400, "E0000001")


def test_unknown_ids_are_not_found(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    assert_okta_error(
        create(client, app_id, sourceGroupId="00gnope", targetGroupName="x"), 404, "E0000007"
    )
    assert_okta_error(
        create(client, "0oanope", sourceGroupId=group_id, targetGroupName="x"), 404, "E0000007"
    )
    assert_okta_error(
        create(client, app_id, sourceGroupId=group_id, targetGroupId="00gnope"), 404, "E0000007"
    )
    assert_okta_error(client.get(url(app_id, "/gPmnope")), 404, "E0000007")
    assert_okta_error(client.get(url("0oanope")), 404, "E0000007")
    # Text no database stores never reaches SQL (a NUL would upset PostgreSQL): it is refused.
    nul = "must not contain NUL characters"
    assert_okta_error(client.get(url(app_id, "/gPm%00x")), 400, "E0000001", f"mapping_id: {nul}")
    assert_okta_error(
        create(client, app_id, sourceGroupId="00g\u0000", targetGroupName="x"),
        400,
        "E0000001",
        f"sourceGroupId: {nul}",
    )
    listed = client.get(url(app_id), params={"sourceGroupId": "00g\x00"})
    assert_okta_error(listed, 400, "E0000001", f"sourceGroupId: {nul}")
    deleted = client.delete(f"/api/v1/apps/{app_id}/tasks/tsk%00")
    assert_okta_error(deleted, 400, "E0000001", f"task_id: {nul}")
    # Ids that could exist but do not are not found.
    assert_okta_error(client.delete(f"/api/v1/apps/{app_id}/tasks/tsknope"), 404, "E0000007")


def test_a_group_is_pushed_once_per_app(client: TestClient, runtime: Runtime) -> None:
    app_id, other_app, group_id = (
        create_app(runtime),
        create_app(runtime, "Other"),
        create_group(runtime, "G"),
    )
    push(client, app_id, group_id)
    assert_okta_error(
        create(client, app_id, sourceGroupId=group_id, targetGroupName="again"), 400, "E0000001"
    )
    push(client, other_app, group_id)  # another app is fine


def test_two_mappings_may_not_push_to_one_downstream_name(
    client: TestClient, runtime: Runtime
) -> None:
    app_id = create_app(runtime)
    first, second = create_group(runtime, "Sales"), create_group(runtime, "Marketing")
    push(client, app_id, first, targetGroupName="crm-users")
    response = create(client, app_id, sourceGroupId=second, targetGroupName="CRM-Users")
    assert_okta_error(response, 400, "E0000027")
    # Nor a custom name equal to another mapping's followed source name.
    push(client, app_id, second, targetGroupName="Marketing")
    third = create_group(runtime, "Support")
    assert_okta_error(
        create(client, app_id, sourceGroupId=third, targetGroupName="marketing"), 400, "E0000027"
    )


def test_only_okta_groups_are_pushed(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    target = record_app_group(runtime, app_id, "Existing")
    assert_okta_error(
        create(client, app_id, sourceGroupId=target, targetGroupName="x"), 400, "E0000001"
    )


def test_link_by_target_group_id(client: TestClient, runtime: Runtime) -> None:
    app_id, other_app, group_id = (
        create_app(runtime),
        create_app(runtime, "Other"),
        create_group(runtime, "G"),
    )
    foreign = record_app_group(runtime, other_app, "Theirs")
    okta_group = create_group(runtime, "NotAnAppGroup")
    assert_okta_error(
        create(client, app_id, sourceGroupId=group_id, targetGroupId=foreign), 400, "E0000001"
    )
    assert_okta_error(
        create(client, app_id, sourceGroupId=group_id, targetGroupId=okta_group), 400, "E0000001"
    )
    target = record_app_group(runtime, app_id, "Existing Downstream")
    mapping = ok(create(client, app_id, sourceGroupId=group_id, targetGroupId=target), 201)
    assert mapping["targetGroupId"] == target
    assert mapping["_links"]["targetGroup"]["href"].endswith(f"/api/v1/groups/{target}")
    row = stored(runtime, mapping["id"])
    assert row is not None and row.target_group_name == "Existing Downstream"
    # One downstream group, one mapping.
    other = create_group(runtime, "H")
    assert_okta_error(
        create(client, app_id, sourceGroupId=other, targetGroupId=target), 400, "E0000027"
    )
    # The app group cannot be deleted while it is a push target.
    assert_okta_error(client.delete(f"/api/v1/groups/{target}"), 400, "E0000001")


# --- Read and list ----------------------------------------------------------------------------


def test_get_returns_what_create_returned(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    assert ok(client.get(url(app_id, f"/{mapping['id']}"))) == mapping
    other_app = create_app(runtime, "Other")
    assert_okta_error(client.get(url(other_app, f"/{mapping['id']}")), 404, "E0000007")


def test_list_filters_and_pages(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    groups = [create_group(runtime, f"G{i}") for i in range(5)]
    mappings = [push(client, app_id, g) for g in groups]
    ok(client.patch(url(app_id, f"/{mappings[1]['id']}"), json={"status": "INACTIVE"}))
    everything = ok(client.get(url(app_id)))
    assert [m["id"] for m in everything] == [m["id"] for m in mappings]
    by_source = ok(client.get(url(app_id), params={"sourceGroupId": groups[3]}))
    assert [m["id"] for m in by_source] == [mappings[3]["id"]]
    inactive = ok(client.get(url(app_id), params={"status": "INACTIVE"}))
    assert [m["id"] for m in inactive] == [mappings[1]["id"]]
    changed = ok(client.get(url(app_id, f"/{mappings[1]['id']}")))["lastUpdated"]
    recent = ok(client.get(url(app_id), params={"lastUpdated": changed}))
    assert mappings[1]["id"] in [m["id"] for m in recent]
    future = ok(client.get(url(app_id), params={"lastUpdated": "2999-01-01T00:00:00Z"}))
    assert future == []
    seen: list[str] = []
    page = client.get(url(app_id), params={"limit": 2})
    while True:
        seen.extend(m["id"] for m in ok(page))
        following = links(page).get("next")
        if following is None:
            break
        assert "after=" in following
        page = client.get(following)
    assert seen == [m["id"] for m in mappings]
    assert page.headers.get_list("link")[0].endswith('rel="self"')


@pytest.mark.parametrize(
    "params",
    [{"status": "BROKEN"}, {"lastUpdated": "yesterday"}, {"after": "not a cursor!"}],
)
def test_bad_list_parameters(client: TestClient, runtime: Runtime, params: dict[str, str]) -> None:
    assert_okta_error(client.get(url(create_app(runtime)), params=params), 400, "E0000001")


# --- Status -----------------------------------------------------------------------------------


def test_deactivate_then_activate(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    as_if_pushed_once(runtime, mapping["id"])
    clear_keys(runtime)
    inactive = ok(client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "INACTIVE"}))
    assert inactive["status"] == "INACTIVE"
    assert push_keys(runtime, app_id) == {}
    active = ok(client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "ACTIVE"}))
    assert active["status"] == "ACTIVE"
    assert push_keys(runtime, app_id) == {mapping["id"]: False}
    row = stored(runtime, mapping["id"])
    assert row is not None and row.full_push
    types = event_types(runtime)
    assert "application.provision.group_push.deactivate_mapping" in types
    assert "application.provision.group_push.activate_mapping" in types


@pytest.mark.parametrize("body", [{}, {"status": "ERROR"}, {"status": None}, None])
def test_patch_needs_a_status(client: TestClient, runtime: Runtime, body: Any) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    assert_okta_error(client.patch(url(app_id, f"/{mapping['id']}"), json=body), 400, "E0000001")


def test_source_group_deleted_shows_inactive_without_source(
    client: TestClient, runtime: Runtime
) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    ok(client.delete(f"/api/v1/groups/{group_id}"), 204)
    shown = ok(client.get(url(app_id, f"/{mapping['id']}")))
    assert (shown["status"], shown["sourceGroupId"]) == ("INACTIVE", None)
    assert set(shown["_links"]) == {"app"}
    assert mapping["id"] in push_keys(runtime, app_id)
    response = client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "ACTIVE"})
    assert_okta_error(response, 400, "E0000027")
    ok(client.delete(url(app_id, f"/{mapping['id']}")), 204)


# --- Delete -----------------------------------------------------------------------------------


def test_only_inactive_mappings_are_deleted(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    assert_okta_error(client.delete(url(app_id, f"/{mapping['id']}")), 400, "E0000027")
    assert ok(client.get(url(app_id, f"/{mapping['id']}")))["status"] == "ACTIVE"


def _with_pushed_member(runtime: Runtime, mapping_id: str) -> str:
    """A member the engine has pushed (raw row, deliberately: only the engine records one)."""
    user_id = create_user(runtime, f"member-{mapping_id}@example.com")
    with runtime.database.transaction() as session:
        session.add(t.PushMember(mapping_id=mapping_id, user_id=user_id, external_id="ext-u"))
    return user_id


def test_delete_keeping_the_target_is_immediate(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    target = record_app_group(runtime, app_id, "Kept")
    mapping = ok(create(client, app_id, sourceGroupId=group_id, targetGroupId=target), 201)
    _with_pushed_member(runtime, mapping["id"])
    ok(client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "INACTIVE"}))
    ok(client.delete(url(app_id, f"/{mapping['id']}?deleteTargetGroup=false")), 204)
    assert stored(runtime, mapping["id"]) is None
    with runtime.database.read() as session:
        assert session.execute(select(t.PushMember)).first() is None
        assert session.get(t.Group, target) is not None
    assert_okta_error(client.get(url(app_id, f"/{mapping['id']}")), 404, "E0000007")
    # The group may be pushed again at once.
    push(client, app_id, group_id)


def test_delete_with_the_target_is_handed_to_the_engine(
    client: TestClient, runtime: Runtime
) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    ok(client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "INACTIVE"}))
    clear_keys(runtime)
    ok(client.delete(url(app_id, f"/{mapping['id']}?deleteTargetGroup=true")), 204)
    row = stored(runtime, mapping["id"])
    assert row is not None and row.delete_requested and row.delete_target
    assert push_keys(runtime, app_id) == {mapping["id"]: False}
    assert_okta_error(client.get(url(app_id, f"/{mapping['id']}")), 404, "E0000007")
    assert ok(client.get(url(app_id))) == []
    assert_okta_error(client.delete(url(app_id, f"/{mapping['id']}")), 404, "E0000007")
    # Until the engine is done, the group cannot be pushed to this app again.
    assert_okta_error(
        create(client, app_id, sourceGroupId=group_id, targetGroupName="x"), 400, "E0000001"
    )


def test_bad_delete_flag(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id, status="INACTIVE")
    assert_okta_error(
        client.delete(url(app_id, f"/{mapping['id']}?deleteTargetGroup=maybe")), 400, "E0000001"
    )


# --- Push now (extension) ---------------------------------------------------------------------


def test_push_now(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    as_if_pushed_once(runtime, mapping["id"])
    clear_keys(runtime)
    response = client.post(url(app_id, f"/{mapping['id']}/push"))
    assert ok(response, 202)["id"] == mapping["id"]
    row = stored(runtime, mapping["id"])
    assert row is not None and row.full_push
    assert push_keys(runtime, app_id) == {mapping["id"]: False}
    ok(client.patch(url(app_id, f"/{mapping['id']}"), json={"status": "INACTIVE"}))
    assert_okta_error(client.post(url(app_id, f"/{mapping['id']}/push")), 400, "E0000027")


# --- Push rules (extension) -------------------------------------------------------------------


def rules_url(app_id: str, suffix: str = "") -> str:
    return f"/api/v1/apps/{app_id}/group-push/rules{suffix}"


def test_a_rule_maps_matching_groups_now_and_later(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    eng = create_group(runtime, "eng-backend")
    create_group(runtime, "Sales")
    upper = create_group(runtime, "ENG-frontend")
    body = {"name": "Engineering", "match": "STARTS_WITH", "value": "eng-"}
    rule = ok(client.post(rules_url(app_id), json=body), 201)
    assert rule["id"].startswith("gpr") and rule["status"] == "ACTIVE"
    mapped = {m["sourceGroupId"]: m for m in ok(client.get(url(app_id)))}
    assert set(mapped) == {eng, upper}
    assert {m["pushRuleId"] for m in mapped.values()} == {rule["id"]}
    assert set(push_keys(runtime, app_id)) >= {m["id"] for m in mapped.values()}
    # Later groups: created matching, renamed into scope.
    later = create_group(runtime, "eng-data")
    sales_ops = create_group(runtime, "Ops")
    ok(client.put(f"/api/v1/groups/{sales_ops}", json={"profile": {"name": "eng-ops"}}))
    sources = {m["sourceGroupId"] for m in ok(client.get(url(app_id)))}
    assert sources == {eng, upper, later, sales_ops}
    created = event_types(runtime).count("app.user_management.grouppush.mapping.created.from.rule")
    assert created == 4
    # Renamed out of scope: the rule's mapping is paused, not deleted.
    ok(client.put(f"/api/v1/groups/{later}", json={"profile": {"name": "data"}}))
    paused = ok(client.get(url(app_id), params={"sourceGroupId": later}))
    assert [m["status"] for m in paused] == ["INACTIVE"]
    assert ok(client.get(rules_url(app_id, f"/{rule['id']}"))) == rule
    assert [r["id"] for r in ok(client.get(rules_url(app_id)))] == [rule["id"]]


def test_contains_rule_and_existing_mappings(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    manual = create_group(runtime, "team-payments")
    push(client, app_id, manual)
    matched = create_group(runtime, "Payments Team")
    body = {"name": "Payments", "match": "CONTAINS", "value": "payments"}
    ok(client.post(rules_url(app_id), json=body), 201)
    mappings = ok(client.get(url(app_id)))
    assert sorted(m["sourceGroupId"] for m in mappings) == sorted([manual, matched])


def test_deleting_a_rule_keeps_or_deletes_its_mappings(
    client: TestClient, runtime: Runtime
) -> None:
    app_id = create_app(runtime)
    create_group(runtime, "eng-a")
    create_group(runtime, "eng-b")
    body = {"name": "Engineering", "match": "STARTS_WITH", "value": "eng-"}
    first = ok(client.post(rules_url(app_id), json=body), 201)
    ok(client.delete(rules_url(app_id, f"/{first['id']}")), 204)
    kept = ok(client.get(url(app_id)))
    assert len(kept) == 2 and {m["pushRuleId"] for m in kept} == {None}
    assert_okta_error(client.get(rules_url(app_id, f"/{first['id']}")), 404, "E0000007")
    # A second rule does not re-map groups already mapped; new ones it does.
    create_group(runtime, "eng-c")
    second = ok(client.post(rules_url(app_id), json=body), 201)
    ruled = [m for m in ok(client.get(url(app_id))) if m["pushRuleId"] == second["id"]]
    assert len(ruled) == 1
    clear_keys(runtime)
    ok(client.delete(rules_url(app_id, f"/{second['id']}?deleteMappings=true")), 204)
    assert len(ok(client.get(url(app_id)))) == 2
    assert set(push_keys(runtime, app_id)) == {ruled[0]["id"]}
    row = stored(runtime, ruled[0]["id"])
    assert row is not None and row.delete_requested and row.status == "INACTIVE"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "match": "ENDS_WITH", "value": "a"},
        {"name": "x", "match": "CONTAINS", "value": ""},
        {"name": "", "match": "CONTAINS", "value": "a"},
        {"match": "CONTAINS", "value": "a"},
    ],
)
def test_bad_rules(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> None:
    assert_okta_error(client.post(rules_url(create_app(runtime)), json=body), 400, "E0000001")


def test_an_inactive_rule_maps_nothing(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    create_group(runtime, "eng-a")
    body = {"name": "Eng", "match": "STARTS_WITH", "value": "eng", "status": "INACTIVE"}
    ok(client.post(rules_url(app_id), json=body), 201)
    create_group(runtime, "eng-b")
    assert ok(client.get(url(app_id))) == []


# --- Reconcile, tasks, orphans, plan, explain (extensions) ------------------------------------


def test_reconcile_enqueues_every_key_observing(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    clear_keys(runtime)
    body = ok(client.post(f"/api/v1/apps/{app_id}/reconcile"), 202)
    assert body == {"enqueued": 1}
    assert push_keys(runtime, app_id) == {mapping["id"]: True}
    assert_okta_error(client.post("/api/v1/apps/0oanope/reconcile"), 404, "E0000007")


def test_tasks_list_retry_and_dismiss(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    user_id = create_user(runtime, "taylor@example.com")
    push_task = record_task(runtime, app_id, "push", mapping["id"])
    user_task = record_task(runtime, app_id, "user", user_id)
    tasks = ok(client.get(f"/api/v1/apps/{app_id}/tasks"))
    assert [task["id"] for task in tasks] == [push_task, user_task]
    first = tasks[0]
    assert first["target"]["kind"] == "push" and first["target"]["id"] == mapping["id"]
    assert (first["operation"], first["httpStatus"], first["message"]) == (
        "AddMembers",
        400,
        "refused",
    )
    assert first["attempts"] == 2 and TIMESTAMP.match(first["lastAttempt"])
    as_if_pushed_once(runtime, mapping["id"])
    clear_keys(runtime)
    retried = client.post(f"/api/v1/apps/{app_id}/tasks/{push_task}/retry")
    assert ok(retried, 202) == {"enqueued": 1}
    assert push_keys(runtime, app_id) == {mapping["id"]: False}
    row = stored(runtime, mapping["id"])
    assert row is not None and row.full_push
    ok(client.delete(f"/api/v1/apps/{app_id}/tasks/{user_task}"), 204)
    assert ok(client.get(f"/api/v1/apps/{app_id}/tasks")) == []
    assert_okta_error(client.delete(f"/api/v1/apps/{app_id}/tasks/{user_task}"), 404, "E0000007")
    record_task(runtime, app_id, "user", user_id)
    record_task(runtime, app_id, "push", mapping["id"])
    assert ok(client.post(f"/api/v1/apps/{app_id}/tasks/retry"), 202) == {"enqueued": 2}
    assert ok(client.get(f"/api/v1/apps/{app_id}/tasks")) == []


def test_orphans_are_listed_in_pages(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    now = clock.utcnow()
    # Orphans as a full reconcile records them (raw rows: only the engine records orphans).
    with runtime.database.transaction() as session:
        for external_id in ("o1", "o2", "o3"):
            session.add(
                t.Orphan(mapping_id=mapping["id"], external_id=external_id, app_id=app_id, seen=now)
            )
    page = client.get(f"/api/v1/apps/{app_id}/orphans", params={"limit": 2})
    first = ok(page)
    assert [o["externalId"] for o in first] == ["o1", "o2"]
    assert first[0]["mappingId"] == mapping["id"] and TIMESTAMP.match(first[0]["seen"])
    following = links(page).get("next")
    assert following is not None
    assert [o["externalId"] for o in ok(client.get(following))] == ["o3"]
    assert_okta_error(
        client.get(f"/api/v1/apps/{app_id}/orphans", params={"after": "%%%"}), 400, "E0000001"
    )


def test_orphan_removal_needs_a_connection(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    assert_okta_error(client.post(f"/api/v1/apps/{app_id}/orphans/remove"), 400, "E0000001")


def test_plan_and_explain_without_a_downstream(client: TestClient, runtime: Runtime) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    user_id = create_user(runtime, "taylor@example.com")
    add_member(runtime, group_id, user_id)
    assign_group(runtime, app_id, group_id, priority=0)
    push(client, app_id, group_id)
    plan = ok(client.get(f"/api/v1/apps/{app_id}/plan"))
    assert [op["op"] for op in plan["operations"]] == ["CREATE_ACCOUNT", "CREATE_OR_LINK_GROUP"]
    explained = ok(client.get(f"/api/v1/apps/{app_id}/users/{user_id}/explain"))
    assert explained["account"]["wanted"] is True
    assert any("because of group G, priority 0" in reason for reason in explained["reasons"])
    assert_okta_error(client.get(f"/api/v1/apps/{app_id}/users/00unope/explain"), 404, "E0000007")


def test_extensions_are_tagged_in_openapi(client: TestClient) -> None:
    paths = ok(client.get("/openapi.json"))["paths"]
    extension = "Headwater extension"
    for path, method in [
        ("/api/v1/apps/{app_id}/reconcile", "post"),
        ("/api/v1/apps/{app_id}/plan", "get"),
        ("/api/v1/apps/{app_id}/tasks", "get"),
        ("/api/v1/apps/{app_id}/orphans/remove", "post"),
        ("/api/v1/apps/{app_id}/group-push/rules", "post"),
        ("/api/v1/apps/{app_id}/group-push/mappings/{mapping_id}/push", "post"),
    ]:
        assert extension in paths[path][method]["tags"], path
    okta_shaped = paths["/api/v1/apps/{app_id}/group-push/mappings"]["post"]
    assert extension not in okta_shaped["tags"]
    assert "201" in okta_shaped["responses"]


# --- The official Okta SDK --------------------------------------------------------------------


async def test_the_okta_sdk_manages_mappings(
    okta_client: Any, client: TestClient, runtime: Runtime
) -> None:
    okta_models = require_module("okta.models")
    app_id, group_id = create_app(runtime), create_group(runtime, "AppPushGroup")
    request = okta_models.CreateGroupPushMappingRequest(
        source_group_id=group_id, target_group_name="AppPushGroup"
    )
    created = sdk_ok(await okta_client.create_group_push_mapping(app_id, request))
    assert type(created).__name__ == "GroupPushMapping"
    assert created.id.startswith("gPm") and created.status == "ACTIVE"
    assert created.source_group_id == group_id and created.app_config is None
    assert created.links.app.href.endswith(f"/apps/{app_id}")
    fetched = sdk_ok(await okta_client.get_group_push_mapping(app_id, created.id))
    assert fetched.id == created.id and fetched.created == created.created
    listed = sdk_ok(await okta_client.list_group_push_mappings(app_id, source_group_id=group_id))
    assert [m.id for m in listed] == [created.id]
    update = okta_models.UpdateGroupPushMappingRequest(status="INACTIVE")
    updated = sdk_ok(await okta_client.update_group_push_mapping(app_id, created.id, update))
    assert updated.status == "INACTIVE"
    sdk_ok(
        await okta_client.delete_group_push_mapping(app_id, created.id, delete_target_group=False)
    )
    assert sdk_ok(await okta_client.list_group_push_mappings(app_id)) == []


async def test_the_okta_sdk_reads_group_push_errors(
    okta_client: Any, client: TestClient, runtime: Runtime
) -> None:
    app_id, group_id = create_app(runtime), create_group(runtime, "G")
    mapping = push(client, app_id, group_id)
    *_, failure = await okta_client.delete_group_push_mapping(
        app_id, mapping["id"], delete_target_group=True
    )
    assert failure is not None and failure.error_code == "E0000027"
