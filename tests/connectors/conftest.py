"""Fixtures for the SCIM connector tests: a fresh in-process scim2-server per test (from the
toolkit), connectors to it, and what they sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from headwater.connectors.scim import ScimConnector
from headwater.testing.toolkit import InProcessScim


@pytest.fixture
def scim_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Options of the server (``InProcessScim`` keywords); parametrize indirectly to change."""
    options: dict[str, Any] = getattr(request, "param", {})
    return options


@pytest.fixture
async def harness(scim_options: dict[str, Any]) -> AsyncIterator[InProcessScim]:
    server = InProcessScim(**scim_options)
    yield server
    await server.aclose()


@pytest.fixture
def scim(harness: InProcessScim) -> ScimConnector:
    """A connector with default settings against a fresh, empty scim2-server."""
    return harness.connector()
