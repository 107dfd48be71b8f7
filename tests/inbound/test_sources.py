"""Inbound sources: the ``/api/v1/sources`` extension (only super admins manage them), their
bearer tokens (shown once, hashed, revocable, accepted on ``/scim/v2`` only), and the
``headwater sources`` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from tests.inbound.conftest import BASE

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services.access import DENIED_EVENT
from headwater.services.tokens import hash_token
from headwater.testing.toolkit import (
    Cli,
    api_client,
    api_token,
    assert_okta_error,
    create_group,
    events,
    ok,
)
from headwater.testing.toolkit import (
    create_app as create_bookmark_app,
)


def scim_status(runtime: Runtime, token: str) -> int:
    app = create_app(runtime, start_worker=False)
    with TestClient(app, base_url=BASE + "/") as client:
        status: int = client.get("Users", headers={"Authorization": f"Bearer {token}"}).status_code
        return status


def test_sources_and_their_tokens_through_the_api(runtime: Runtime) -> None:
    with api_client(runtime) as admin:
        created = admin.post("/api/v1/sources", json={"name": "HR"})
        assert created.status_code == 201, created.text
        source = created.json()
        assert source["name"] == "HR" and source["_links"]["scim"]["href"].endswith("/scim/v2")
        assert_okta_error(admin.post("/api/v1/sources", json={"name": "hr"}), 400, "E0000001")
        assert_okta_error(admin.post("/api/v1/sources", json={"name": ""}), 400, "E0000001")
        assert_okta_error(admin.post("/api/v1/sources", json={"name": 7}), 400, "E0000001")
        assert [s["id"] for s in ok(admin.get("/api/v1/sources"))] == [source["id"]]
        assert ok(admin.get(f"/api/v1/sources/{source['id']}"))["name"] == "HR"
        assert_okta_error(admin.get("/api/v1/sources/0srNoSuchSource"), 404, "E0000007")

        issued = admin.post(f"/api/v1/sources/{source['id']}/tokens", json={"expiresIn": "90d"})
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]
        assert issued.json()["expiresAt"] is not None
        refused = admin.post(f"/api/v1/sources/{source['id']}/tokens", json={"expiresIn": "9y"})
        assert_okta_error(refused, 400, "E0000001")
        listed = ok(admin.get(f"/api/v1/sources/{source['id']}/tokens"))
        assert [row["id"] for row in listed] == [issued.json()["id"]]
        assert all("token" not in row for row in listed)
        assert token not in admin.get(f"/api/v1/sources/{source['id']}/tokens").text

        assert scim_status(runtime, token) == 200
        # A source token is not an API token, and an API token is not a source token.
        other = admin.get("/api/v1/users", headers={"Authorization": f"SSWS {token}"})
        assert_okta_error(other, 401, "E0000011")
        api = admin.headers["Authorization"].removeprefix("SSWS ")
        assert scim_status(runtime, api) == 401

        revoked = admin.delete(f"/api/v1/sources/{source['id']}/tokens/{issued.json()['id']}")
        assert revoked.status_code == 204
        assert scim_status(runtime, token) == 401
        assert admin.delete(f"/api/v1/sources/{source['id']}").status_code == 204
        assert ok(admin.get("/api/v1/sources")) == []
    with runtime.database.read() as session:
        stored = session.query(t.SourceToken.token_hash).all()
        assert all(row[0] != token for row in stored)
    kinds = [e.event_type for e in events(runtime, "app.headwater.source")]
    assert kinds == [
        "app.headwater.source.create",
        "app.headwater.source.token.create",
        "app.headwater.source.token.revoke",
        "app.headwater.source.delete",
    ]
    assert hash_token(token) not in str([e.debug for e in events(runtime)])


def test_deleting_a_source_leaves_its_people_unmastered(runtime: Runtime) -> None:
    with api_client(runtime) as admin:
        source = ok(admin.post("/api/v1/sources", json={"name": "HR"}), 201)
        token = ok(admin.post(f"/api/v1/sources/{source['id']}/tokens"), 201)["token"]
        app = create_app(runtime, start_worker=False)
        with TestClient(app, base_url=BASE + "/") as scim:
            scim.headers["Authorization"] = f"Bearer {token}"
            user = scim.post(
                "Users",
                json={
                    "userName": "ann.lee@example.com",
                    "name": {"givenName": "Ann", "familyName": "Lee"},
                    "emails": [{"value": "ann.lee@example.com"}],
                },
            ).json()
        change = {"profile": {"firstName": "Anna"}}
        assert_okta_error(admin.post(f"/api/v1/users/{user['id']}", json=change), 400, "E0000001")
        assert admin.delete(f"/api/v1/sources/{source['id']}").status_code == 204
        assert (
            ok(admin.post(f"/api/v1/users/{user['id']}", json=change))["profile"]["firstName"]
            == "Anna"
        )


ROLES = {
    "READ_ONLY_ADMIN": {"read": True, "manage": False},
    "APP_ADMIN": {"read": False, "manage": False},
    "GROUP_MEMBERSHIP_ADMIN": {"read": False, "manage": False},
}


@pytest.mark.parametrize("role", list(ROLES))
def test_only_super_admins_manage_sources(runtime: Runtime, role: str) -> None:
    with api_client(runtime) as admin:
        source = ok(admin.post("/api/v1/sources", json={"name": "HR"}), 201)
    apps = [create_bookmark_app(runtime)] if role == "APP_ADMIN" else []
    groups = [create_group(runtime, "Mine")] if role == "GROUP_MEMBERSHIP_ADMIN" else []
    token = api_token(runtime, "limited", role=role, apps=apps, groups=groups)
    allowed = ROLES[role]
    with api_client(runtime, token) as client:
        reads = [
            client.get("/api/v1/sources"),
            client.get(f"/api/v1/sources/{source['id']}"),
            client.get(f"/api/v1/sources/{source['id']}/tokens"),
        ]
        for response in reads:
            if allowed["read"]:
                assert response.status_code == 200, response.text
            else:
                assert_okta_error(response, 403, "E0000006")
        writes = [
            client.post("/api/v1/sources", json={"name": "Other"}),
            client.post(f"/api/v1/sources/{source['id']}/tokens"),
            client.delete(f"/api/v1/sources/{source['id']}/tokens/0stNoSuchToken"),
            client.delete(f"/api/v1/sources/{source['id']}"),
        ]
        for response in writes:
            assert_okta_error(response, 403, "E0000006")
    denied = events(runtime, DENIED_EVENT)
    assert len(denied) == len(writes) + (0 if allowed["read"] else len(reads))


def test_sources_from_the_command_line(tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        "HEADWATER_DATABASE_URL": f"sqlite:///{tmp_path / 'hw.db'}",
        "HEADWATER_DATA_DIR": str(tmp_path / "data"),
        "HEADWATER_SECRET_KEY": Fernet.generate_key().decode(),
        "COLUMNS": "200",
        "TTY_COMPATIBLE": "0",
        "TTY_INTERACTIVE": "0",
    }
    cli = Cli(env)
    assert "Created source HR (0sr" in cli.ok("sources", "create", "HR")
    refused = cli("sources", "create", "hr")
    assert refused.exit_code == 1 and "already exists" in refused.stderr
    issued = cli("sources", "token", "HR", "--expires-in", "30d")
    assert issued.exit_code == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("hws") and "shown only once" in issued.stderr
    listed = cli.ok("sources", "list")
    assert "HR" in listed and token not in listed
    tokens = cli.ok("sources", "tokens", "hr")
    assert token[:7] in tokens and token not in tokens
    runtime = cli.runtime()
    try:
        assert scim_status(runtime, token) == 200
        with runtime.database.read() as session:
            token_id = session.query(t.SourceToken.id).scalar()
        cli.ok("sources", "revoke", "HR", str(token_id))
        assert scim_status(runtime, token) == 401
    finally:
        runtime.close()
    cli.ok("sources", "delete", "HR")
    assert "HR" not in cli.ok("sources", "list")
    missing = cli("sources", "token", "HR")
    assert missing.exit_code == 1
