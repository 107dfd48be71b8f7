"""The provisioning connection: stored sealed, tested against a real SCIM server, never shown."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assert_okta_error,
    assign_user,
    clear_keys,
    create_app,
    create_user,
    events,
    ok,
    queued_subjects,
)

GOOD_TOKEN = "good-token-7f3a9c1e5b"
WRONG_TOKEN = "wrong-token-c0ffee4d2a"
BASE = "http://scim.test/v2"


@pytest.fixture(autouse=True)
def scim_server(runtime: Runtime) -> None:
    """A real scim2-server that accepts only GOOD_TOKEN, reached in-process."""
    InProcessScim(bearer_token=GOOD_TOKEN).serve(runtime)


def _token_body(token: str | None = GOOD_TOKEN, base: str = BASE) -> dict[str, Any]:
    profile: dict[str, Any] = {"authScheme": "TOKEN"}
    if token is not None:
        profile["token"] = token
    return {"baseUrl": base, "profile": profile}


def _url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/connections/default"


def _stored(runtime: Runtime, app_id: str) -> t.AppConnection | None:
    with runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        session.expunge_all()
        return row


def _everything_logged(runtime: Runtime) -> str:
    """Every event row, as text."""
    return " ".join(
        f"{r.display_message} {r.outcome_reason} {r.actor} {r.targets} {r.debug}"
        for r in events(runtime)
    )


def test_good_connection_activates(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    response = client.post(_url(app_id) + "?activate=true", json=_token_body())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["authScheme"], body["baseUrl"], body["status"]) == ("TOKEN", BASE, "ENABLED")
    assert body["profile"] == {"authScheme": "TOKEN"}
    assert isinstance(body["_links"]["self"]["href"], str)
    fetched = client.get(_url(app_id))
    assert fetched.json() == body
    for text in (response.text, fetched.text, _everything_logged(runtime)):
        assert GOOD_TOKEN not in text
    row = _stored(runtime, app_id)
    assert row is not None and row.secret_encrypted is not None
    assert GOOD_TOKEN not in row.secret_encrypted
    assert runtime.secrets.open(row.secret_encrypted) == {"token": GOOD_TOKEN}
    features = client.get(f"/api/v1/apps/{app_id}").json()["features"]
    assert features[0] == "SCIM_PROVISIONING" and "PUSH_NEW_USERS" in features


def test_wrong_token_fails_clearly_without_leaking(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app_id = create_app(runtime)
    caplog.set_level(logging.DEBUG)
    response = client.post(_url(app_id), json=_token_body(WRONG_TOKEN))
    summary = assert_okta_error(response, 400, "E0000001")["errorSummary"]
    assert summary.startswith("Connection test failed:")
    assert "credentials rejected (HTTP 401)" in summary
    assert WRONG_TOKEN not in response.text
    assert WRONG_TOKEN not in _everything_logged(runtime)
    assert WRONG_TOKEN not in caplog.text
    assert "credentials rejected" in caplog.text
    # Nothing half-written: a refused connection is not stored.
    assert client.get(_url(app_id)).status_code == 404


def test_stored_connection_is_tested_on_activate(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app_id = create_app(runtime)
    caplog.set_level(logging.DEBUG)
    stored = client.post(_url(app_id) + "?activate=false", json=_token_body(WRONG_TOKEN))
    assert stored.json()["status"] == "DISABLED"
    failed = client.post(_url(app_id) + "/lifecycle/activate")
    assert failed.status_code == 400
    assert "credentials rejected (HTTP 401)" in failed.json()["errorSummary"]
    assert client.get(_url(app_id)).json()["status"] == "DISABLED"
    for text in (stored.text, failed.text, _everything_logged(runtime), caplog.text):
        assert WRONG_TOKEN not in text
    client.post(_url(app_id) + "?activate=false", json=_token_body(GOOD_TOKEN))
    activated = client.post(_url(app_id) + "/lifecycle/activate")
    assert (activated.status_code, activated.json()["status"]) == (200, "ENABLED")
    deactivated = client.post(_url(app_id) + "/lifecycle/deactivate")
    assert deactivated.json()["status"] == "DISABLED"


def test_omitted_secret_is_kept_for_the_same_scheme(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    client.post(_url(app_id), json=_token_body())
    moved = client.post(_url(app_id), json=_token_body(None, base=BASE + "/"))
    assert (moved.status_code, moved.json()["baseUrl"]) == (200, BASE + "/")
    row = _stored(runtime, app_id)
    assert row is not None and runtime.secrets.open(row.secret_encrypted or "") == {
        "token": GOOD_TOKEN
    }
    basic = client.post(_url(app_id), json={"baseUrl": BASE, "profile": {"authScheme": "BASIC"}})
    assert basic.status_code == 400  # a new scheme needs its own credentials


def test_unreachable_downstream_is_reported(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    body = _token_body(base="http://127.0.0.1:9/scim")
    response = client.post(_url(app_id), json=body)
    assert response.status_code == 400
    assert "cannot connect" in response.json()["errorSummary"]


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (
            {"baseUrl": "ftp://scim.test", "profile": {"authScheme": "TOKEN", "token": "x"}},
            "baseUrl",
        ),
        ({"baseUrl": "https://", "profile": {"authScheme": "TOKEN", "token": "x"}}, "baseUrl"),
        ({"baseUrl": "https://u:p@scim.test", "profile": {"authScheme": "NONE"}}, "baseUrl"),
        ({"profile": {"authScheme": "TOKEN", "token": "x"}}, "baseUrl"),
        ({"baseUrl": BASE, "profile": {"authScheme": "TOKEN"}}, "profile.token"),
        ({"baseUrl": BASE, "profile": {"authScheme": "KERBEROS"}}, "profile.authScheme"),
        (
            {"baseUrl": BASE, "profile": {"authScheme": "BASIC", "username": "u"}},
            "profile.password",
        ),
        (
            {"baseUrl": BASE, "profile": {"authScheme": "OAUTH2", "clientId": "c"}},
            "profile.tokenUrl",
        ),
        ({"baseUrl": BASE, "profile": {"token": "x"}}, "profile.authScheme"),
        ({"baseUrl": BASE}, "profile"),
    ],
)
def test_invalid_connection_is_refused(
    client: TestClient, runtime: Runtime, body: dict[str, Any], cause: str
) -> None:
    app_id = create_app(runtime)
    response = client.post(_url(app_id) + "?activate=false", json=body)
    assert_okta_error(response, 400, "E0000001")
    causes = [c["errorSummary"] for c in response.json()["errorCauses"]]
    assert any(c.startswith(cause) for c in causes), causes
    assert _stored(runtime, app_id) is None


def test_other_schemes_are_stored_sealed(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    basic = {"authScheme": "BASIC", "username": "svc", "password": "pa55-word-x"}
    response = client.post(
        _url(app_id) + "?activate=false", json={"baseUrl": BASE, "profile": basic}
    )
    assert response.json()["authScheme"] == "BASIC" and "pa55-word-x" not in response.text
    oauth = {
        "authScheme": "OAUTH2",
        "clientId": "cid",
        "clientSecret": "oauth-secret-x",
        "tokenUrl": "https://idp.example.com/token",
        "scope": "scim",
    }
    client.post(_url(app_id) + "?activate=false", json={"baseUrl": BASE, "profile": oauth})
    row = _stored(runtime, app_id)
    assert row is not None and row.auth_scheme == "OAUTH2"
    assert runtime.secrets.open(row.secret_encrypted or "") == {
        "client_id": "cid",
        "client_secret": "oauth-secret-x",
        "token_url": "https://idp.example.com/token",
        "scope": "scim",
    }
    none = client.post(_url(app_id), json={"baseUrl": BASE, "profile": {"authScheme": "NONE"}})
    assert none.status_code == 400  # the server wants a token, so the test fails
    assert "oauth-secret-x" not in _everything_logged(runtime)


def test_connection_changes_enqueue_the_app(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "cy@example.com")
    assign_user(runtime, app_id, user)
    clear_keys(runtime)
    client.post(_url(app_id) + "?activate=false", json=_token_body())
    assert queued_subjects(runtime, app_id) == {user}
    clear_keys(runtime)
    client.post(_url(app_id) + "/lifecycle/activate")
    assert queued_subjects(runtime, app_id) == {user}
    updates = [e.display_message for e in events(runtime, "application.lifecycle.update")]
    assert updates == [
        "Update provisioning connection of Wiki",
        "Activate provisioning connection of Wiki",
    ]


def test_connection_of_unknown_app(client: TestClient) -> None:
    assert client.post(_url("0oaNope"), json=_token_body()).status_code == 404
    assert client.get(_url("0oaNope")).status_code == 404
    assert client.post(_url("0oaNope") + "/lifecycle/activate").status_code == 404


# --- A secret is bound to the URL it was entered for ------------------------------------------

OTHER = "http://elsewhere.test/v2"


@pytest.fixture
def elsewhere(runtime: Runtime) -> InProcessScim:
    """Another SCIM server (accepting anything), where a moved connection would send."""
    return InProcessScim("elsewhere.test").serve(runtime)


@pytest.mark.parametrize("activate", ["true", "false"])
def test_a_new_base_url_needs_the_token_again(
    client: TestClient, runtime: Runtime, elsewhere: InProcessScim, activate: str
) -> None:
    app_id = create_app(runtime)
    client.post(_url(app_id), json=_token_body())
    before = _stored(runtime, app_id)
    response = client.post(f"{_url(app_id)}?activate={activate}", json=_token_body(None, OTHER))
    assert_okta_error(
        response, 400, "E0000001", "profile.token: required again when baseUrl changes"
    )
    assert elsewhere.transport.sent == []
    after = _stored(runtime, app_id)
    assert after is not None and before is not None
    assert (after.base_url, after.secret_encrypted) == (BASE, before.secret_encrypted)
    # With the token given again, the move is fine.
    moved = client.post(f"{_url(app_id)}?activate={activate}", json=_token_body("new-token", OTHER))
    assert moved.status_code == 200, moved.text
    row = _stored(runtime, app_id)
    assert row is not None and runtime.secrets.open(row.secret_encrypted or "") == {
        "token": "new-token"
    }


def test_a_new_base_url_needs_the_password_again(
    client: TestClient, runtime: Runtime, elsewhere: InProcessScim
) -> None:
    app_id = create_app(runtime)
    basic = {"authScheme": "BASIC", "username": "svc", "password": "pa55-word-x"}
    client.post(_url(app_id) + "?activate=false", json={"baseUrl": BASE, "profile": basic})
    moved = {"baseUrl": OTHER, "profile": {"authScheme": "BASIC"}}
    response = client.post(_url(app_id), json=moved)
    assert_okta_error(response, 400, "E0000001", "profile.password: required again")
    assert elsewhere.transport.sent == []
    # The user name is no secret: it is kept.
    again = {"baseUrl": OTHER, "profile": {"authScheme": "BASIC", "password": "n3w-pass"}}
    ok(client.post(_url(app_id) + "?activate=false", json=again))
    row = _stored(runtime, app_id)
    assert row is not None and runtime.secrets.open(row.secret_encrypted or "") == {
        "username": "svc",
        "password": "n3w-pass",
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tokenUrl": "https://other-idp.example.com/token"}, "profile.tokenUrl changes"),
        ({"baseUrl": OTHER}, "baseUrl changes"),
    ],
)
def test_a_new_oauth_url_needs_the_client_secret_again(
    client: TestClient, runtime: Runtime, elsewhere: InProcessScim, change: dict[str, str], why: str
) -> None:
    app_id = create_app(runtime)
    oauth = {
        "authScheme": "OAUTH2",
        "clientId": "cid",
        "clientSecret": "oauth-secret-x",
        "tokenUrl": "https://idp.example.com/token",
    }
    client.post(_url(app_id) + "?activate=false", json={"baseUrl": BASE, "profile": oauth})
    profile: dict[str, Any] = {"authScheme": "OAUTH2"}
    if "tokenUrl" in change:
        profile["tokenUrl"] = change["tokenUrl"]
    body = {"baseUrl": change.get("baseUrl", BASE), "profile": profile}
    response = client.post(_url(app_id), json=body)
    assert_okta_error(response, 400, "E0000001", f"profile.clientSecret: required again when {why}")
    assert elsewhere.transport.sent == []
    # Unchanged URLs keep it.
    same = {"baseUrl": BASE + "/", "profile": {"authScheme": "OAUTH2"}}
    ok(client.post(_url(app_id) + "?activate=false", json=same))
    row = _stored(runtime, app_id)
    assert row is not None
    assert runtime.secrets.open(row.secret_encrypted or "")["client_secret"] == "oauth-secret-x"


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.0.1."]
)
@pytest.mark.parametrize("field", ["baseUrl", "tokenUrl"])
def test_numbers_not_spelled_as_dotted_quads_are_refused_on_save(
    client: TestClient, runtime: Runtime, host: str, field: str
) -> None:
    app_id = create_app(runtime)
    url = f"http://{host}:8080/scim/v2"
    profile = {"authScheme": "OAUTH2", "clientId": "c", "clientSecret": "s3cret", "tokenUrl": url}
    body: dict[str, Any] = {"baseUrl": BASE, "profile": profile}
    if field == "baseUrl":
        body = {"baseUrl": url, "profile": {"authScheme": "TOKEN", "token": "x"}}
    response = client.post(_url(app_id) + "?activate=false", json=body)
    cause = "baseUrl" if field == "baseUrl" else "profile.tokenUrl"
    assert_okta_error(response, 400, "E0000001", f"{cause}: its host must spell an IPv4 address")
    assert _stored(runtime, app_id) is None
