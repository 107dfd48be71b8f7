"""The server's doors besides the API: ``GET /`` leads to the console, and the API reference
(``/docs``, ``/openapi.json``) is served unless ``HEADWATER_API_DOCS`` turns it off."""

from __future__ import annotations

import pytest

from headwater.runtime import Runtime
from headwater.testing.toolkit import api_client, assert_okta_error, console_client


def test_the_root_redirects_to_the_console(runtime: Runtime) -> None:
    with api_client(runtime) as client:
        response = client.get("/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/"
        landed = client.get("/", headers={"Authorization": ""})
    assert landed.url.path == "/console/login"  # signed out: the sign-in page
    assert landed.status_code == 200 and "Sign in" in landed.text


def test_the_api_reference_is_served_by_default(runtime: Runtime) -> None:
    with api_client(runtime) as client:
        schema = client.get("/openapi.json", headers={"Authorization": ""})
        assert schema.status_code == 200
        assert "/api/v1/users" in schema.json()["paths"]
        assert "/" not in schema.json()["paths"]
        assert "swagger" in client.get("/docs").text.lower()
        assert_okta_error(client.get("/redoc"), 404, "E0000007")


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"])
def test_the_api_reference_can_be_turned_off(runtime: Runtime, path: str) -> None:
    runtime.settings.api_docs = False
    with api_client(runtime) as client:
        assert_okta_error(client.get(path), 404, "E0000007")
        assert client.get("/api/v1/users").status_code == 200  # the API itself is unchanged
    with console_client(client.app) as browser:  # type: ignore[arg-type]
        assert browser.get("/console/login").status_code == 200
