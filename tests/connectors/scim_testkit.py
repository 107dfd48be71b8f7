"""Test kit for the SCIM connector: the real scim2-server, in process, behind httpx.ASGITransport.

State-based behaviour (filters, PATCH semantics, paging, uniqueness) is always whatever the real
server does; ``RecordingTransport`` only watches the traffic so tests can count requests and read
the bodies the connector sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from scim2_models import Filter, ScimProvider, ServiceProviderConfig
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from headwater.connectors.scim import ScimConnector

BASE_URL = "http://scim.test/v2/"


class BearerASGIApplication(ASGIApplication):
    """scim2-server's ASGI app with the package's own bearer-token check.

    scim2-server ships that check only on its WSGI test application; ``check_auth`` reads nothing
    but ``self.bearer_tokens``, so the same function guards the async app.
    """

    check_auth = BearerTokenApplication.check_auth

    def __init__(self, provider: ScimProvider, bearer_tokens: Iterable[str] = ()) -> None:
        super().__init__(AsyncInMemoryStorage(), provider)
        self.bearer_tokens = set(bearer_tokens)


def asgi_transport(app: ASGIApplication) -> httpx.ASGITransport:
    """httpx's transport for the app (scim2-server types its ASGI callables a little narrower)."""
    return httpx.ASGITransport(app=app)  # type: ignore[arg-type]


def make_provider(*, max_results: int | None = None, bearer: bool = False) -> ScimProvider:
    """The default RFC 7643 provider, optionally with a lower ``filter.maxResults`` cap."""
    config: ServiceProviderConfig = load_default_service_provider_config()
    if max_results is not None:
        config.filter = Filter(supported=True, max_results=max_results)
    if bearer:
        config.authentication_schemes = [
            *(config.authentication_schemes or []),
            BEARER_TOKEN_SCHEME,
        ]
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )


@dataclass
class Sent:
    method: str
    path: str
    query: str
    headers: httpx.Headers
    body: Any


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request to ``inner`` and keeps what was sent."""

    inner: httpx.AsyncBaseTransport
    sent: list[Sent] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        self.sent.append(
            Sent(
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode(),
                headers=httpx.Headers(request.headers),  # auth flows reuse the request
                body=json.loads(raw) if raw else None,
            )
        )
        return await self.inner.handle_async_request(request)

    def count(self, method: str, path_prefix: str = "") -> int:
        return sum(1 for s in self.sent if s.method == method and s.path.startswith(path_prefix))

    def clear(self) -> None:
        self.sent.clear()


@dataclass
class ScimHarness:
    app: BearerASGIApplication
    transport: RecordingTransport
    raw: httpx.AsyncClient
    make: Callable[..., ScimConnector]

    async def user_json(self, user_id: str) -> dict[str, Any]:
        """The stored user as the server returns it (bypassing the connector under test)."""
        response = await self.raw.get(f"Users/{user_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
