"""Fixtures for the SCIM connector tests (the servers themselves live in ``scim_testkit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from scim2_models import ScimProvider
from scim_testkit import (
    BASE_URL,
    BearerASGIApplication,
    RecordingTransport,
    ScimHarness,
    asgi_transport,
    make_provider,
)

from headwater.connectors.scim import ScimConnector
from headwater.domain.settings import ProvisioningSettings


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> ScimProvider:
    """The default provider; parametrize indirectly with make_provider kwargs to change it."""
    return make_provider(**getattr(request, "param", {}))


@pytest.fixture
async def harness(provider: ScimProvider) -> AsyncIterator[ScimHarness]:
    app = BearerASGIApplication(provider)
    transport = RecordingTransport(asgi_transport(app))
    connectors: list[ScimConnector] = []

    def make(
        settings: ProvisioningSettings | None = None,
        *,
        auth: httpx.Auth | None = None,
        base_url: str = BASE_URL,
        **kwargs: Any,
    ) -> ScimConnector:
        connector = ScimConnector(
            base_url,
            auth=auth,
            settings=settings or ProvisioningSettings(),
            transport=transport,
            **kwargs,
        )
        connectors.append(connector)
        return connector

    async with httpx.AsyncClient(transport=asgi_transport(app), base_url=BASE_URL) as raw:
        yield ScimHarness(app=app, transport=transport, raw=raw, make=make)
    for connector in connectors:
        await connector.aclose()


@pytest.fixture
def scim(harness: ScimHarness) -> ScimConnector:
    """A connector with default settings against a fresh, empty scim2-server."""
    return harness.make()
