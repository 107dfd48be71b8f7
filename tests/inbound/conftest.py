"""Fixtures for inbound SCIM: a source with a bearer token, and HTTP and SCIM clients of
``/scim/v2`` (Headwater in-process, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from scim2_client import BaseSyncSCIMClient
from scim2_client.client import RawResponse
from scim2_models import EnterpriseUser, Group, ScimProvider, User

from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import sources

BASE = "http://testserver/scim/v2"


def issue_source(runtime: Runtime, name: str = "HR") -> tuple[str, str]:
    """A new source and a bearer token for it: (source id, token)."""
    with runtime.database.transaction() as session:
        source = sources.create_source(session, SYSTEM, name)
        _, token = sources.issue_token(session, SYSTEM, source.id)
        return source.id, token


class StarletteSCIMClient(BaseSyncSCIMClient):
    """scim2-client's synchronous client over Starlette's test client (an ``httpx.Client``):
    scim2-client ships a synchronous engine for httpx2 only, and the tester needs one."""

    def __init__(self, client: TestClient, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url: httpx.URL = self.client.build_request("GET", endpoint).url
        base: httpx.URL = self.client.base_url
        return url.host == base.host and url.path.startswith(base.path)

    def _parse_json(self, response: RawResponse) -> Any:
        return cast(httpx.Response, response).json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.request(method, url, **kwargs)
        return response


@pytest.fixture
def source(runtime: Runtime) -> tuple[str, str]:
    return issue_source(runtime)


@pytest.fixture
def http(runtime: Runtime, source: tuple[str, str]) -> Iterator[TestClient]:
    """An HTTP client of ``/scim/v2`` holding the source's token."""
    app = create_app(runtime, start_worker=False)
    with TestClient(app, base_url=BASE + "/", raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {source[1]}"
        yield client


@pytest.fixture
def scim_client(http: TestClient) -> StarletteSCIMClient:
    provider = ScimProvider(models=[User[EnterpriseUser], Group])
    client = StarletteSCIMClient(http, provider=provider)
    return client
