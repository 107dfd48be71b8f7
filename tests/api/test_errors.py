"""Every refusal is Okta's error object with ``Content-Type: application/json``, and a refused
request leaves the database exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import assert_okta_error, create_group, create_user, row_counts

GOOD = {"login": "ann@example.com", "email": "ann@example.com", "firstName": "A", "lastName": "B"}


@pytest.fixture
def existing(runtime: Runtime) -> dict[str, str]:
    return {
        "user": create_user(runtime, "ann@example.com"),
        "group": create_group(runtime, "Accounting"),
    }


Call = Callable[[TestClient, dict[str, str]], Any]

#: (description, request, status, code, a word the errorCauses must contain or None)
REFUSALS: list[tuple[str, Call, int, str, str | None]] = [
    (
        "malformed JSON",
        lambda c, _: c.post("/api/v1/users", content=b'{"profile": ', headers=_json()),
        400,
        "E0000003",
        None,
    ),
    (
        "JSON that is not an object",
        lambda c, _: c.post("/api/v1/groups", content=b"[1, 2]", headers=_json()),
        400,
        "E0000001",
        "body",
    ),
    (
        "empty body on create",
        lambda c, _: c.post("/api/v1/users", content=b"", headers=_json()),
        400,
        "E0000001",
        "body",
    ),
    (
        "missing profile fields",
        lambda c, _: c.post("/api/v1/users", json={"profile": {"login": "bob@example.com"}}),
        400,
        "E0000001",
        "firstName",
    ),
    (
        "duplicate login",
        lambda c, _: c.post(
            "/api/v1/users", json={"profile": {**GOOD, "login": "ANN@example.com"}}
        ),
        400,
        "E0000001",
        "login",
    ),
    (
        "duplicate group name",
        lambda c, _: c.post("/api/v1/groups", json={"profile": {"name": "accounting"}}),
        400,
        "E0000001",
        "name",
    ),
    (
        "PUT with a non-string email",
        lambda c, e: c.put(f"/api/v1/users/{e['user']}", json={"profile": {**GOOD, "email": 5}}),
        400,
        "E0000001",
        "email",
    ),
    (
        "non-string profile value",
        lambda c, e: c.post(f"/api/v1/users/{e['user']}", json={"profile": {"title": ["a", {}]}}),
        400,
        "E0000001",
        "title",
    ),
    (
        "NUL in a name",
        lambda c, _: c.post("/api/v1/groups", json={"profile": {"name": "a\u0000b"}}),
        400,
        "E0000001",
        "name",
    ),
    (
        "lone surrogate in a profile",
        lambda c, e: c.post(
            f"/api/v1/users/{e['user']}",
            content=b'{"profile": {"title": "\\ud800"}}',
            headers=_json(),
        ),
        400,
        "E0000001",
        "title",
    ),
    (
        "unknown user",
        lambda c, _: c.get("/api/v1/users/00u0000000000000000"),
        404,
        "E0000007",
        None,
    ),
    (
        "NUL in a path id",
        lambda c, _: c.get("/api/v1/users/abc%00def"),
        400,
        "E0000001",
        "user_id: must not contain NUL characters",
    ),
    (
        "unknown group",
        lambda c, _: c.delete("/api/v1/groups/00g0000000000000000"),
        404,
        "E0000007",
        None,
    ),
    ("unknown route", lambda c, _: c.get("/api/v1/nothing-here"), 404, "E0000007", None),
    ("wrong method", lambda c, _: c.patch("/api/v1/users"), 405, "E0000022", None),
    (
        "wrong method on an item",
        lambda c, e: c.post(f"/api/v1/groups/{e['group']}", json={}),
        405,
        "E0000022",
        None,
    ),
    (
        "oversized body",
        lambda c, _: c.post(
            "/api/v1/users",
            content=b'{"profile": {"title": "' + b"x" * 1_100_000 + b'"}}',
            headers=_json(),
        ),
        413,
        "E0000005",
        None,
    ),
    (
        "bad query parameter type",
        lambda c, _: c.post("/api/v1/users?activate=perhaps", json={"profile": GOOD}),
        400,
        "E0000001",
        "activate",
    ),
    (
        "NUL in a filter",
        lambda c, _: c.get("/api/v1/users?filter=status%20eq%20%22%00%22"),
        400,
        "E0000001",
        "filter",
    ),
    ("NUL in q", lambda c, _: c.get("/api/v1/groups?q=%00"), 400, "E0000001", "q"),
]


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def test_refusals_are_okta_errors_and_change_nothing(
    client: TestClient, runtime: Runtime, existing: dict[str, str], subtests: pytest.Subtests
) -> None:
    for name, call, status, code, cause in REFUSALS:
        with subtests.test(msg=name):
            before = row_counts(runtime)
            body = assert_okta_error(call(client, existing), status, code)
            assert body["errorId"] and body["errorLink"] == code
            if cause is not None:
                summaries = " ".join(c["errorSummary"] for c in body["errorCauses"])
                assert cause in summaries, body
            assert row_counts(runtime) == before


def test_error_ids_are_unique(client: TestClient) -> None:
    first = client.get("/api/v1/users/00unope").json()["errorId"]
    second = client.get("/api/v1/users/00unope").json()["errorId"]
    assert first != second
