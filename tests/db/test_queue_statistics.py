"""PostgreSQL plans a batch's statements from the queue's statistics: taken while the queue was
empty, they make every claim and finish read all of an app's queued keys (the key list becomes
a filter, not an index condition), so a large enqueue refreshes them after its commit; and a
drain's finished keys are vacuumed away as it goes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from headwater import clock
from headwater.db import engine, leases, outbox
from headwater.db import tables as t
from headwater.db.engine import ANALYZE_AFTER_ROWS
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    assign_group,
    create_app,
    create_group,
    import_users,
    make_runtime,
)

pytestmark = pytest.mark.postgres

KEYS = ANALYZE_AFTER_ROWS + 200


@pytest.fixture
def pg_runtime(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(pg_url, tmp_path)
    yield rt
    rt.close()


def _subjects() -> list[str]:
    return [f"usr{n:017d}" for n in range(KEYS)]


def _estimated_keys(runtime: Runtime, app_id: str) -> float:
    """How many of the app's user keys the planner expects (what decides whether a batch's
    key list is looked up in the index or tested on every one of them)."""
    with runtime.database.read() as session:
        plan = session.execute(
            text(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM reconcile_keys "
                "WHERE app_id = :app AND kind = 'user'"
            ),
            {"app": app_id},
        ).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


def test_a_queue_filled_without_fresh_statistics_is_read_whole(pg_runtime: Runtime) -> None:
    """The problem: keys written where nothing refreshes the statistics."""
    app_id = create_app(pg_runtime, "Stale")
    now = clock.utcnow() - timedelta(seconds=1)
    with pg_runtime.database.engine.begin() as connection:
        connection.execute(
            insert(t.ReconcileKey),
            [
                {
                    "app_id": app_id,
                    "kind": "user",
                    "subject_id": subject,
                    "generation": 1,
                    "enqueued_at": now,
                    "not_before": now,
                    "attempts": 0,
                    "observe": False,
                }
                for subject in _subjects()
            ],
        )
    assert _estimated_keys(pg_runtime, app_id) < KEYS / 10


def test_a_large_enqueue_refreshes_the_queues_statistics(pg_runtime: Runtime) -> None:
    app_id = create_app(pg_runtime, "Fresh")
    with pg_runtime.database.transaction() as session:
        outbox.enqueue_keys(session, [(app_id, "user", subject) for subject in _subjects()])
    assert _estimated_keys(pg_runtime, app_id) >= KEYS * 0.9


def test_a_group_assignment_refreshes_the_queues_statistics(pg_runtime: Runtime) -> None:
    """The set-based enqueue (INSERT ... SELECT) counts its rows too."""
    group_id = create_group(pg_runtime, "Everyone")
    import_users(pg_runtime, KEYS, group_ids=[group_id])
    app_id = create_app(pg_runtime, "Assigned")
    assign_group(pg_runtime, app_id, group_id)
    assert _estimated_keys(pg_runtime, app_id) >= KEYS * 0.9


def test_small_enqueues_add_up_to_a_refresh(pg_runtime: Runtime) -> None:
    """Many small enqueues grow the queue as much as one large one."""
    app_id = create_app(pg_runtime, "Trickle")
    subjects = _subjects()
    for start in range(0, KEYS, 100):
        with pg_runtime.database.transaction() as session:
            outbox.enqueue_keys(
                session, [(app_id, "user", subject) for subject in subjects[start : start + 100]]
            )
    assert _estimated_keys(pg_runtime, app_id) >= ANALYZE_AFTER_ROWS * 0.9


def _vacuums(runtime: Runtime) -> int:
    with runtime.database.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'reconcile_keys'"
                )
            ).scalar_one()
        )


def test_finished_keys_add_up_to_a_vacuum_of_the_queue(
    pg_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drain's deleted keys are vacuumed away once enough of them are finished, so later
    claims do not step over their dead index entries."""
    monkeypatch.setattr(engine, "VACUUM_AFTER_ROWS", 300)
    app_id = create_app(pg_runtime, "Drained")
    subjects = _subjects()[:500]
    with pg_runtime.database.transaction() as session:
        outbox.enqueue_keys(session, [(app_id, "user", subject) for subject in subjects])
    before = _vacuums(pg_runtime)
    keys = [leases.ClaimedKey(app_id, KeyKind.USER, s, 1, 0, False) for s in subjects]
    with pg_runtime.database.transaction() as session:
        leases.finish_many(session, keys[:200])
    assert _vacuums(pg_runtime) == before  # 200 finished: not yet
    with pg_runtime.database.transaction() as session:
        leases.finish_many(session, keys[200:])
    assert _vacuums(pg_runtime) == before + 1
    with pg_runtime.database.read() as session:
        assert outbox.pending_count(session) == 0
