"""`/metrics` speaks Prometheus: downstream requests, queue depth, tasks, quarantine; no
secrets."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    ScimReader,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    events,
)

TOKEN = "metrics-token-4b1f9e"
ROTATED = "rotated-token-77c0d2"


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
