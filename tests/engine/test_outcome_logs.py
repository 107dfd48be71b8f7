"""Operational logs: one line per key outcome with the batch's reconcile id, the operations
sent, the fate and the attempt; JSON on request; never a credential."""

from __future__ import annotations

import io
import json
import logging

import pytest

from headwater import logs
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
)

TOKEN = "s3cret-downstream-token-value"


def test_one_line_per_key_with_fate_and_no_secret(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    downstream = InProcessScim("logs.test", bearer_token=TOKEN).serve(runtime)
    team = create_group(runtime, "Team")
    users = create_users(runtime, 2, group_ids=[team])
    app_id = create_scim_app(runtime, downstream.base_url, token=TOKEN)
    assign_group(runtime, app_id, team)
    with caplog.at_level(logging.INFO, logger="headwater.engine.outcomes"):
        converge(runtime)
    records = [r for r in caplog.records if r.name == "headwater.engine.outcomes"]
    by_subject = {r.__dict__["subject_id"]: r.__dict__ for r in records}
    assert set(by_subject) == set(users)
    for fields in by_subject.values():
        assert fields["reconcile_id"].startswith("rcn")
        assert fields["key_kind"] == "user"
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
