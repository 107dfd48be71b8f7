"""Faults between Headwater and a real scim2-server: everything converges, nothing duplicates,
nothing is orphaned, and every failure is in the system log."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import held_operations
from headwater.testing.toolkit import (
    LOOPBACK_ALLOW,
    ScimReader,
    assign_group,
    change_status,
    converge,
    create_group,
    create_scim_app,
    create_users,
    creates_per_user_name,
    due_now,
    make_runtime,
    proxied_scim_server,
    push_group,
    unassign_group,
    wait_for,
)

#: Long enough for the backoffs of these tests (their retries start at 20 ms).
HORIZON = 30.0


def _failure_events(runtime: Runtime) -> int:
    with runtime.database.read() as session:
        return int(
            session.execute(
                select(func.count()).where(
                    t.Event.outcome_result == "FAILURE", t.Event.event_type.like("application.%")
                )
            ).scalar_one()
        )


@pytest.mark.slow
def test_mixed_faults_converge_exactly(fast_runtime: Runtime) -> None:
    """2,000 users, 20 pushed groups, 20% of requests failing in assorted ways."""
    runtime = fast_runtime
    with proxied_scim_server(seed=11) as (server, proxy):
        everyone = create_group(runtime, "Everyone here")
        teams = [create_group(runtime, f"Team {n:02d}") for n in range(20)]
        for n, team in enumerate(teams):
            create_users(runtime, 100, start=n * 100, group_ids=[everyone, team])
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty", max_concurrency=16)
        assign_group(runtime, app_id, everyone)
        pushed = {}
        for n, team in enumerate(teams):
            pushed[f"Team {n:02d}"] = {
                f"user{i:05d}@example.com" for i in range(n * 100, n * 100 + 100)
            }
            push_group(runtime, app_id, team)
        rule = proxy.mixed(0.2, seed=3, max_delay=0.05)
        converge(runtime, timeout=300, horizon=HORIZON, settled=False)
        proxy.remove(rule)
        due_now(runtime)
        converge(runtime, timeout=60, horizon=HORIZON)

        scim = ScimReader(server.base_url)
        accounts, groups = scim.users(), scim.groups()
        names = [a["userName"] for a in accounts]
        assert len(names) == len(set(names)) == 2000
        assert all(a["active"] for a in accounts)
        by_id = {a["id"]: a["userName"] for a in accounts}
        assert {g["displayName"] for g in groups} == set(pushed)
        for group in groups:
            members = {by_id[m["value"]] for m in group.get("members", [])}
            assert members == pushed[group["displayName"]], group["displayName"]
        assert max(creates_per_user_name(proxy).values()) == 1
        faults = [e for e in proxy.requests() if e.fault and not e.fault.startswith("delay")]
        assert faults, "the proxy injected no fault"
        assert _failure_events(runtime) >= len(faults) * 0.9
        with runtime.database.read() as session:
            assert outbox.pending_count(session) == 0


@pytest.mark.slow
def test_mixed_faults_converge_exactly_with_bulk_and_batched_lookups(
    fast_runtime: Runtime,
) -> None:
    """600 users and 6 pushed groups through Bulk requests and batched look-ups, 20% of
    requests failing in assorted ways (a failed Bulk request fails each of its operations; an
    answer lost after the app applied it is found by the next look-up)."""
    runtime = fast_runtime
    with proxied_scim_server(seed=13, bulk=True) as (server, proxy):
        everyone = create_group(runtime, "Everyone here")
        teams = [create_group(runtime, f"Team {n:02d}") for n in range(6)]
        for n, team in enumerate(teams):
            create_users(runtime, 100, start=n * 100, group_ids=[everyone, team])
        app_id = create_scim_app(
            runtime, proxy.base_url, "Faulty", max_concurrency=4, lookup_batch_size=100
        )
        assign_group(runtime, app_id, everyone)
        pushed = {}
        for n, team in enumerate(teams):
            pushed[f"Team {n:02d}"] = {
                f"user{i:05d}@example.com" for i in range(n * 100, n * 100 + 100)
            }
            push_group(runtime, app_id, team)
        rule = proxy.mixed(0.2, seed=5, max_delay=0.05)
        converge(runtime, timeout=300, horizon=HORIZON, settled=False)
        proxy.remove(rule)
        due_now(runtime)
        converge(runtime, timeout=60, horizon=HORIZON)

        scim = ScimReader(server.base_url)
        accounts, groups = scim.users(), scim.groups()
        names = [a["userName"] for a in accounts]
        assert len(names) == len(set(names)) == 600
        assert all(a["active"] for a in accounts)
        by_id = {a["id"]: a["userName"] for a in accounts}
        assert {g["displayName"] for g in groups} == set(pushed)
        for group in groups:
            members = {by_id[m["value"]] for m in group.get("members", [])}
            assert members == pushed[group["displayName"]], group["displayName"]
        assert max(creates_per_user_name(proxy).values()) == 1
        assert proxy.requests("POST", r"/Bulk$"), "no Bulk request was sent"
        faults = [e for e in proxy.requests() if e.fault and not e.fault.startswith("delay")]
        assert faults, "the proxy injected no fault"
        with runtime.database.read() as session:
            assert outbox.pending_count(session) == 0


@pytest.mark.slow
def test_sigkill_of_the_worker_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """A `headwater worker` process is killed at 10 random moments of a 2,500-user run."""
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'hw.db'}"
    runtime = make_runtime(url, tmp_path, secret_key=key)
    env = dict(
        os.environ,
        HEADWATER_DATABASE_URL=url,
        HEADWATER_SECRET_KEY=key,
        HEADWATER_DATA_DIR=str(tmp_path),
        HEADWATER_LEASE_SECONDS="2",
        HEADWATER_RETRY_BASE_SECONDS="0.05",
        HEADWATER_IDLE_POLL_SECONDS="0.1",
        HEADWATER_OUTBOUND_ALLOW=LOOPBACK_ALLOW,
    )
    rng = random.Random(5)
    with proxied_scim_server() as (server, proxy):
        group = create_group(runtime, "Everyone")
        pushed_group = create_group(runtime, "Pushed")
        create_users(runtime, 500, group_ids=[group, pushed_group])
        create_users(runtime, 2000, start=500, group_ids=[group])
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty", max_concurrency=16)
        push_group(runtime, app_id, pushed_group)
        assign_group(runtime, app_id, group)
        for _ in range(10):
            worker = subprocess.Popen(
                [sys.executable, "-m", "headwater", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.5, 2.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        time.sleep(2.1)  # let the dead worker's leases lapse
        converge(runtime, timeout=300, horizon=HORIZON)

        scim = ScimReader(server.base_url)
        accounts, groups = scim.users(), scim.groups()
        names = [a["userName"] for a in accounts]
        assert len(names) == len(set(names)) == 2500
        assert max(creates_per_user_name(proxy).values()) == 1
        (pushed,) = groups
        assert len(pushed.get("members", [])) == 500
        group_creates = [e for e in proxy.requests("POST", r"/Groups$") if e.upstream_status == 201]
        assert len(group_creates) == 1
    runtime.close()


def test_bad_member_is_isolated_from_its_batch(fast_runtime: Runtime) -> None:
    runtime = fast_runtime
    with proxied_scim_server() as (server, proxy):
        users = create_users(runtime, 10)
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty")
        assign_group(runtime, app_id, create_group(runtime, "All", users))
        converge(runtime, horizon=HORIZON)
        with runtime.database.read() as session:
            bad_user, bad_external = session.execute(
                select(t.AppUserLink.user_id, t.AppUserLink.external_id).where(
                    t.AppUserLink.user_id == users[3]
                )
            ).one()
        assert bad_external is not None
        proxy.reject_members([bad_external])
        mapping = push_group(runtime, app_id, create_group(runtime, "Pushed", users))
        converge(runtime, horizon=HORIZON)
        (group,) = ScimReader(server.base_url).groups()
        members = {m["value"] for m in group.get("members", [])}
        assert len(members) == 9 and bad_external not in members
        with runtime.database.read() as session:
            row = session.get(t.PushMapping, mapping)
            assert row is not None and row.status == "ERROR"
            assert bad_external in (row.error_summary or "")
            task = session.execute(select(t.Task).where(t.Task.subject_id == mapping)).scalar_one()
            assert task.operation == "AddMembers"
        assert bad_user == users[3]


def test_retry_after_is_honoured(fast_runtime: Runtime) -> None:
    runtime = fast_runtime
    with proxied_scim_server() as (_, proxy):
        (user,) = create_users(runtime, 1)
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty")
        proxy.status(429, retry_after=1, method="GET", path=r"/Users$", times=1)
        assign_group(runtime, app_id, create_group(runtime, "One", [user]))
        converge(runtime, horizon=HORIZON)
        lookups = proxy.requests("GET", r"/Users$")
        # The connection test's own GET /Users came first, before the fault was set.
        lookups = [entry for entry in lookups if "filter=" in entry.query]
        assert lookups[0].fault == "status:429"
        assert lookups[1].time - lookups[0].time >= 1.0
        assert len(proxy.requests("POST", r"/Users$")) == 1


def _quarantined(runtime: Runtime, app_id: str) -> bool:
    with runtime.database.read() as session:
        app = session.get(t.App, app_id)
        return app is not None and app.quarantined_since is not None


def test_quarantine_then_automatic_recovery(fast_runtime: Runtime) -> None:
    """A full outage quarantines the app (work held, not dropped); once the app answers the
    probe, provisioning resumes by itself."""
    runtime = fast_runtime
    with proxied_scim_server() as (server, proxy):
        users = create_users(runtime, 60)
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty", max_concurrency=4)
        proxy.outage_start(mode="503")
        assign_group(runtime, app_id, create_group(runtime, "All", users))
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        worker = runtime.worker()

        def run() -> None:
            loop.run_until_complete(worker.run(stop))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        scim = ScimReader(server.base_url)
        try:
            wait_for(lambda: _quarantined(runtime, app_id), "quarantine", timeout=60, interval=0.1)
            requests_during = proxy.count()
            time.sleep(1.0)
            assert proxy.count() - requests_during < 5, "a quarantined app is still hammered"
            with runtime.database.read() as session:
                assert outbox.pending_count(session, app_id) > 0
            proxy.outage_end()
            wait_for(
                lambda: not _quarantined(runtime, app_id), "recovery", timeout=60, interval=0.1
            )
            wait_for(lambda: len(scim.users()) == 60, "convergence", timeout=60, interval=0.1)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=20)
            loop.close()
        with runtime.database.read() as session:
            types = set(session.execute(select(t.Event.event_type)).scalars())
        assert {"app.headwater.quarantine.start", "app.headwater.quarantine.end"} <= types


def test_mass_change_guard_holds_then_releases_on_approval(fast_runtime: Runtime) -> None:
    runtime = fast_runtime
    with proxied_scim_server() as (server, proxy):
        users = create_users(runtime, 50)
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty")
        group = create_group(runtime, "All", users)
        assign_group(runtime, app_id, group)
        converge(runtime, horizon=HORIZON)
        unassign_group(runtime, app_id, group)
        converge(runtime, horizon=HORIZON)
        scim = ScimReader(server.base_url)
        assert all(a["active"] for a in scim.users()), "the guard let a mass deprovision through"
        with runtime.database.read() as session:
            decisions = [h.decision for h in held_operations.held(session, app_id)]
            events = set(session.execute(select(t.Event.event_type)).scalars())
        assert decisions == ["HELD"] * 50
        assert "app.headwater.mass_change.held" in events
        with runtime.database.transaction() as session:
            assert held_operations.decide(session, app_id, True, SYSTEM) == 50
        converge(runtime, horizon=HORIZON)
        accounts = scim.users()
        assert len(accounts) == 50 and not any(a["active"] for a in accounts)
        with runtime.database.read() as session:
            assert held_operations.held(session, app_id) == []
        assert proxy.count("PATCH") >= 50


def test_rejected_mass_change_keeps_the_accounts(fast_runtime: Runtime) -> None:
    runtime = fast_runtime
    with proxied_scim_server() as (server, proxy):
        users = create_users(runtime, 20)
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty")
        group = create_group(runtime, "All", users)
        assign_group(runtime, app_id, group)
        converge(runtime, horizon=HORIZON)
        for user in users:
            change_status(runtime, user, "deactivate")
        converge(runtime, horizon=HORIZON)
        with runtime.database.transaction() as session:
            assert held_operations.decide(session, app_id, False, SYSTEM) == 20
            outbox.enqueue_app(session, app_id)
        converge(runtime, horizon=HORIZON)
        assert all(a["active"] for a in ScimReader(server.base_url).users())
        assert proxy.count("PATCH") == 0
