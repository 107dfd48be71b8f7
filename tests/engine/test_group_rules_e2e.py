"""A group rule drives provisioning end to end into scim2-server: the rule fills a group that is
assigned to an app and pushed; a department change takes the person out of the downstream group
first, then deactivates the account, leaving no orphaned membership."""

from __future__ import annotations

from sqlalchemy import select

from headwater.db import tables as t
from headwater.engine import preview
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    api_client,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    push_group,
    update_user,
)

EXPRESSION = 'user.department == "Engineering"'


def _members(downstream: InProcessScim, name: str) -> set[str]:
    group = downstream.scim.group(name)
    assert group is not None, name
    return {member["value"] for member in group.get("members") or []}


def test_a_rule_fills_a_pushed_group_and_a_department_change_leaves_no_orphan(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    eng = create_group(runtime, "Engineering")
    app_id = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app_id, eng)
    push_group(runtime, app_id, eng)
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    create_user(runtime, "bob@example.com", department="Sales")
    body = {
        "type": "group_rule",
        "name": "Dept is Eng",
        "conditions": {"expression": {"value": EXPRESSION, "type": "urn:okta:expression:1.0"}},
        "actions": {"assignUserToGroups": {"groupIds": [eng]}},
    }
    with api_client(runtime) as client:
        rule = ok(client.post("/api/v1/groups/rules", json=body))
        ok(client.post(f"/api/v1/groups/rules/{rule['id']}/lifecycle/activate"), 204)
    converge(runtime)

    account = downstream.scim.user("ann@example.com")
    assert account is not None and account["active"] is True
    assert downstream.scim.user("bob@example.com") is None
    assert _members(downstream, "Engineering") == {account["id"]}
    explained = preview.explain_user(runtime.database, app_id, ann)
    assert (
        f"Ann is in Engineering because rule Dept is Eng matched {EXPRESSION}."
        in explained["reasons"]
    )
    (grant,) = explained["grants"]
    assert grant["manual"] is False and grant["rules"][0]["name"] == "Dept is Eng"

    downstream.transport.clear()
    update_user(runtime, ann, department="Sales")
    converge(runtime)

    account = downstream.scim.user("ann@example.com")
    assert account is not None and account["active"] is False
    assert _members(downstream, "Engineering") == set()
    writes = downstream.transport.writes()
    removal = next(i for i, s in enumerate(writes) if s.resource == "Groups/{id}")
    deactivation = next(i for i, s in enumerate(writes) if s.resource == "Users/{id}")
    assert removal < deactivation, [(s.method, s.resource) for s in writes]
    with runtime.database.read() as session:
        assert session.execute(select(t.Orphan)).first() is None
        assert session.execute(select(t.PushMember)).first() is None
        assert session.execute(select(t.Membership)).first() is None
