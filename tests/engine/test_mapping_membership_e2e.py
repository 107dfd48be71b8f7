"""A mapping reading group membership (``isMemberOfGroupName``) against a real scim2-server:
the downstream attribute follows membership changes by hand and by a group rule."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    add_member,
    assign_group,
    converge,
    create_group,
    create_rule,
    create_scim_app,
    create_user,
    ok,
    remove_member,
    update_user,
)

TITLE = 'isMemberOfGroupName("Admins") ? "Administrator" : user.title'


def _map(client: TestClient, app_id: str) -> None:
    body = {"properties": {"title": {"expression": TITLE, "pushStatus": "PUSH"}}}
    ok(client.post(f"/api/v1/mappings/{app_id}", json=body))


def test_the_downstream_follows_membership(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    ann = create_user(runtime, "ann@example.com", title="Clerk")
    admins = create_group(runtime, "Admins")
    app_id = create_scim_app(runtime, downstream.base_url)
    _map(client, app_id)
    assign_group(runtime, app_id, create_group(runtime, "Staff", [ann]))
    converge(runtime)
    assert downstream.scim.user("ann@example.com")["title"] == "Clerk"  # type: ignore[index]
    add_member(runtime, admins, ann)
    converge(runtime)
    assert downstream.scim.user("ann@example.com")["title"] == "Administrator"  # type: ignore[index]
    create_rule(runtime, "admins by title", 'user.title == "Boss"', [admins])
    remove_member(runtime, admins, ann)
    converge(runtime)
    assert downstream.scim.user("ann@example.com")["title"] == "Clerk"  # type: ignore[index]
    update_user(runtime, ann, title="Boss")  # the rule puts her back in Admins
    converge(runtime)
    assert downstream.scim.user("ann@example.com")["title"] == "Administrator"  # type: ignore[index]
