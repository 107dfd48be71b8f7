"""``/scim/v2/Bulk`` (RFC 7644 §3.7): bulkId references, failOnErrors, limits and bad input,
each operation applied like its single endpoint (mastery, the system log, downstream keys)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scim2_client.engines.asgi import ASGISCIMClient
from scim2_models import BulkOperation, BulkRequest, BulkResponse, Error, Group
from sqlalchemy import select
from tests.inbound.conftest import BASE
from tests.inbound.test_scim_users_groups import hire, scim_error

from headwater.db import tables as t
from headwater.domain import inbound_bulk
from headwater.domain.inbound import ENTERPRISE_USER
from headwater.domain.inbound_bulk import MAX_OPERATIONS, MAX_PAYLOAD, Operation, order
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import events

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
MEDIA = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def person(login: str, **extra: Any) -> dict[str, Any]:
    first, _, last = login.partition("@")[0].partition(".")
    return {
        "userName": login,
        "name": {"givenName": first.title(), "familyName": (last or "tester").title()},
        "emails": [{"value": login, "primary": True}],
        **extra,
    }


def post_user(bulk_id: str, login: str, **extra: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": person(login, **extra)}


def post_group(bulk_id: str, name: str, *members: str) -> dict[str, Any]:
    data: dict[str, Any] = {"displayName": name}
    if members:
        data["members"] = [{"value": member} for member in members]
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def send(http: TestClient, *operations: Any, **envelope: Any) -> list[dict[str, Any]]:
    body = {"schemas": [BULK_REQUEST], "Operations": list(operations), **envelope}
    response = http.post("Bulk", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    document = response.json()
    assert document["schemas"] == [BULK_RESPONSE]
    results: list[dict[str, Any]] = document["Operations"]
    for result in results:
        assert result["status"] != "500", result
        if not result["status"].startswith("2"):
            assert result["response"]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert result["response"]["status"] == result["status"]
    return results


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [result["status"] for result in results]


def member_ids(http: TestClient, location: str) -> list[str]:
    group = http.get(location.removeprefix(BASE + "/")).json()
    return sorted(member["value"] for member in group.get("members", []))


def id_of(result: dict[str, Any]) -> str:
    location: str = result["location"]
    return location.rsplit("/", 1)[1]


# --- bulkId resolution -------------------------------------------------------------------------

#: (operations, expected statuses): references backwards, forwards, in paths, in PATCH values,
#: to failed or unknown operations, and in cycles.
RESOLUTION: list[tuple[str, list[dict[str, Any]], list[str]]] = [
    (
        "backward reference in members",
        [post_user("u1", "ann.lee@example.com"), post_group("g1", "Finance", "bulkId:u1")],
        ["201", "201"],
    ),
    (
        "forward reference runs the referenced POST first",
        [post_group("g1", "Finance", "bulkId:u1"), post_user("u1", "ann.lee@example.com")],
        ["201", "201"],
    ),
    (
        "reference in a path",
        [
            post_user("u1", "ann.lee@example.com"),
            {
                "method": "PATCH",
                "path": "/Users/bulkId:u1",
                "data": {"Operations": [{"op": "replace", "path": "title", "value": "CFO"}]},
            },
        ],
        ["201", "200"],
    ),
    (
        "reference in a PATCH value and the manager",
        [
            post_user("boss", "bea.boss@example.com"),
            post_user(
                "u1",
                "ann.lee@example.com",
                **{ENTERPRISE_USER: {"manager": {"value": "bulkId:boss"}}},
            ),
            post_group("g1", "Finance"),
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:g1",
                "data": {
                    "Operations": [
                        {"op": "add", "path": "members", "value": [{"value": "bulkId:u1"}]}
                    ]
                },
            },
        ],
        ["201", "201", "201", "200"],
    ),
    (
        "reference to a failed POST is a 409",
        [
            post_user("u1", "not-a-person@example.com", name=None),
            post_group("g1", "F", "bulkId:u1"),
        ],
        ["400", "409"],
    ),
    (
        "reference no POST declares is a 400",
        [post_group("g1", "Finance", "bulkId:nobody")],
        ["400"],
    ),
    (
        "a cycle is a 409 for each of its operations, the rest runs",
        [
            post_group("a", "A", "bulkId:b"),
            post_group("b", "B", "bulkId:a"),
            post_user("u1", "ann.lee@example.com"),
        ],
        ["409", "409", "201"],
    ),
    (
        "a self reference is a cycle",
        [
            post_user(
                "u1",
                "ann.lee@example.com",
                **{ENTERPRISE_USER: {"manager": {"value": "bulkId:u1"}}},
            )
        ],
        ["409"],
    ),
    (
        "waiting on a cycle is a 409 too",
        [
            post_group("a", "A", "bulkId:b"),
            post_group("b", "B", "bulkId:a"),
            {"method": "DELETE", "path": "/Groups/bulkId:a"},
        ],
        ["409", "409", "409"],
    ),
]


@pytest.mark.parametrize(
    ("operations", "expected"),
    [(ops, expected) for _, ops, expected in RESOLUTION],
    ids=[name for name, _, _ in RESOLUTION],
)
def test_bulk_id_resolution(
    http: TestClient, operations: list[dict[str, Any]], expected: list[str]
) -> None:
    results = send(http, *operations)
    assert statuses(results) == expected
    for operation, result in zip(operations, results, strict=True):
        assert result["method"] == operation["method"]
        assert result.get("bulkId") == operation.get("bulkId")
        if result["status"] in ("200", "201"):
            assert result["location"].startswith(BASE + "/")
            assert result["version"].startswith('W/"')
            assert "response" not in result
            assert "bulkId:" not in result["location"]


def test_references_resolve_to_the_created_ids(http: TestClient) -> None:
    results = send(
        http,
        post_group("g1", "Finance", "bulkId:u1", "bulkId:u2"),
        post_user("u1", "ann.lee@example.com"),
        post_user(
            "u2", "bob.ray@example.com", **{ENTERPRISE_USER: {"manager": {"value": "bulkId:u1"}}}
        ),
    )
    assert statuses(results) == ["201", "201", "201"]
    ann, bob = id_of(results[1]), id_of(results[2])
    assert member_ids(http, results[0]["location"]) == sorted([ann, bob])
    read = http.get(f"Users/{bob}").json()
    assert read[ENTERPRISE_USER]["manager"]["value"] == ann


def test_order_of_operations_is_the_requests_but_for_references() -> None:
    def op(index: int, bulk_id: str | None, *needs: str) -> Operation:
        return Operation(index, "POST", "/Users", bulk_id, "User", needs=frozenset(needs))

    runnable, blocked = order([op(0, "a", "c"), op(1, "b"), op(2, "c", "b"), op(3, "d", "d")])
    assert [o.index for o in runnable] == [1, 2, 0]
    assert [o.index for o in blocked] == [3]


# --- failOnErrors and transactions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_on_errors", "expected"),
    [
        (None, ["201", "400", "201", "400", "201"]),
        (1, ["201", "400"]),
        (2, ["201", "400", "201", "400"]),
        (5, ["201", "400", "201", "400", "201"]),
    ],
)
def test_fail_on_errors(http: TestClient, fail_on_errors: int | None, expected: list[str]) -> None:
    bad = {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": 7}}
    operations = [
        post_user("u1", "ann.lee@example.com"),
        bad,
        post_user("u2", "bob.ray@example.com"),
        {**bad, "bulkId": "bad2"},
        post_user("u3", "cy.dee@example.com"),
    ]
    envelope = {} if fail_on_errors is None else {"failOnErrors": fail_on_errors}
    results = send(http, *operations, **envelope)
    assert statuses(results) == expected
    listed = http.get("Users").json()
    assert listed["totalResults"] == expected.count("201")


def test_each_operation_is_its_own_transaction_and_its_single_endpoint(
    runtime: Runtime, http: TestClient
) -> None:
    ann = hire(http, "ann.lee@example.com")
    results = send(
        http,
        post_user("u1", "bob.ray@example.com"),
        post_user("u2", "ANN.LEE@example.com"),  # taken: 409 uniqueness, nothing written
        {"method": "PUT", "path": f"/Users/{ann['id']}", "data": {**ann, "title": "CFO"}},
        {"method": "PATCH", "path": f"/Users/{ann['id']}", "version": 'W/"stale"', "data": {
            "Operations": [{"op": "replace", "path": "title", "value": "Clerk"}]}},
        {"method": "PATCH", "path": f"/Users/{ann['id']}", "data": {
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}},
        {"method": "DELETE", "path": "/Users/00uNoSuchUser"},
        post_group("g1", "Finance", "bulkId:u1"),
        {"method": "DELETE", "path": "/Groups/bulkId:g1"},
    )  # fmt: skip
    assert statuses(results) == ["201", "409", "200", "412", "200", "404", "201", "204"]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert "location" not in results[1]
    assert results[5]["location"] == f"{BASE}/Users/00uNoSuchUser"
    read = http.get(f"Users/{ann['id']}").json()
    assert read["title"] == "CFO" and read["active"] is False
    assert http.get("Groups").json()["totalResults"] == 0
    created = events(runtime, "user.lifecycle.create")
    assert [event.actor["displayName"] for event in created] == ["HR", "HR"]
    deactivated = events(runtime, "user.lifecycle.deactivate")
    assert [event.actor["type"] for event in deactivated] == ["Source"]
    with runtime.database.read() as session:
        bob = session.execute(select(t.User).where(t.User.id == id_of(results[0]))).scalar_one()
        assert bob.source_id is not None


# --- Limits and bad input ----------------------------------------------------------------------


def test_limits_are_announced_and_enforced(http: TestClient) -> None:
    config = http.get("ServiceProviderConfig").json()["bulk"]
    assert config == {
        "supported": True,
        "maxOperations": MAX_OPERATIONS,
        "maxPayloadSize": MAX_PAYLOAD,
    }
    many = [{"method": "DELETE", "path": "/Users/x"}] * (MAX_OPERATIONS + 1)
    too_many = http.post("Bulk", json={"schemas": [BULK_REQUEST], "Operations": many})
    scim_error(too_many, 413)
    assert too_many.headers["content-type"].startswith("application/scim+json")
    padding = "x" * MAX_PAYLOAD
    big = json.dumps({"schemas": [BULK_REQUEST], "Operations": [], "pad": padding}).encode()
    too_big = http.post("Bulk", content=big, headers={"Content-Type": "application/scim+json"})
    scim_error(too_big, 413)
    assert too_big.headers["content-type"].startswith("application/scim+json")
    exactly = [{"method": "DELETE", "path": f"/Users/u{i}"} for i in range(MAX_OPERATIONS)]
    assert statuses(send(http, *exactly)) == ["404"] * MAX_OPERATIONS


def test_max_payload_below_the_body_limit_is_enforced_by_bulk(
    http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbound_bulk, "MAX_PAYLOAD", 2000)
    assert http.get("ServiceProviderConfig").json()["bulk"]["maxPayloadSize"] == 2000
    operations = [post_user(f"u{i}", f"user{i}@example.com") for i in range(12)]
    body = json.dumps({"schemas": [BULK_REQUEST], "Operations": operations}).encode()
    assert len(body) > 2000
    too_big = http.post("Bulk", content=body, headers={"Content-Type": MEDIA})
    scim_error(too_big, 413)
    assert "maxPayloadSize" in too_big.json()["detail"]
    assert http.get("Users").json()["totalResults"] == 0
    assert statuses(send(http, *operations[:2])) == ["201", "201"]


#: Requests that fail whole: (body, status, scimType).
BAD_REQUESTS: list[tuple[Any, int, str | None]] = [
    ([], 400, "invalidSyntax"),
    ("Operations", 400, "invalidSyntax"),
    ({}, 400, "invalidSyntax"),
    ({"Operations": {"method": "POST"}}, 400, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": []}, 400, "invalidSyntax"),
    ({"schemas": "nope", "Operations": []}, 400, "invalidSyntax"),
    ({"Operations": [], "failOnErrors": 0}, 400, "invalidValue"),
    ({"Operations": [], "failOnErrors": "1"}, 400, "invalidValue"),
    ({"Operations": [], "failOnErrors": True}, 400, "invalidValue"),
    ({"Operations": [], "failOnErrors": 10**30}, 400, "invalidValue"),
    ({"Operations": [post_user("x", "a@x.com"), post_user("x", "c@x.com")]}, 400, "invalidValue"),
    # Text no database stores is refused in the whole body, as on every endpoint.
    ({"Operations": [post_user("x", "a.b@example.com", title="\u0000")]}, 400, "invalidValue"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "scim_type"), BAD_REQUESTS)
def test_bad_requests_fail_whole(
    http: TestClient, body: Any, status: int, scim_type: str | None
) -> None:
    scim_error(http.post("Bulk", json=body), status, scim_type)
    assert http.get("Users").json()["totalResults"] == 0


#: Operations that fail alone, with a 400 each.
BAD_OPERATIONS: list[Any] = [
    "POST",
    None,
    {"path": "/Users", "data": {}},
    {"method": "GET", "path": "/Users"},
    {"method": "POST"},
    {"method": "POST", "path": 7, "bulkId": "a", "data": person("a.b@example.com")},
    {"method": "POST", "path": "/Users/" + "x" * 600, "bulkId": "a", "data": {}},
    {"method": "POST", "path": "/Users/123", "bulkId": "a", "data": person("a.b@example.com")},
    {"method": "POST", "path": "/Schemas", "bulkId": "a", "data": {}},
    {"method": "POST", "path": "/Users/../Groups", "bulkId": "a", "data": {}},
    {"method": "POST", "path": "/Users", "bulkId": "a"},
    {"method": "POST", "path": "/Users", "bulkId": "a", "data": [1]},
    {"method": "POST", "path": "/Users", "bulkId": 5, "data": person("a.b@example.com")},
    {"method": "POST", "path": "/Users", "bulkId": "", "data": person("a.b@example.com")},
    {"method": "POST", "path": "/Users", "bulkId": "b" * 101, "data": person("a.b@example.com")},
    {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": None}},
    {"method": "PUT", "path": "/Users", "data": person("a.b@example.com")},
    {"method": "PUT", "path": "/Users/x", "version": 7, "data": person("a.b@example.com")},
    {"method": "PATCH", "path": "/Groups/x", "data": "replace"},
    {"method": "DELETE", "path": "/Groups"},
]


def test_bad_operations_fail_alone(http: TestClient) -> None:
    good = post_user("ok", "ann.lee@example.com")
    # Distinct bulkIds: a request declaring one twice fails whole.
    operations = [
        {**op, "bulkId": f"a{i}"} if isinstance(op, dict) and op.get("bulkId") == "a" else op
        for i, op in enumerate(BAD_OPERATIONS)
    ]
    results = send(http, *operations, good)
    assert statuses(results)[:-1] == ["400"] * len(BAD_OPERATIONS)
    assert results[-1]["status"] == "201"
    assert http.get("Users").json()["totalResults"] == 1


def test_a_bad_body_or_token_is_refused(http: TestClient) -> None:
    malformed = http.post(
        "Bulk", content=b"{nope", headers={"Content-Type": "application/scim+json"}
    )
    scim_error(malformed, 400, "invalidSyntax")
    scim_error(
        http.post("Bulk", json={"Operations": []}, headers={"Authorization": "Bearer x"}), 401
    )
    scim_error(http.put("Bulk", json={}), 405)
    assert send(http) == []


# --- A real SCIM client -------------------------------------------------------------------------


async def test_scim2_client_sends_a_bulk_request(runtime: Runtime, source: tuple[str, str]) -> None:
    app = create_app(runtime, start_worker=False)
    client = ASGISCIMClient(app, base_url=BASE, headers={"Authorization": f"Bearer {source[1]}"})
    await client.discover()
    user_model: Any = client.get_resource_model("User")
    request: Any = BulkRequest[user_model | Group](
        operations=[
            BulkOperation[Group](
                method="POST",
                bulk_id="team",
                path="/Groups",
                data=Group(display_name="Finance", members=[{"value": "bulkId:robin"}]),
            ),
            BulkOperation[user_model](
                method="POST",
                bulk_id="robin",
                path="/Users",
                data=user_model.model_validate(person("robin.hale@example.com")),
            ),
        ]
    )
    response = await client.bulk(request)
    assert isinstance(response, BulkResponse), response
    operations = response.operations or []
    assert [operation.status for operation in operations] == [201, 201]
    assert not any(isinstance(operation.response, Error) for operation in operations)
    robin = (operations[1].location or "").rsplit("/", 1)[1]
    group_model: Any = client.get_resource_model("Group")
    team: Any = await client.query(group_model, (operations[0].location or "").rsplit("/", 1)[1])
    assert [member.value for member in team.members or []] == [robin]


# --- Hostile bodies ------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_methods = st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "post", "GET", ""]) | _scalars
_paths = (
    st.sampled_from(["/Users", "/Groups", "/Users/bulkId:a", "/Groups/bulkId:b", "Users/x"])
    | _scalars
)
_bulk_ids = st.sampled_from(["a", "b", "c"]) | _scalars
_references = st.sampled_from(["bulkId:a", "bulkId:b", "bulkId:zz", "bulkId:"])
_data = (
    st.fixed_dictionaries(
        {
            "userName": st.text(max_size=10),
            "members": st.lists(st.fixed_dictionaries({"value": _references}), max_size=3),
        },
        optional={
            "name": st.fixed_dictionaries({"givenName": _scalars, "familyName": _scalars}),
            "emails": st.lists(st.fixed_dictionaries({"value": _scalars}), max_size=2),
            "displayName": _scalars,
            "Operations": _values,
        },
    )
    | _values
)
_operations = st.fixed_dictionaries(
    {},
    optional={
        "method": _methods,
        "path": _paths,
        "bulkId": _bulk_ids,
        "data": _data,
        "version": _scalars,
    },
)
_bodies = (
    st.fixed_dictionaries(
        {"Operations": st.lists(_operations, max_size=6)},
        optional={
            "failOnErrors": st.integers(-2, 8) | _scalars,
            "schemas": st.just([BULK_REQUEST]),
        },
    )
    | _values
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies)
def test_hostile_bodies_never_get_a_500(http: TestClient, body: Any) -> None:
    response = http.post("Bulk", json=body)
    assert response.status_code in (200, 400, 409, 413), response.text
    document = response.json()
    if response.status_code != 200:
        scim_error(response, response.status_code)
        return
    for result in document["Operations"]:
        assert result["status"] != "500", result


def test_the_documented_bulk_request(http: TestClient) -> None:
    """docs/inbound-scim.md's curl example, as written."""
    text = (Path(__file__).parents[2] / "docs" / "inbound-scim.md").read_text()
    example = text.split("/scim/v2/Bulk \\\n", 1)[1].split("-d '", 1)[1].split("'\n```", 1)[0]
    response = http.post("Bulk", content=example.encode(), headers={"Content-Type": MEDIA})
    assert response.status_code == 200, response.text
    results = response.json()["Operations"]
    assert statuses(results) == ["201", "201", "201", "200"]
    kim, lee = id_of(results[1]), id_of(results[2])
    assert member_ids(http, results[0]["location"]) == sorted([kim, lee])
    read = http.get(f"Users/{lee}").json()
    assert read["title"] == "Payroll clerk"
    assert read[ENTERPRISE_USER]["manager"]["value"] == kim
