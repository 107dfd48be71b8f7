"""Leases: a worker takes its share of what is due, so small bursts spread over workers."""

from __future__ import annotations

from headwater.db import leases
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    create_group,
    create_scim_app,
    create_users,
)


def test_each_worker_claims_its_share_of_a_burst(runtime: Runtime) -> None:
    downstream = InProcessScim("share.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 10, group_ids=[team])
    assign_group(runtime, create_scim_app(runtime, downstream.base_url), team)
    with runtime.database.transaction() as session:
        for worker in ("w1", "w2", "w3"):
            leases.beat(session, worker)  # live workers: their leases hold
    with runtime.database.transaction() as session:
        first = leases.claim(session, "w1", limit=200, lease_seconds=60, share=3)
    with runtime.database.transaction() as session:
        second = leases.claim(session, "w2", limit=200, lease_seconds=60, share=3)
    with runtime.database.transaction() as session:
        alone = leases.claim(session, "w3", limit=200, lease_seconds=60)
    assert (len(first), len(second), len(alone)) == (4, 2, 4)  # ceil(10/3), ceil(6/3), the rest
    assert {k.subject_id for k in first}.isdisjoint(k.subject_id for k in second)


def test_a_workers_own_batches_in_flight_are_not_due_for_it(runtime: Runtime) -> None:
    """A worker whose app may take another batch asks when the next key is due: the keys it
    holds itself must not answer "now", or it would go round without sleeping until they end."""
    downstream = InProcessScim("due.test").serve(runtime)
    team = create_group(runtime, "Team")
    create_users(runtime, 4, group_ids=[team])
    app_id = create_scim_app(runtime, downstream.base_url)
    assign_group(runtime, app_id, team)
    with runtime.database.transaction() as session:
        leases.beat(session, "w1")
        leases.beat(session, "w2")
        claimed = leases.claim(session, "w1", limit=200, lease_seconds=60)
    assert len(claimed) == 4
    with runtime.database.read() as session:
        assert leases.next_due(session, (), "w1") is None
        assert leases.next_due(session, (), "w2") is not None, "another's lease may end"
        assert leases.next_due(session, [app_id]) is None
