"""LDAP apps over the API: created by name, their connection profile validated field by field
(Okta's 400s), sealed, tested against a real slapd, and never shown with its password."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.slapd import Slapd
from headwater.testing.toolkit import assert_okta_error, ok


def _app(client: TestClient, name: str = "headwater_ldap") -> str:
    app_id: str = ok(client.post("/api/v1/apps", json={"label": "Directory", "name": name}))["id"]
    return app_id


def _body(server: Slapd, **changes: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "authScheme": "LDAP",
        "bindDn": server.root_dn,
        "password": server.root_password,
        "peopleBaseDn": server.people_base,
        "groupsBaseDn": server.groups_base,
        "disabledBaseDn": server.disabled_base,
        "startTls": False,
        "deactivation": "LOCK",
        "connectTimeout": 3,
        "requestTimeout": 10,
    }
    base = changes.pop("baseUrl", server.url)
    profile.update(changes)
    return {"baseUrl": base, "profile": {k: v for k, v in profile.items() if v is not None}}


def _url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/connections/default"


def test_an_ldap_connection_is_tested_sealed_and_never_shown(
    client: TestClient, runtime: Runtime, slapd: Slapd
) -> None:
    app_id = _app(client)
    shown = ok(client.post(_url(app_id), json=_body(slapd)))
    assert shown["status"] == "ENABLED" and shown["authScheme"] == "LDAP"
    assert shown["baseUrl"] == slapd.url
    assert slapd.root_password not in str(shown)
    assert slapd.root_password not in client.get(_url(app_id)).text
    with runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.secret_encrypted is not None
        assert slapd.root_password not in row.secret_encrypted
        stored = runtime.secrets.open(row.secret_encrypted)
    assert stored["password"] == slapd.root_password
    assert stored["people_base"] == slapd.people_base
    assert stored["group_class"] == "groupOfNames" and stored["on_missing"] == "RECREATE"
    # Changing a field keeps the password (same URL); the test binds with it again.
    changed = _body(
        slapd,
        password=None,
        deactivation="MOVE",
        groupObjectClass="groupofuniquenames",
        onMissingEntry="task",
    )
    ok(client.post(_url(app_id), json=changed))
    ok(client.post(f"{_url(app_id)}/lifecycle/activate"))
    with runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.secret_encrypted is not None
        stored = runtime.secrets.open(row.secret_encrypted)
    assert stored["group_class"] == "groupOfUniqueNames" and stored["on_missing"] == "TASK"


def test_a_wrong_password_fails_the_test_without_echoing_it(
    client: TestClient, slapd: Slapd
) -> None:
    app_id = _app(client)
    wrong = "wrong-bind-password-93c1"
    body = assert_okta_error(
        client.post(_url(app_id), json=_body(slapd, password=wrong)), 400, "E0000001"
    )
    assert "invalidCredentials" in body["errorSummary"]
    assert wrong not in str(body)
    missing = _body(slapd, groupsBaseDn=f"ou=nowhere,{slapd.suffix}")
    assert_okta_error(client.post(_url(app_id), json=missing), 400, "E0000001", "groups base")


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"baseUrl": "http://127.0.0.1:389"}, "baseUrl"),
        ({"baseUrl": "ldap://"}, "baseUrl"),
        ({"baseUrl": "ldap://user:pw@127.0.0.1"}, "baseUrl"),
        ({"baseUrl": "ldap://127.0.0.1/dc=example"}, "baseUrl"),
        ({"baseUrl": "ldap://2130706433"}, "baseUrl"),
        ({"bindDn": "not a dn"}, "profile.bindDn"),
        ({"bindDn": None}, "profile.bindDn"),
        ({"peopleBaseDn": "ou=people,,dc=x"}, "profile.peopleBaseDn"),
        ({"groupsBaseDn": "cn=a\u0000b"}, "profile.groupsBaseDn"),
        ({"deactivation": "SHRED"}, "profile.deactivation"),
        ({"deactivation": "MOVE", "disabledBaseDn": None}, "profile.disabledBaseDn"),
        ({"connectTimeout": 0}, "profile.connectTimeout"),
        ({"requestTimeout": 10_000}, "profile.requestTimeout"),
        ({"caCertificate": "not a pem"}, "profile.caCertificate"),
        ({"userDnTemplate": "uid=${password}"}, "profile.userDnTemplate"),
        ({"userDnTemplate": "uid=${userName},ou=x"}, "profile.userDnTemplate"),
        ({"matchAttribute": "mail)(uid=*"}, "profile.matchAttribute"),
        ({"groupObjectClass": "posixGroup"}, "profile.groupObjectClass"),
        ({"groupObjectClass": "groupOfNames" * 10}, "profile.groupObjectClass"),
        ({"onMissingEntry": "IGNORE"}, "profile.onMissingEntry"),
        ({"onMissingEntry": "TASK" * 100}, "profile.onMissingEntry"),
        ({"authScheme": "TOKEN", "token": "t"}, "profile.authScheme"),
        ({"directory": "novell"}, "profile.directory"),
        ({"directory": "activeDirectory" * 10}, "profile.directory"),
        ({"deactivation": "DISABLE"}, "profile.deactivation"),
        ({"directory": "activeDirectory", "deactivation": "LOCK"}, "profile.deactivation"),
        ({"groupObjectClass": "group"}, "profile.groupObjectClass"),
        (
            {
                "directory": "activeDirectory",
                "deactivation": "DISABLE",
                "userDnTemplate": "uid=${userName}",
            },
            "profile.userDnTemplate",
        ),
        (
            {
                "directory": "activeDirectory",
                "deactivation": "DISABLE",
                "groupObjectClass": "groupOfNames",
            },
            "profile.groupObjectClass",
        ),
    ],
)
def test_every_field_is_validated(
    client: TestClient, slapd: Slapd, change: dict[str, Any], cause: str
) -> None:
    app_id = _app(client)
    response = client.post(f"{_url(app_id)}?activate=false", json=_body(slapd, **change))
    assert_okta_error(response, 400, "E0000001", cause)
    assert client.get(_url(app_id)).status_code == 404  # nothing half-written


def test_the_ldap_scheme_is_only_for_ldap_apps(client: TestClient, slapd: Slapd) -> None:
    app_id = _app(client, name="scim2headwater")
    response = client.post(f"{_url(app_id)}?activate=false", json=_body(slapd))
    assert_okta_error(response, 400, "E0000001", "profile.authScheme")


def test_the_outbound_policy_applies_to_the_directory(
    client: TestClient, runtime: Runtime, slapd: Slapd
) -> None:
    runtime.connectors.policy = type(runtime.connectors.policy)()  # the default: no loopback
    app_id = _app(client)
    assert_okta_error(
        client.post(_url(app_id), json=_body(slapd)), 400, "E0000001", "outbound policy"
    )
