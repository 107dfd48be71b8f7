"""SSWS authentication and the API token endpoints (which never show a token or its hash)."""

from __future__ import annotations

from datetime import timedelta

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
