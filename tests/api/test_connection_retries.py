"""Saving a connection with ``activate=true`` through a flaky network: the connection test tries
transient failures again within its budget instead of refusing a good connection.

A real scim2-server subprocess sits behind the fault proxy; faults are scripted (``times``) or
drawn from seeded generators, so every run sees the same faults in the same places.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.engine.connection_test import ATTEMPTS, BUDGET_SECONDS
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import assert_okta_error, create_app, ok

TOKEN = "retry-token-4f9c2a7e"


@pytest.fixture(scope="module")
def server() -> Iterator[ScimServerProcess]:
    with ScimServerProcess(bearer_token=TOKEN) as running:
        yield running


@pytest.fixture
def proxy(server: ScimServerProcess) -> Iterator[FaultProxyThread]:
    with FaultProxyThread(server.base_url, seed=11) as running:
        yield running


def _save(client: TestClient, app_id: str, proxy: FaultProxyThread) -> Any:
    body = {"baseUrl": proxy.base_url, "profile": {"authScheme": "TOKEN", "token": TOKEN}}
    return client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=body)


def test_a_5xx_a_429_and_a_reset_in_a_row_do_not_refuse_a_good_connection(
    client: TestClient, runtime: Runtime, proxy: FaultProxyThread
) -> None:
    proxy.status(502, path=r"/ServiceProviderConfig$", times=1)
    proxy.status(429, retry_after=1, path=r"/Users$", times=1)
    proxy.reset(path=r"/Users$", times=1)
    app_id = create_app(runtime)
    started = time.monotonic()
    saved = ok(_save(client, app_id, proxy))
    assert saved["status"] == "ENABLED"
    faults = [entry.fault for entry in proxy.requests() if entry.fault]
    assert faults == ["status:502", "status:429", "reset"]
    # Retry-After (1 s) was honoured; the whole test stayed within the budget.
    assert 1.0 <= time.monotonic() - started < BUDGET_SECONDS


def test_saves_through_a_flaky_network_all_succeed(
    client: TestClient, runtime: Runtime, proxy: FaultProxyThread
) -> None:
    """5 % 502s, 5 % 429s (Retry-After: 1) and 3 % resets, from seeded generators."""
    proxy.status(502, probability=0.05, seed=21)
    proxy.status(429, retry_after=1, probability=0.05, seed=22)
    proxy.reset(probability=0.03, seed=23)
    app_ids = [create_app(runtime, f"App {n}") for n in range(20)]
    for app_id in app_ids:
        assert ok(_save(client, app_id, proxy))["status"] == "ENABLED"
    faults = {entry.fault for entry in proxy.requests() if entry.fault}
    assert faults == {"status:502", "status:429", "reset"}  # each kind was met and overcome


def test_the_last_error_is_reported_when_the_attempts_are_spent(
    client: TestClient, runtime: Runtime, proxy: FaultProxyThread
) -> None:
    proxy.status(503, path=r"/ServiceProviderConfig$")
    app_id = create_app(runtime)
    response = _save(client, app_id, proxy)
    error = assert_okta_error(response, 400, "E0000001")
    assert error["errorSummary"] == ("Connection test failed: GET /ServiceProviderConfig: HTTP 503")
    assert proxy.count("GET", r"/ServiceProviderConfig$") == ATTEMPTS
    assert client.get(f"/api/v1/apps/{app_id}/connections/default").status_code == 404


def test_a_retry_after_beyond_the_budget_is_not_waited_for(
    client: TestClient, runtime: Runtime, proxy: FaultProxyThread
) -> None:
    proxy.status(429, retry_after=60, path=r"/Users$")
    app_id = create_app(runtime)
    started = time.monotonic()
    response = _save(client, app_id, proxy)
    assert "GET /Users: HTTP 429" in assert_okta_error(response, 400, "E0000001")["errorSummary"]
    assert proxy.count("GET", r"/Users$") == 1
    assert time.monotonic() - started < 5


def test_a_refusal_is_not_tried_again(
    client: TestClient, runtime: Runtime, proxy: FaultProxyThread
) -> None:
    """Wrong credentials are not a hiccup: one try, a clear answer."""
    app_id = create_app(runtime)
    body = {"baseUrl": proxy.base_url, "profile": {"authScheme": "TOKEN", "token": "wrong"}}
    response = client.post(f"/api/v1/apps/{app_id}/connections/default", json=body)
    assert "credentials rejected (HTTP 401)" in response.json()["errorSummary"]
    assert proxy.count("GET", r"/Users$") == 1
