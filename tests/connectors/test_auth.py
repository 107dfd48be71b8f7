"""Auth flows: static bearer, basic, OAuth client credentials (cache, expiry, 401 refresh).

SCIM calls go to the real scim2-server guarding itself with bearer tokens; only the OAuth token
endpoint is a small handler, since scim2-server has none.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from headwater.connectors.auth import (
    BasicAuth,
    BearerTokenAuth,
    OAuthClientCredentialsAuth,
    build_auth,
)
from headwater.connectors.errors import AppUnavailableError, TransientError
from headwater.connectors.scim import ScimConnector
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.toolkit import InProcessScim

TOKEN_URL = "https://idp.test/oauth2/token"
SECRET = "client-secret-value"


@dataclass
class TokenEndpoint:
    """Issues numbered tokens and tells the SCIM app to accept only the latest."""

    harness: InProcessScim
    expires_in: Any = 3600
    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    def issue(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        token = f"token-{len(self.requests)}"
        self.harness.app.bearer_tokens = frozenset({token})
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


class Router(httpx.AsyncBaseTransport):
    def __init__(self, endpoint: TokenEndpoint, scim: httpx.AsyncBaseTransport) -> None:
        self.endpoint = endpoint
        self.scim = scim

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            await request.aread()
            return self.endpoint.issue(request)
        return await self.scim.handle_async_request(request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def oauth_connector(
    harness: InProcessScim, endpoint: TokenEndpoint, auth: OAuthClientCredentialsAuth
) -> ScimConnector:
    return ScimConnector(
        "http://scim.test/v2",
        auth=auth,
        settings=ProvisioningSettings(),
        transport=Router(endpoint, harness.transport),
    )


@pytest.fixture
def endpoint(harness: InProcessScim) -> TokenEndpoint:
    harness.app.bearer_tokens = frozenset({"nothing-valid-yet"})
    return TokenEndpoint(harness)


async def test_oauth_fetches_once_and_caches(
    harness: InProcessScim, endpoint: TokenEndpoint
) -> None:
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "client-1", SECRET, "scim.write")
    async with oauth_connector(harness, endpoint, auth) as scim:
        await scim.test_connection()
        assert await scim.get_user("missing") is None
        await asyncio.gather(*(scim.get_user(f"u{n}") for n in range(5)))
    assert len(endpoint.requests) == 1

    token_request = endpoint.requests[0]
    form = parse_qs(token_request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["scim.write"]}
    expected = base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert harness.transport.sent[-1].headers["Authorization"] == "Bearer token-1"


async def test_oauth_client_secret_post(harness: InProcessScim, endpoint: TokenEndpoint) -> None:
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "client-1", SECRET, client_auth="post")
    async with oauth_connector(harness, endpoint, auth) as scim:
        await scim.test_connection()
    form = parse_qs(endpoint.requests[0].content.decode())
    assert form["client_id"] == ["client-1"] and form["client_secret"] == [SECRET]
    assert "scope" not in form
    assert "Authorization" not in endpoint.requests[0].headers


async def test_oauth_refreshes_30_seconds_before_expiry(
    harness: InProcessScim, endpoint: TokenEndpoint
) -> None:
    clock = Clock()
    endpoint.expires_in = "300"  # some servers send a string
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET, clock=clock)
    async with oauth_connector(harness, endpoint, auth) as scim:
        await scim.get_user("x")
        clock.now += 269
        await scim.get_user("x")
        assert len(endpoint.requests) == 1
        clock.now += 2  # 271 s: inside the 30 s margin
        await scim.get_user("x")
        assert len(endpoint.requests) == 2


async def test_oauth_retries_once_on_401(harness: InProcessScim, endpoint: TokenEndpoint) -> None:
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET)
    async with oauth_connector(harness, endpoint, auth) as scim:
        await scim.get_user("x")
        harness.app.bearer_tokens = frozenset({"revoked-early"})
        harness.transport.clear()
        assert await scim.get_user("x") is None  # 401, new token, retried
        assert [s.headers["Authorization"] for s in harness.transport.sent] == [
            "Bearer token-1",
            "Bearer token-2",
        ]
    assert len(endpoint.requests) == 2


async def test_oauth_gives_up_after_one_refresh(harness: InProcessScim) -> None:
    harness.app.bearer_tokens = frozenset({"never-issued"})

    class Stubborn(TokenEndpoint):
        def issue(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(200, json={"access_token": "useless", "expires_in": 3600})

    endpoint = Stubborn(harness)
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET)
    async with oauth_connector(harness, endpoint, auth) as scim:
        with pytest.raises(AppUnavailableError, match="credentials rejected"):
            await scim.get_user("x")
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(("status", "kind"), [(401, AppUnavailableError), (503, TransientError)])
async def test_oauth_token_endpoint_failures(
    harness: InProcessScim, endpoint: TokenEndpoint, status: int, kind: type[Exception]
) -> None:
    endpoint.status = status
    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET)
    async with oauth_connector(harness, endpoint, auth) as scim:
        with pytest.raises(kind, match="OAuth token request failed") as caught:
            await scim.get_user("x")
    assert SECRET not in str(caught.value)
    assert "invalid_client" in str(caught.value)


async def test_oauth_token_response_without_token(harness: InProcessScim) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token_type": "Bearer"})

    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET)
    async with ScimConnector(
        "http://scim.test/v2",
        auth=auth,
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(handler),
    ) as scim:
        with pytest.raises(AppUnavailableError, match="without an access_token"):
            await scim.get_user("x")


def test_oauth_sync_flow() -> None:
    """The same auth object works with a sync client (CLI tools, scripts)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": 60})
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json={})

    auth = OAuthClientCredentialsAuth(TOKEN_URL, "c", SECRET)
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        assert client.get("https://scim.test/Users").status_code == 200
    assert seen == ["Bearer t0", "Bearer t1"]


def test_bearer_and_basic_headers() -> None:
    request = httpx.Request("GET", "https://scim.test/Users")
    next(BearerTokenAuth("abc").auth_flow(request))
    assert request.headers["Authorization"] == "Bearer abc"
    request = httpx.Request("GET", "https://scim.test/Users")
    next(BasicAuth("user", "pw").auth_flow(request))
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()


def test_reprs_hide_secrets() -> None:
    reprs = [
        repr(BearerTokenAuth("tok-secret")),
        repr(BasicAuth("svc-user", "pw-secret")),
        repr(OAuthClientCredentialsAuth(TOKEN_URL, "client-1", "cs-secret", "scope")),
    ]
    assert "svc-user" in reprs[1] and "client-1" in reprs[2]
    for text in reprs:
        assert "secret'" not in text.replace("client_secret='***'", "")
        assert not any(s in text for s in ("tok-secret", "pw-secret", "cs-secret"))


def test_build_auth() -> None:
    assert build_auth("NONE", {}) is None
    assert isinstance(build_auth("TOKEN", {"token": "t"}), BearerTokenAuth)
    assert isinstance(build_auth("basic", {"username": "u", "password": "p"}), BasicAuth)
    oauth = build_auth(
        "OAUTH2",
        {"token_url": TOKEN_URL, "client_id": "c", "client_secret": "s", "scope": "x"},
    )
    assert isinstance(oauth, OAuthClientCredentialsAuth)


@pytest.mark.parametrize(
    ("scheme", "secret", "message"),
    [
        ("TOKEN", {}, "TOKEN credentials need token"),
        ("BASIC", {"username": "u", "password": ""}, "BASIC credentials need password"),
        ("OAUTH2", {"token_url": TOKEN_URL}, "need client_id, client_secret"),
        (
            "OAUTH2",
            {"token_url": "u", "client_id": "c", "client_secret": "s", "client_auth": "x"},
            "client_auth",
        ),
        ("SAML", {"token": "hunter2"}, "unknown auth scheme"),
    ],
)
def test_build_auth_rejects_bad_input(scheme: str, secret: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        build_auth(scheme, secret)
    assert "hunter2" not in str(caught.value)


async def test_basic_auth_reaches_the_server(harness: InProcessScim) -> None:
    scim = harness.connector(auth=build_auth("BASIC", {"username": "u", "password": "p"}))
    await scim.test_connection()
    sent = harness.transport.sent[-1].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"u:p").decode()
