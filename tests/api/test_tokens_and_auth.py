"""SSWS authentication and the API token endpoints (which never show a token or its hash)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from headwater import clock
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import tokens
from headwater.testing.toolkit import assert_okta_error, event_types


def _token_row(runtime: Runtime, token: str) -> t.ApiToken:
    with runtime.database.read() as session:
        rows = [
            row for row in tokens.list_tokens(session) if row.token_hash == tokens.hash_token(token)
        ]
        session.expunge_all()
    assert len(rows) == 1
    return rows[0]


BAD_HEADERS = [
    None,
    "",
    "SSWS",
    "SSWS ",
    "SSWS wrong",
    "Bearer {token}",
    "Basic {token}",
    "{token}",
]


def test_missing_or_wrong_token_is_401(
    client: TestClient, api_token: str, subtests: pytest.Subtests
) -> None:
    client.headers.pop("Authorization")
    for header in BAD_HEADERS:
        with subtests.test(msg=str(header)):
            headers = {} if header is None else {"Authorization": header.format(token=api_token)}
            body = assert_okta_error(client.get("/api/v1/users", headers=headers), 401, "E0000011")
            assert body["errorSummary"] == "Invalid token provided"


@pytest.mark.parametrize("template", ["SSWS {token}", "SSWS{token}", "ssws  {token} "])
def test_ssws_spellings_are_accepted(client: TestClient, api_token: str, template: str) -> None:
    client.headers["Authorization"] = template.format(token=api_token)
    assert client.get("/api/v1/users").status_code == 200


def test_unauthenticated_writes_change_nothing(client: TestClient, runtime: Runtime) -> None:
    client.headers["Authorization"] = "SSWS nope"
    body = {
        "profile": {
            "login": "a@example.com",
            "email": "a@example.com",
            "firstName": "A",
            "lastName": "B",
        }
    }
    assert_okta_error(client.post("/api/v1/users", json=body), 401, "E0000011")
    assert_okta_error(
        client.post("/api/v1/groups", json={"profile": {"name": "G"}}), 401, "E0000011"
    )
    assert event_types(runtime) == ["system.api_token.create"]


def test_last_used_is_recorded(client: TestClient, runtime: Runtime, api_token: str) -> None:
    assert _token_row(runtime, api_token).last_used is None
    client.get("/api/v1/users")
    first = _token_row(runtime, api_token).last_used
    assert first is not None
    stale = clock.utcnow() - timedelta(hours=1)
    # Time travel, written directly: no service can make a token's last use an hour old.
    with runtime.database.transaction() as session:
        session.execute(update(t.ApiToken).values(last_used=stale))
    client.get("/api/v1/users")
    refreshed = _token_row(runtime, api_token).last_used
    assert refreshed is not None and clock.as_utc(refreshed) > stale


def test_list_and_get_tokens_never_show_secrets(
    client: TestClient, runtime: Runtime, api_token: str
) -> None:
    with runtime.database.transaction() as session:
        second, plaintext = tokens.create(session, "deploy-script", SYSTEM)
        second_id = second.id
    row = _token_row(runtime, api_token)
    response = client.get("/api/v1/api-tokens")
    assert response.status_code == 200
    listed = response.json()
    assert [item["name"] for item in listed] == ["test-token", "deploy-script"]
    for item in listed:
        assert item["clientName"] == "Okta API"
        assert set(item) >= {
            "id",
            "name",
            "userId",
            "tokenWindow",
            "created",
            "lastUpdated",
            "expiresAt",
            "_link",
        }
        assert item["_link"]["self"]["href"].endswith(f"/api/v1/api-tokens/{item['id']}")
    text = response.text + client.get(f"/api/v1/api-tokens/{second_id}").text
    for secret in (api_token, plaintext, row.token_hash, tokens.hash_token(plaintext)):
        assert secret not in text
    assert client.get(f"/api/v1/api-tokens/{second_id}").json()["name"] == "deploy-script"
    assert_okta_error(client.get("/api/v1/api-tokens/00Tnope"), 404, "E0000007")


def test_revoked_token_is_401(client: TestClient, runtime: Runtime, api_token: str) -> None:
    with runtime.database.transaction() as session:
        other, other_plaintext = tokens.create(session, "other", SYSTEM)
        other_id = other.id
    assert client.delete(f"/api/v1/api-tokens/{other_id}").status_code == 204
    assert_okta_error(client.delete(f"/api/v1/api-tokens/{other_id}"), 404, "E0000007")
    response = client.get("/api/v1/users", headers={"Authorization": f"SSWS {other_plaintext}"})
    assert_okta_error(response, 401, "E0000011")
    assert "system.api_token.revoke" in event_types(runtime, target_id=other_id)
    assert client.delete("/api/v1/api-tokens/current").status_code == 204
    assert_okta_error(client.get("/api/v1/users"), 401, "E0000011")


def test_expired_token_is_401(client: TestClient, runtime: Runtime, api_token: str) -> None:
    # Time travel, written directly: no service makes a token that has already expired.
    with runtime.database.transaction() as session:
        session.execute(update(t.ApiToken).values(expires_at=clock.utcnow() - timedelta(seconds=1)))
    assert_okta_error(client.get("/api/v1/users"), 401, "E0000011")


def test_health_needs_no_token(client: TestClient) -> None:
    client.headers.pop("Authorization")
    assert client.get("/health").status_code == 200


def test_token_and_permission_are_answered_before_the_url_and_the_body(
    client: TestClient, runtime: Runtime
) -> None:
    """The token and the route's permission are checked in the handler's thread, yet a request
    that fails earlier hears about them first, as when each was checked at once: an unknown
    token is 401 and a refused permission 403 (and logged), whatever else is wrong with the
    request; a URL no database stores is refused before the permission is looked at."""
    with runtime.database.transaction() as session:
        _, reader = tokens.create(session, "reader", SYSTEM, role="READ_ONLY_ADMIN")
    unknown = {"Authorization": "SSWS nope"}
    readonly = {"Authorization": f"SSWS {reader}"}
    malformed = b'{"profile": '
    user = json.dumps({"profile": {"login": "o@example.com", "email": "o@example.com"}}).encode()

    def post(path: str, headers: dict[str, str], content: bytes) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        response: httpx.Response = client.post(path, headers=sent, content=content)
        return response

    assert_okta_error(post("/api/v1/users", unknown, malformed), 401, "E0000011")
    assert_okta_error(post("/api/v1/users?activate=maybe", unknown, user), 401, "E0000011")
    assert_okta_error(post("/api/v1/users/00u%00", unknown, user), 401, "E0000011")
    assert event_types(runtime, "app.headwater.access") == []

    assert_okta_error(post("/api/v1/users/00u%00", readonly, user), 400, "E0000001")
    assert event_types(runtime, "app.headwater.access") == []
    assert_okta_error(post("/api/v1/users", readonly, malformed), 403, "E0000006")
    assert_okta_error(post("/api/v1/users?activate=maybe", readonly, user), 403, "E0000006")
    assert event_types(runtime, "app.headwater.access") == ["app.headwater.access.denied"] * 2

    assert_okta_error(post("/api/v1/users", {}, malformed), 400, "E0000003")
    assert_okta_error(post("/api/v1/users?activate=maybe", {}, user), 400, "E0000001")
    assert event_types(runtime, "user.") == []


def test_a_token_revoked_elsewhere_fails_at_its_next_request(
    client: TestClient, runtime: Runtime
) -> None:
    """Tokens are not cached: one revoked by another process (here: straight in the database)
    is refused at once, on reads and writes alike."""
    with runtime.database.transaction() as session:
        row, other = tokens.create(session, "other", SYSTEM)
        other_id = row.id
    headers = {"Authorization": f"SSWS {other}"}
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    with runtime.database.transaction() as session:
        tokens.revoke(session, other_id, SYSTEM)
    assert_okta_error(client.get("/api/v1/users", headers=headers), 401, "E0000011")
    user = {"profile": {"login": "r@example.com", "email": "r@example.com"}}
    response = client.post("/api/v1/users", headers=headers, json=user)
    assert_okta_error(response, 401, "E0000011")
