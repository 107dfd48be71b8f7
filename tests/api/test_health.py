"""``/health`` tells a load balancer the truth: the database answers, and the embedded worker,
when this process runs one, is alive and going round."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.engine import schedule
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import wait_for


def test_health_without_a_worker(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert "worker" not in body  # this process runs none
    assert body["workers"] == {"live": 0}


def test_health_reports_the_embedded_worker(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, start_worker=True)) as client:
        body = wait_for(
            lambda: (
                (b := client.get("/health").json())["worker"]["heartbeatAgeSeconds"] is not None
                and b
            ),
            "the worker's first heartbeat",
        )
        assert body["status"] == "ok"
        assert body["worker"]["alive"] and not body["worker"]["stuck"]
        assert body["worker"]["lastError"] is None
        assert body["workers"]["live"] == 1
        client.app.state.worker.stop()  # type: ignore[attr-defined]
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["worker"]["alive"] is False


def test_a_stuck_worker_makes_health_fail(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.settings.worker_stuck_seconds = 1.0
    real = schedule.start_full_reconciles

    def slow(database: Any) -> int:
        time.sleep(4)  # the loop cannot go round meanwhile
        return real(database)

    monkeypatch.setattr(schedule, "start_full_reconciles", slow)
    with TestClient(create_app(runtime, start_worker=True)) as client:
        response = wait_for(
            lambda: (r := client.get("/health")).status_code == 503 and r,
            "health to report the stuck loop",
            timeout=10,
        )
        assert response.json()["worker"]["stuck"] is True
        assert response.json()["status"] == "unavailable"
