"""Operational logs: one line per key outcome with the batch's reconcile id, the operations
sent, the fate and the attempt; JSON on request; never a credential."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater import logs
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app

BASE = "http://logs.test"
TOKEN = "s3cret-downstream-token-value"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_one_line_per_key_with_fate_and_no_secret(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.connectors.transports[BASE] = httpx.ASGITransport(app=in_process_app())
    users = []
    for name in ("ana", "bo"):
        login = f"{name}@example.com"
        body = {"profile": {"login": login, "email": login, "firstName": name, "lastName": "X"}}
        users.append(ok(client.post("/api/v1/users?activate=true", json=body))["id"])
    group = ok(client.post("/api/v1/groups", json={"profile": {"name": "Team"}}))["id"]
    for user_id in users:
        ok(client.put(f"/api/v1/groups/{group}/users/{user_id}"), 204)
    app_body = {"name": "scim", "label": "Logs", "signOnMode": "BOOKMARK"}
    app_body["settings"] = {"app": {"url": BASE}}
    app_id = ok(client.post("/api/v1/apps?activate=true", json=app_body))["id"]
    connection = {"baseUrl": BASE, "profile": {"authScheme": "TOKEN", "token": TOKEN}}
    ok(client.post(f"/api/v1/apps/{app_id}/connections/default?activate=true", json=connection))
    ok(client.put(f"/api/v1/apps/{app_id}/groups/{group}", json={"priority": 0}))

    async def drain() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=60)
        finally:
            await worker.reconciler.aclose()

    with caplog.at_level(logging.INFO, logger="headwater.engine.outcomes"):
        asyncio.run(drain())
    records = [r for r in caplog.records if r.name == "headwater.engine.outcomes"]
    by_subject = {r.subject_id: r for r in records if r.key_kind == "user"}  # type: ignore[attr-defined]
    assert set(by_subject) == set(users)
    for record in by_subject.values():
        fields = record.__dict__
        assert fields["reconcile_id"].startswith("rcn")
        assert fields["operations"] == ["CreateAccount"]
        assert fields["fate"] == "finish" and fields["attempt"] == 0
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in json.dumps(r.__dict__, default=str) for r in caplog.records)


def test_json_lines_carry_the_fields() -> None:
    stream = io.StringIO()
    logs.configure("json", "INFO")
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "headwater")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        logging.getLogger("headwater.engine.outcomes").info(
            "key done", extra={"reconcile_id": "rcn1", "fate": "finish", "attempt": 0}
        )
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["reconcile_id"] == "rcn1" and line["fate"] == "finish"
    assert line["level"] == "INFO" and line["logger"] == "headwater.engine.outcomes"
