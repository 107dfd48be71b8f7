"""`/metrics` speaks Prometheus: downstream requests, queue depth, tasks, quarantine; no
secrets."""

from __future__ import annotations

import asyncio
import re

import httpx
from fastapi.testclient import TestClient
from tests.engine.faultkit import assign_group, seed_app, seed_group, seed_users

from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_report_requests_queue_and_no_secrets(
    client: TestClient, runtime: Runtime, api_token: str
) -> None:
    runtime.connectors.transports["http://scim.test"] = httpx.ASGITransport(app=in_process_app())
    users = seed_users(runtime, 3)
    app_id = seed_app(runtime, "http://scim.test")
    assign_group(runtime, app_id, seed_group(runtime, "All", users))

    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert _value(before.text, "headwater_pending_keys", app=app_id, kind="user") == 3

    async def converge() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=60)
        finally:
            await worker.reconciler.aclose()

    asyncio.run(converge())
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
