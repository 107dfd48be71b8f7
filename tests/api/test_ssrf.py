"""Server-side request forgery: a token holder cannot make Headwater reach (or read) an address
the outbound policy refuses, through a connection's ``baseUrl`` or OAuth ``tokenUrl``, when it
is saved or later, when the engine uses it.

Runtimes here allow ``127.0.0.1/32`` only (as the test toolkit's do); refused targets are
listeners on ``127.0.0.2`` that count connections, and names resolve through a stub resolver
(``localhost`` is used as the name, so even without the stub nothing leaves loopback). No test
sends a packet to a non-loopback address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    Listener,
    ScimReader,
    StubResolver,
    api_client,
    assert_okta_error,
    assign_user,
    converge,
    create_app,
    create_scim_app,
    create_user,
    make_runtime,
)

DENIED = "address not allowed by the outbound policy"


def _url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/connections/default"


@pytest.fixture
def forbidden() -> Iterator[Listener]:
    """A listener on 127.0.0.2, which the allow list does not name."""
    with Listener("127.0.0.2") as listener:
        yield listener


def test_base_url_outside_the_policy_is_refused_without_a_packet(
    client: TestClient, runtime: Runtime, forbidden: Listener
) -> None:
    app_id = create_app(runtime)
    body = {"baseUrl": f"{forbidden.origin}/v2", "profile": {"authScheme": "NONE"}}
    response = client.post(_url(app_id) + "?activate=true", json=body)
    error = assert_okta_error(response, 400, "E0000001")
    assert error["errorSummary"] == (
        f"Connection test failed: GET /ServiceProviderConfig: {DENIED}"
    )
    assert forbidden.accepted == 0
    assert client.get(_url(app_id)).status_code == 404


def test_token_url_outside_the_policy_is_refused_without_a_packet(
    client: TestClient, runtime: Runtime, forbidden: Listener
) -> None:
    """The token request (a POST carrying the client secret) is checked like any other."""
    with Listener("127.0.0.1") as scim:
        app_id = create_app(runtime)
        profile = {
            "authScheme": "OAUTH2",
            "clientId": "cid",
            "clientSecret": "oauth-secret-x",
            "tokenUrl": f"{forbidden.origin}/oauth2/token",
        }
        body = {"baseUrl": f"{scim.origin}/v2", "profile": profile}
        response = client.post(_url(app_id) + "?activate=true", json=body)
        error = assert_okta_error(response, 400, "E0000001")
        assert error["errorSummary"] == f"Connection test failed: POST token URL: {DENIED}"
        assert "oauth-secret-x" not in response.text
        assert (forbidden.accepted, scim.accepted) == (0, 0)


def test_the_resolved_address_decides(client: TestClient, runtime: Runtime) -> None:
    """A name is judged by every address it resolves to, at connect time."""
    runtime.connectors.resolver = StubResolver({"localhost": ["127.0.0.1", "169.254.169.254"]})
    with Listener("127.0.0.1") as target:
        app_id = create_app(runtime)
        body = {"baseUrl": f"http://localhost:{target.port}/v2", "profile": {"authScheme": "NONE"}}
        response = client.post(_url(app_id) + "?activate=true", json=body)
        assert DENIED in assert_okta_error(response, 400, "E0000001")["errorSummary"]
        assert target.accepted == 0


def test_metadata_stays_denied_when_the_allow_list_names_it(tmp_path: Path) -> None:
    runtime = make_runtime(
        f"sqlite:///{tmp_path / 'hw.db'}", tmp_path, outbound_allow="127.0.0.0/8, 169.254.0.0/16"
    )
    runtime.connectors.resolver = StubResolver({"localhost": ["169.254.169.254"]})
    try:
        app_id = create_app(runtime)
        with api_client(runtime) as client:
            body = {
                "baseUrl": "http://localhost/latest/meta-data",
                "profile": {"authScheme": "NONE"},
            }
            response = client.post(_url(app_id) + "?activate=true", json=body)
        assert DENIED in assert_okta_error(response, 400, "E0000001")["errorSummary"]
    finally:
        runtime.close()


def test_the_answer_of_a_downstream_is_not_shown_to_the_caller(
    client: TestClient, runtime: Runtime
) -> None:
    """Whatever the app says in an error stays out of the API's answer (and the console's)."""
    page = "root:x:0:0:root:/root:/bin/bash internal-only page"
    body_of_app = {"schemas": [ERROR_SCHEMA], "status": "400", "detail": page}
    with (
        ScimServerProcess() as server,
        FaultProxyThread(server.base_url, seed=5) as proxy,
    ):
        proxy.status(400, body_of_app, path=r"/ServiceProviderConfig$")
        app_id = create_app(runtime)
        body = {"baseUrl": proxy.base_url, "profile": {"authScheme": "NONE"}}
        response = client.post(_url(app_id) + "?activate=true", json=body)
    error = assert_okta_error(response, 400, "E0000001")
    assert error["errorSummary"] == "Connection test failed: GET /ServiceProviderConfig: HTTP 400"
    assert "root:x" not in response.text and "internal-only" not in response.text


def test_a_name_that_turns_internal_later_is_refused_by_the_engine(runtime: Runtime) -> None:
    """DNS rebinding: the connection was tested and saved while ``localhost`` pointed at an
    allowed address; when it points elsewhere, the worker's next connection is refused and the
    app is quarantined, with nothing sent."""
    resolver = StubResolver({"localhost": ["127.0.0.1"]})
    runtime.connectors.resolver = resolver
    with ScimServerProcess() as server, Listener("127.0.0.2", server.port) as forbidden:
        app_id = create_scim_app(runtime, f"http://localhost:{server.port}/v2")
        resolver.table["localhost"] = ["127.0.0.2"]
        assign_user(runtime, app_id, create_user(runtime, "casey.brown@example.com"))
        converge(runtime, settled=False)
        with runtime.database.read() as session:
            reason = session.execute(select(t.App.quarantine_reason)).scalar_one()
        assert reason is not None and DENIED in reason
        assert forbidden.accepted == 0
        assert ScimReader(server.base_url).users() == []
    assert "localhost" in resolver.calls
