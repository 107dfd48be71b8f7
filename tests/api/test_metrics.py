"""`/metrics` speaks Prometheus: downstream requests, queue depth, tasks, quarantine; no
secrets. It answers a scraper with ``HEADWATER_METRICS_TOKEN`` when one is set, else loopback
clients only."""

from __future__ import annotations

import hmac
import logging
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    LiveServer,
    ScimReader,
    api_client,
    assert_okta_error,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    events,
)

TOKEN = "metrics-token-4b1f9e"
ROTATED = "rotated-token-77c0d2"
SCRAPER = "scrape-9f2c61d0a4b7e385"
#: An address on another host (a documentation range; no packet is sent, it only labels the
#: in-process client).
REMOTE = "203.0.113.9"


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_report_requests_queue_quarantine_and_no_secrets(
    client: TestClient, runtime: Runtime, api_token: str
) -> None:
    # ``client`` calls from loopback, which is served when no metrics token is set.
    downstream = InProcessScim().serve(runtime)
    users = create_users(runtime, 3)
    group = create_group(runtime, "All", users)
    app_id = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app_id, group)

    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert _value(before.text, "headwater_pending_keys", app=app_id, kind="user") == 3

    converge(runtime)
    text = client.get("/metrics").text
    assert (
        _value(text, "headwater_downstream_requests_total", app=app_id, method="POST", status="201")
        == 3
    )
    assert _value(text, "headwater_keys_reconciled_total") >= 3
    assert _value(text, "headwater_quarantined_apps") == 0
    assert re.search(r"headwater_reconcile_batch_seconds_count \d", text)
    assert api_token not in text
    assert f'headwater_pending_keys{{app="{app_id}"' not in text  # the queue drained

    # A second app whose downstream rotates its token after the connection was tested: every
    # call is refused (401), so the engine quarantines the app and holds its keys.
    locked = InProcessScim("locked.test", bearer_token=TOKEN).serve(runtime)
    locked_app = create_scim_app(runtime, locked.base_url, "Locked", token=TOKEN)
    locked.app.bearer_tokens = frozenset({ROTATED})
    assign_group(runtime, locked_app, group)
    converge(runtime, settled=False)
    text = client.get("/metrics").text
    assert _value(text, "headwater_quarantined_apps") == 1
    assert _value(text, "headwater_pending_keys", app=locked_app, kind="user") == 3
    assert "app.headwater.quarantine.start" in [e.event_type for e in events(runtime)]
    assert ScimReader(locked.base_url, token=ROTATED, app=locked.app).users() == []
    for secret in (api_token, TOKEN, ROTATED):
        assert secret not in text


@pytest.mark.parametrize("address", [REMOTE, "10.0.0.7", "2001:db8::5", "testclient"])
def test_without_a_token_other_hosts_are_refused(runtime: Runtime, address: str) -> None:
    with api_client(runtime, address=address) as client:
        response = client.get("/metrics")
    assert_okta_error(response, 403, "E0000006")
    assert "headwater_" not in response.text


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_without_a_token_loopback_is_served(runtime: Runtime, address: str) -> None:
    with api_client(runtime, address=address) as client:
        response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert "headwater_quarantined_apps" in response.text


def test_with_a_token_only_its_bearer_is_served(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.settings.metrics_token = SCRAPER
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recorded(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recorded)
    caplog.set_level(logging.DEBUG)
    with api_client(runtime, address=REMOTE) as remote, api_client(runtime) as local:
        assert remote.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"}).is_success
        for client, header in [
            (local, None),  # loopback needs the token too once one is set
            (remote, None),
            (remote, f"Bearer {SCRAPER}x"),
            (remote, f"Bearer {SCRAPER[:-1]}"),
            (remote, f"SSWS {SCRAPER}"),
            (remote, SCRAPER),
        ]:
            # (an empty header replaces the client's own SSWS token)
            response = client.get("/metrics", headers={"Authorization": header or ""})
            assert_okta_error(response, 401, "E0000011")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "headwater_" not in response.text
        assert local.get("/metrics", headers={"Authorization": f"bearer {SCRAPER}"}).is_success
    assert len(compared) == 8  # every check went through the constant-time comparison
    assert SCRAPER not in caplog.text
    assert SCRAPER not in repr(runtime.settings)


def test_behind_a_proxy_on_loopback_the_forwarded_client_counts(sqlite_runtime: Runtime) -> None:
    """A reverse proxy on the same host connects from loopback and names the real client in
    ``X-Forwarded-For`` (uvicorn trusts it from 127.0.0.1): that client is judged, not the
    proxy."""
    with LiveServer(sqlite_runtime) as server:
        direct = httpx.get(server.url + "/metrics", timeout=5)
        proxied = httpx.get(server.url + "/metrics", headers={"X-Forwarded-For": REMOTE}, timeout=5)
    assert direct.status_code == 200
    assert_okta_error(proxied, 403, "E0000006")
