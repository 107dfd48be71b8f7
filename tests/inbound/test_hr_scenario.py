"""An HR system feeds the directory over SCIM and the apps follow, with no extra step.

The HR source hires a person into Finance (a group rule on ``department`` fills the Finance
group, which is assigned to a SCIM app and pushed to it); the engine creates the account and
the membership in a real scim2-server. Then HR sends ``active=false``: the pushed membership
is removed first, then the account is deactivated.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.domain.inbound import ENTERPRISE_USER
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    converge,
    create_group,
    create_rule,
    create_scim_app,
    event_types,
    members,
    push_group,
    queued_subjects,
)

HIRE = "robin.hale@example.com"


@pytest.fixture
def downstream(runtime: Runtime) -> InProcessScim:
    return InProcessScim().serve(runtime)


def hire(http: TestClient, department: str) -> dict[str, Any]:
    response = http.post(
        "Users",
        json={
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE_USER,
            ],
            "userName": HIRE,
            "externalId": "HR-1001",
            "name": {"givenName": "Robin", "familyName": "Hale"},
            "emails": [{"value": HIRE, "type": "work", "primary": True}],
            "active": True,
            ENTERPRISE_USER: {"department": department, "employeeNumber": "1001"},
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_hire_reaches_the_app_and_leaving_removes_memberships_first(
    runtime: Runtime, http: TestClient, downstream: InProcessScim
) -> None:
    finance = create_group(runtime, "Finance")
    create_rule(runtime, "Finance by department", 'user.department == "Finance"', [finance])
    app = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app, finance)
    push_group(runtime, app, finance)
    converge(runtime)

    person = hire(http, "Finance")
    # The write enqueued the app's key for the new person in its own transaction.
    assert person["id"] in members(runtime, finance)
    assert person["id"] in queued_subjects(runtime, app)
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is not None and account["active"] is True
    assert downstream.scim.members("Finance") == {HIRE}

    downstream.transport.clear()
    left = http.patch(
        f"Users/{person['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
        },
    )
    assert left.status_code == 200 and left.json()["active"] is False
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is not None and account["active"] is False
    assert downstream.scim.members("Finance") == set()

    writes = downstream.transport.writes()
    removal = next(i for i, s in enumerate(writes) if s.resource == "Groups/{id}")
    deactivation = next(i for i, s in enumerate(writes) if s.resource == "Users/{id}")
    assert removal < deactivation, [(s.method, s.resource) for s in writes]
    assert "user.lifecycle.deactivate" in event_types(runtime, "user.lifecycle")


def test_a_group_from_the_source_assigns_the_app(
    runtime: Runtime, http: TestClient, downstream: InProcessScim
) -> None:
    app = create_scim_app(runtime, downstream.base_url)
    person = hire(http, "Sales")
    team = http.post("Groups", json={"displayName": "Sales"}).json()
    assign_group(runtime, app, team["id"])
    converge(runtime)
    assert downstream.scim.user(HIRE) is None
    added = http.patch(
        f"Groups/{team['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": person["id"]}]}],
        },
    )
    assert added.status_code == 200, added.text
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is not None and account["active"] is True
    assert http.delete(f"Users/{person['id']}").status_code == 204
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is None or account["active"] is False


def test_a_bulk_hire_reaches_the_app_and_a_bulk_leave_deactivates(
    runtime: Runtime, http: TestClient, downstream: InProcessScim
) -> None:
    finance = create_group(runtime, "Finance")
    create_rule(runtime, "Finance by department", 'user.department == "Finance"', [finance])
    app = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app, finance)
    push_group(runtime, app, finance)
    converge(runtime)

    robin = {
        "userName": HIRE,
        "name": {"givenName": "Robin", "familyName": "Hale"},
        "emails": [{"value": HIRE, "primary": True}],
        ENTERPRISE_USER: {"department": "Finance"},
    }
    bulk = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    hired = http.post(
        "Bulk",
        json={
            "schemas": [bulk],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "payroll",
                    "data": {"displayName": "Payroll", "members": [{"value": "bulkId:robin"}]},
                },
                {"method": "POST", "path": "/Users", "bulkId": "robin", "data": robin},
            ],
        },
    )
    assert hired.status_code == 200, hired.text
    results = hired.json()["Operations"]
    assert [result["status"] for result in results] == ["201", "201"]
    person = results[1]["location"].rsplit("/", 1)[1]
    # Each operation enqueued the app's key in its own transaction.
    assert person in members(runtime, finance)
    assert person in queued_subjects(runtime, app)
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is not None and account["active"] is True
    assert downstream.scim.members("Finance") == {HIRE}

    leave = {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    left = http.post(
        "Bulk",
        json={
            "schemas": [bulk],
            "Operations": [{"method": "PATCH", "path": f"/Users/{person}", "data": leave}],
        },
    )
    assert [result["status"] for result in left.json()["Operations"]] == ["200"]
    converge(runtime)
    account = downstream.scim.user(HIRE)
    assert account is not None and account["active"] is False
    assert downstream.scim.members("Finance") == set()
