"""Events held in a ``Buffer`` are written as the same rows ``record`` writes, in the order
they were added, with one target row per target."""

from __future__ import annotations

from sqlalchemy import select

from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Target
from headwater.runtime import Runtime


def test_buffered_events_are_the_rows_record_writes(runtime: Runtime) -> None:
    user, app = Target("00u1", "User", "ann@example.com", "Ann"), Target("0oa1", "AppInstance")
    buffer = events.Buffer()
    with runtime.database.transaction() as session:
        events.record(session, "t.direct", "direct", actor=SYSTEM, targets=[user, app])
        buffer.add("t.buffered", "buffered", actor=SYSTEM, targets=[user, app])
        buffer.add("t.failed", "failed", actor=SYSTEM, outcome="FAILURE", reason="no")
        buffer.write(session)
        buffer.write(session)  # written once: the buffer is empty after a write
    with runtime.database.read() as session:
        rows = session.execute(select(t.Event).order_by(t.Event.id)).scalars().all()
        targets = session.execute(select(t.EventTarget.event_id, t.EventTarget.target_id)).all()
        assert [r.event_type for r in rows] == ["t.direct", "t.buffered", "t.failed"]
        direct, buffered, failed = rows
        assert buffered.actor == direct.actor
        assert buffered.targets == direct.targets
        assert (buffered.severity, buffered.outcome_result, buffered.debug) == (
            "INFO",
            "SUCCESS",
            {},
        )
        assert (failed.severity, failed.outcome_result, failed.outcome_reason) == (
            "WARN",
            "FAILURE",
            "no",
        )
        assert sorted(target for event, target in targets if event == buffered.id) == [
            "00u1",
            "0oa1",
        ]
        assert [target for event, target in targets if event == failed.id] == []
