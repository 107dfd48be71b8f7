"""How Headwater proves itself to a downstream app: ``httpx.Auth`` implementations.

Each one keeps its secret out of ``repr`` and out of every error message, so that a log line or a
traceback never leaks a credential.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, Literal

import httpx

from headwater.connectors.errors import AppUnavailableError, TransientError
from headwater.connectors.scrub import Scrubber

__all__ = [
    "TOKEN_REQUEST",
    "BasicAuth",
    "BearerTokenAuth",
    "OAuthClientCredentialsAuth",
    "build_auth",
]

#: Request extension that marks an OAuth token request (errors then name it, not the SCIM call).
TOKEN_REQUEST = "headwater.oauth_token_request"

#: Refresh a cached OAuth token this many seconds before the server says it expires, so a
#: request never arrives with a token that lapsed in flight.
EXPIRY_MARGIN = 30.0
#: Lifetime assumed when the token endpoint omits ``expires_in`` (RFC 6749 makes it optional).
DEFAULT_TOKEN_LIFETIME = 300.0


class BearerTokenAuth(httpx.Auth):
    """A static bearer token (``Authorization: Bearer <token>``), the usual SCIM credential."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("bearer token is empty")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerTokenAuth(token='***')"


class BasicAuth(httpx.BasicAuth):
    """HTTP Basic credentials; only the repr differs from httpx's, to name the user safely."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._username = username

    def __repr__(self) -> str:
        return f"BasicAuth(username={self._username!r}, password='***')"


class OAuthClientCredentialsAuth(httpx.Auth):
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4) with a cached access token.

    The token request is yielded from the auth flow, so it travels through the same client and
    transport as the SCIM calls (and the same timeouts and outbound policy). The token is reused
    until ``EXPIRY_MARGIN`` seconds before it expires; a 401 drops it and retries once with a
    fresh one, which covers tokens the server revoked early. Each access token obtained is given
    to ``scrubber``, so that a downstream echoing it back cannot get it stored or shown.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        client_auth: Literal["basic", "post"] = "basic",
        clock: Callable[[], float] = time.monotonic,
        scrubber: Scrubber | None = None,
    ) -> None:
        if not token_url or not client_id or not client_secret:
            raise ValueError("token_url, client_id and client_secret are required")
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._client_auth = client_auth
        self._clock = clock
        self._scrubber = scrubber
        self._token: str | None = None
        self._expires_at = 0.0
        self._thread_lock = threading.Lock()
        # Created on first async use: an asyncio.Lock binds to the loop that first waits on it.
        self._async_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return (
            f"OAuthClientCredentialsAuth(token_url={self._token_url!r}, "
            f"client_id={self._client_id!r}, client_secret='***', scope={self._scope!r})"
        )

    # -- token cache ------------------------------------------------------------------------

    def _cached_token(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return None

    def _drop_token(self, used: str) -> None:
        """Forget ``used`` unless another request already replaced it."""
        if self._token == used:
            self._token = None
            self._expires_at = 0.0

    def _token_request(self, original: httpx.Request) -> httpx.Request:
        data = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        headers = {"Accept": "application/json"}
        if self._client_auth == "post":
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        else:
            pair = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        extensions: dict[str, Any] = {TOKEN_REQUEST: True}
        if "timeout" in original.extensions:
            extensions["timeout"] = original.extensions["timeout"]
        return httpx.Request(
            "POST", self._token_url, data=data, headers=headers, extensions=extensions
        )

    def _store_token(self, response: httpx.Response) -> str:
        """Read the token endpoint's answer; raise a connector error when it refused.

        The endpoint's ``error`` and ``error_description`` become the error's ``detail``
        (the connector scrubs it): an endpoint may echo the client secret in them.
        """
        status = response.status_code
        payload: Any
        try:
            payload = response.json()
        except (ValueError, UnicodeDecodeError):
            payload = None
        if status != 200:
            said = []
            if isinstance(payload, Mapping):
                said = [
                    payload[key]
                    for key in ("error", "error_description")
                    if isinstance(payload.get(key), str)
                ]
            detail = ": ".join(said)[:2000]
            message = f"POST token URL: OAuth token request failed (HTTP {status})"
            if status == 429 or status >= 500:
                raise TransientError(message, status=status, detail=detail)
            raise AppUnavailableError(
                f"{message}; credentials rejected?", status=status, detail=detail
            )
        token = payload.get("access_token") if isinstance(payload, Mapping) else None
        if not isinstance(token, str) or not token:
            raise AppUnavailableError(
                "POST token URL: OAuth token endpoint answered without an access_token",
                status=status,
            )
        if self._scrubber is not None:
            self._scrubber.add(token)
        lifetime = _lifetime(payload.get("expires_in"))
        # Short-lived tokens keep half their life rather than none, so they are still reused.
        self._token = token
        self._expires_at = self._clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2)
        return token

    @staticmethod
    def _authorized(request: httpx.Request, token: str) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    # -- flows ------------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        with self._thread_lock:
            token = self._cached_token()
            if token is None:
                token_response = yield self._token_request(request)
                token_response.read()
                token = self._store_token(token_response)
        response = yield self._authorized(request, token)
        if response.status_code != 401:
            return
        response.read()
        with self._thread_lock:
            self._drop_token(token)
            fresh = self._cached_token()
            if fresh is None:
                token_response = yield self._token_request(request)
                token_response.read()
                fresh = self._store_token(token_response)
        yield self._authorized(request, fresh)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        lock = self._async_lock
        async with lock:
            token = self._cached_token()
            if token is None:
                token_response = yield self._token_request(request)
                await token_response.aread()
                token = self._store_token(token_response)
        response = yield self._authorized(request, token)
        if response.status_code != 401:
            return
        await response.aread()
        async with lock:
            self._drop_token(token)
            fresh = self._cached_token()
            if fresh is None:
                token_response = yield self._token_request(request)
                await token_response.aread()
                fresh = self._store_token(token_response)
        yield self._authorized(request, fresh)


def _lifetime(raw: Any) -> float:
    """Seconds a token lives, from ``expires_in`` (number or numeric string; RFC 6749 §5.1)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return DEFAULT_TOKEN_LIFETIME
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TOKEN_LIFETIME
    if not value > 0 or value == float("inf"):
        return DEFAULT_TOKEN_LIFETIME
    return value


def _require(secret: Mapping[str, str], scheme: str, *keys: str) -> list[str]:
    missing = [key for key in keys if not secret.get(key)]
    if missing:
        # Names only: the values are secrets.
        raise ValueError(f"{scheme} credentials need {', '.join(missing)}")
    return [secret[key] for key in keys]


def build_auth(
    scheme: str, secret: Mapping[str, str], *, scrubber: Scrubber | None = None
) -> httpx.Auth | None:
    """Turn an app's stored auth scheme and secret into an ``httpx.Auth`` (None for "NONE").

    Schemes: ``TOKEN`` (token), ``BASIC`` (username, password), ``OAUTH2`` (token_url,
    client_id, client_secret, optional scope and client_auth "basic"/"post"), ``NONE``.
    ``scrubber`` learns the OAuth access tokens as they are issued.
    """
    kind = scheme.strip().upper()
    if kind == "NONE":
        return None
    if kind == "TOKEN":
        (token,) = _require(secret, kind, "token")
        return BearerTokenAuth(token)
    if kind == "BASIC":
        username, password = _require(secret, kind, "username", "password")
        return BasicAuth(username, password)
    if kind == "OAUTH2":
        token_url, client_id, client_secret = _require(
            secret, kind, "token_url", "client_id", "client_secret"
        )
        client_auth = secret.get("client_auth") or "basic"
        if client_auth not in ("basic", "post"):
            raise ValueError("OAUTH2 client_auth must be 'basic' or 'post'")
        return OAuthClientCredentialsAuth(
            token_url,
            client_id,
            client_secret,
            secret.get("scope") or None,
            client_auth="post" if client_auth == "post" else "basic",
            scrubber=scrubber,
        )
    raise ValueError(f"unknown auth scheme {scheme!r}")
