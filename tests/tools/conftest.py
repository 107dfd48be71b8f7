"""Fixtures for the test tools: one subprocess per real SCIM server, and proxies in front of
scim2-server's."""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from headwater.testing.faultproxy import FaultProxy, FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.servers import DjangoScimProcess, ScimmyProcess, ServerProcess
from headwater.testing.toolkit import SCIM_HEADERS, ScimReader, require_scim_server


@pytest.fixture(scope="session")
def scim_server() -> Iterator[ScimServerProcess]:
    """One server for the directory: starting one costs about half a second."""
    with ScimServerProcess() as server:
        yield server
    assert not server.running


@pytest.fixture
def server_client(scim_server: ScimServerProcess) -> Iterator[httpx.Client]:
    """A client talking to the server directly, to check what really reached it."""
    with httpx.Client(base_url=scim_server.base_url, headers=SCIM_HEADERS, timeout=5) as client:
        yield client


@pytest.fixture
def scim(scim_server: ScimServerProcess) -> ScimReader:
    """Reads the server directly (what really reached it), as the toolkit reads downstreams."""
    return ScimReader(scim_server.base_url)


@pytest.fixture
def proxy(scim_server: ScimServerProcess) -> Iterator[FaultProxyThread]:
    with FaultProxyThread(scim_server.base_url, seed=1234) as running:
        yield running
    assert not [t for t in threading.enumerate() if t.name == "faultproxy"]


@pytest.fixture
def client(proxy: FaultProxyThread) -> Iterator[httpx.Client]:
    """A client through the proxy; short timeout so a missed fault fails fast."""
    with httpx.Client(base_url=proxy.base_url, headers=SCIM_HEADERS, timeout=5) as http:
        yield http


@pytest.fixture
async def aproxy(scim_server: ScimServerProcess) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(scim_server.base_url, seed=99) as running:
        yield running


# django-scim2 and scimmy: one server each per session, behind a bearer token; tests share them
# and use unique names. Starting one costs about two seconds (django-scim2) or half a second.


@pytest.fixture(scope="session")
def django_scim() -> Iterator[DjangoScimProcess]:
    with DjangoScimProcess(bearer_token=secrets.token_urlsafe(16)) as server:
        yield server
    assert not server.running


@pytest.fixture(scope="session")
def scimmy() -> Iterator[ScimmyProcess]:
    require_scim_server("scimmy")
    with ScimmyProcess(bearer_token=secrets.token_urlsafe(16)) as server:
        yield server
    assert not server.running


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={**SCIM_HEADERS, **server.headers},
        timeout=5,
        trust_env=False,
    )


@pytest.fixture
def django_client(django_scim: DjangoScimProcess) -> Iterator[httpx.Client]:
    """A client of the django-scim2 server, with its token."""
    with _client(django_scim) as client:
        yield client


@pytest.fixture
def scimmy_client(scimmy: ScimmyProcess) -> Iterator[httpx.Client]:
    """A client of the scimmy server, with its token."""
    with _client(scimmy) as client:
        yield client
