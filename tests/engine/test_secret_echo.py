"""A downstream that echoes the bearer token in its errors: the token reaches no Task, app user,
push mapping, system log event, quarantine reason, API answer or operational log line.

The downstream is a real scim2-server behind the fault proxy; the proxy answers the writes with a
SCIM error whose ``detail`` repeats the request's ``Authorization`` header, as some servers do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    api_client,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    push_group,
)

TOKEN = "echoed-bearer-7Hq2vX9pLm4sTz"


def echo(status: int) -> dict[str, str | list[str]]:
    return {
        "schemas": [ERROR_SCHEMA],
        "status": str(status),
        "detail": f"refused; request headers were Authorization: Bearer {TOKEN}, "
        f"Accept: */*; token={TOKEN}",
    }


@pytest.fixture
def downstream() -> Iterator[FaultProxyThread]:
    with (
        ScimServerProcess(bearer_token=TOKEN) as server,
        FaultProxyThread(server.base_url, seed=3) as proxy,
    ):
        yield proxy


def _stored_texts(runtime: Runtime) -> list[str]:
    with runtime.database.read() as session:
        texts = [str(m) for m in session.execute(select(t.Task.message)).scalars()]
        texts += [str(e) for e in session.execute(select(t.AppUserLink.last_error)).scalars()]
        texts += [str(e) for e in session.execute(select(t.PushMapping.error_summary)).scalars()]
        texts += [str(r) for r in session.execute(select(t.App.quarantine_reason)).scalars()]
        for event in session.execute(select(t.Event)).scalars():
            texts += [event.display_message, str(event.outcome_reason), str(event.debug)]
    return texts


def test_echoed_token_is_stored_nowhere(
    runtime: Runtime, downstream: FaultProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app_id = create_scim_app(runtime, downstream.base_url, token=TOKEN)
    downstream.status(400, echo(400), method="POST", path=r"/Users$")
    downstream.status(400, echo(400), method="POST", path=r"/Groups$")
    user = create_user(runtime, "taylor.smith@example.com")
    group = create_group(runtime, "Accounting", [user])
    assign_group(runtime, app_id, group)
    push_group(runtime, app_id, group)
    converge(runtime)

    texts = _stored_texts(runtime)
    with api_client(runtime) as client:
        answers = [
            client.get(f"/api/v1/apps/{app_id}/tasks").text,
            client.get(f"/api/v1/apps/{app_id}/group-push/mappings").text,
            client.get("/api/v1/logs").text,
        ]
        tasks = ok(client.get(f"/api/v1/apps/{app_id}/tasks"))
    for text in [*texts, *answers, caplog.text]:
        assert TOKEN not in text
    # The downstream's explanation is kept for the admin, scrubbed.
    assert len(tasks) == 2
    for task in tasks:
        assert "HTTP 400: refused; request headers were Authorization: ***" in task["message"]
    with runtime.database.read() as session:
        last_error = session.execute(select(t.AppUserLink.last_error)).scalar_one()
        summary = session.execute(select(t.PushMapping.error_summary)).scalar_one()
    assert last_error is not None and "token=***" in last_error
    assert summary is not None and "Authorization: ***" in summary


def test_echoed_token_is_not_in_the_quarantine_reason(
    runtime: Runtime, downstream: FaultProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app_id = create_scim_app(runtime, downstream.base_url, token=TOKEN)
    downstream.status(401, echo(401), path=r"/Users")
    user = create_user(runtime, "alex.johnson@example.com")
    assign_group(runtime, app_id, create_group(runtime, "Engineering", [user]))
    converge(runtime, settled=False)

    with runtime.database.read() as session:
        reason = session.execute(select(t.App.quarantine_reason)).scalar_one()
    assert reason is not None and "credentials rejected (HTTP 401)" in reason
    for text in [*_stored_texts(runtime), caplog.text]:
        assert TOKEN not in text
