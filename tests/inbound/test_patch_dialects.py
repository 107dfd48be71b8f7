"""PATCH as Entra ID and Okta send it (RFC 7644 §3.5.2 and their departures from it), one row
per request, against ``/scim/v2`` in process: what the SCIM resource and the directory hold
afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.db import tables as t
from headwater.domain.inbound import ENTERPRISE_USER
from headwater.runtime import Runtime

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def hire(http: TestClient, login: str, **extra: Any) -> dict[str, Any]:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": login,
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": login, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }
    response = http.post("Users", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch(http: TestClient, path: str, *operations: dict[str, Any]) -> dict[str, Any]:
    response = http.patch(path, json={"schemas": [PATCH_OP], "Operations": list(operations)})
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    return patched


def profile(runtime: Runtime, user_id: str) -> tuple[str, dict[str, Any]]:
    with runtime.database.read() as session:
        user = session.get(t.User, user_id)
        assert user is not None
        return user.status, dict(user.profile)


@dataclass(frozen=True)
class UserCase:
    name: str
    operations: list[dict[str, Any]]
    check: Callable[[dict[str, Any], str, dict[str, Any]], bool]


USER_CASES = [
    UserCase(
        "entra: capitalised Replace, active as the string False",
        [{"op": "Replace", "path": "active", "value": "False"}],
        lambda doc, status, prof: doc["active"] is False and status == "DEPROVISIONED",
    ),
    UserCase(
        "entra: Add on an enterprise attribute by URN path",
        [{"op": "Add", "path": f"{ENTERPRISE_USER}:department", "value": "Sales"}],
        lambda doc, status, prof: (
            doc[ENTERPRISE_USER]["department"] == "Sales" and prof["department"] == "Sales"
        ),
    ),
    UserCase(
        "entra: Replace through a value filter on emails",
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann@new.example"}],
        lambda doc, status, prof: (
            doc["emails"][0]["value"] == "ann@new.example" and prof["email"] == "ann@new.example"
        ),
    ),
    UserCase(
        "entra: a filtered path that matches nothing creates the entry",
        [{"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"}],
        lambda doc, status, prof: prof["mobilePhone"] == "+1 555 0100",
    ),
    UserCase(
        "entra: path-less Replace with dotted and URN keys",
        [
            {
                "op": "Replace",
                "value": {"name.givenName": "Anna", f"{ENTERPRISE_USER}:employeeNumber": "42"},
            }
        ],
        lambda doc, status, prof: prof["firstName"] == "Anna" and prof["employeeNumber"] == "42",
    ),
    UserCase(
        "okta: path-less replace of active",
        [{"op": "replace", "value": {"active": False}}],
        lambda doc, status, prof: doc["active"] is False and status == "DEPROVISIONED",
    ),
    UserCase(
        "okta: path-less replace repeating the id",
        [{"op": "replace", "value": {"id": "ignored", "title": "Controller"}}],
        lambda doc, status, prof: doc["title"] == "Controller" and prof["title"] == "Controller",
    ),
    UserCase(
        "rfc: remove an optional attribute",
        [{"op": "remove", "path": "title"}],
        lambda doc, status, prof: "title" not in doc and "title" not in prof,
    ),
]


@pytest.mark.parametrize("case", USER_CASES, ids=[case.name for case in USER_CASES])
def test_user_patch_dialects(runtime: Runtime, http: TestClient, case: UserCase) -> None:
    user = hire(http, "ann.lee@example.com", title="Accountant")
    patched = patch(http, f"Users/{user['id']}", *case.operations)
    status, prof = profile(runtime, user["id"])
    assert case.check(patched, status, prof), (patched, status, prof)
    assert http.get(f"Users/{user['id']}").json() == patched


def test_entra_true_string_reactivates(runtime: Runtime, http: TestClient) -> None:
    user = hire(http, "ann.lee@example.com")
    patch(http, f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    patched = patch(
        http, f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "True"}
    )
    assert patched["active"] is True
    assert profile(runtime, user["id"])[0] == "PROVISIONED"


GROUP_CASES = [
    (
        "okta: remove a member by filter path",
        lambda a, b: [{"op": "remove", "path": f'members[value eq "{a}"]'}],
        lambda a, b: {b},
        "Finance",
    ),
    (
        "entra: Remove members by value list",
        lambda a, b: [{"op": "Remove", "path": "members", "value": [{"value": b}]}],
        lambda a, b: {a},
        "Finance",
    ),
    (
        "okta: add members with display",
        lambda a, b: [{"op": "add", "path": "members", "value": [{"value": b, "display": "x"}]}],
        lambda a, b: {a, b},
        "Finance",
    ),
    (
        "okta: path-less replace with the id and a new name",
        lambda a, b: [{"op": "replace", "value": {"id": "ignored", "displayName": "Treasury"}}],
        lambda a, b: {a, b},
        "Treasury",
    ),
    (
        "rfc: replace all members",
        lambda a, b: [{"op": "replace", "path": "members", "value": [{"value": a}]}],
        lambda a, b: {a},
        "Finance",
    ),
    (
        "rfc: remove every member",
        lambda a, b: [{"op": "remove", "path": "members"}],
        lambda a, b: set(),
        "Finance",
    ),
]


@pytest.mark.parametrize(
    ("name", "operations", "expected", "display"), GROUP_CASES, ids=[c[0] for c in GROUP_CASES]
)
def test_group_patch_dialects(
    runtime: Runtime,
    http: TestClient,
    name: str,
    operations: Callable[[str, str], list[dict[str, Any]]],
    expected: Callable[[str, str], set[str]],
    display: str,
) -> None:
    ann = hire(http, "ann.lee@example.com")["id"]
    bob = hire(http, "bob.ray@example.com")["id"]
    start = {"displayName": "Finance", "members": [{"value": ann}]}
    if "add members" not in name:
        start["members"] = [{"value": ann}, {"value": bob}]
    group = http.post("Groups", json=start).json()
    patched = patch(http, f"Groups/{group['id']}", *operations(ann, bob))
    assert {m["value"] for m in patched.get("members", [])} == expected(ann, bob)
    assert patched["displayName"] == display
    with runtime.database.read() as session:
        held = session.query(t.Membership.user_id).filter_by(group_id=group["id"]).all()
        stored = session.get(t.Group, group["id"])
        assert stored is not None and stored.name == display
    assert {row[0] for row in held} == expected(ann, bob)


def test_a_bad_operation_changes_nothing(runtime: Runtime, http: TestClient) -> None:
    user = hire(http, "ann.lee@example.com", title="Accountant")
    response = http.patch(
        f"Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": "title", "value": "CFO"},
                {"op": "remove", "path": "userName"},
            ],
        },
    )
    assert response.status_code == 400
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert profile(runtime, user["id"])[1]["title"] == "Accountant"
    bodies: list[Any] = [
        {"Operations": [{"op": "bogus", "path": "title"}]},
        {"Operations": []},
        {"Operations": [{"op": "replace", "path": "title", "value": "x"}] * 101},
        {"Operations": [{"op": "replace", "path": "no[such", "value": "x"}]},
        [],
    ]
    for body in bodies:
        refused = http.patch(f"Users/{user['id']}", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["status"] == "400"
