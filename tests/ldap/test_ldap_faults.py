"""Faults between Headwater and a real slapd: the directory stopped and started again mid-run,
and a bind password changed under Headwater (quarantine, then recovery once fixed)."""

from __future__ import annotations

import threading
import time

import ldap3
from sqlalchemy import select

from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import connections
from headwater.testing.slapd import DirectoryReader, Slapd
from headwater.testing.toolkit import (
    assign_group,
    converge,
    create_group,
    create_ldap_app,
    create_users,
    push_group,
    wait_for,
)

#: Long enough for the backoffs (from 20 ms) and a first quarantine probe (5 s).
HORIZON = 30.0


def _quarantined(runtime: Runtime, app_id: str) -> bool:
    with runtime.database.read() as session:
        app = session.get(t.App, app_id)
        return app is not None and app.quarantined_since is not None


def test_slapd_stopped_and_restarted_mid_run_converges_without_duplicates(
    fast_runtime: Runtime, fresh_slapd: Slapd
) -> None:
    runtime = fast_runtime
    directory = DirectoryReader(fresh_slapd)
    users = create_users(runtime, 40)
    app_id = create_ldap_app(runtime, fresh_slapd, max_concurrency=2)
    everyone = create_group(runtime, "Everyone", users)
    assign_group(runtime, app_id, everyone)
    push_group(runtime, app_id, everyone)
    outage: list[int] = []

    def interrupt() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(directory.people()) < 5:
            time.sleep(0.02)
        fresh_slapd.stop()
        outage.append(len(directory.people()) if fresh_slapd.running else -1)
        time.sleep(1.0)
        fresh_slapd.start()

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    converge(runtime, timeout=120, horizon=HORIZON, settled=False)
    thread.join(timeout=90)
    assert outage, "the directory was never stopped"
    converge(runtime, timeout=120, horizon=HORIZON)
    people = directory.people()  # fails on two entries for one uid
    assert len(people) == 40
    assert all(directory.active(uid) for uid in people)
    assert directory.members("Everyone") == set(people)


def test_a_changed_bind_password_quarantines_until_the_connection_is_fixed(
    fast_runtime: Runtime, fresh_slapd: Slapd
) -> None:
    runtime = fast_runtime
    directory = DirectoryReader(fresh_slapd)
    # A service account of its own, whose password an operator then changes.
    bind_dn = fresh_slapd.service_dn
    with fresh_slapd.connect() as conn:
        conn.add(bind_dn, ["simpleSecurityObject", "organizationalRole"], {"userPassword": "one"})
    users = create_users(runtime, 5)
    app_id = create_ldap_app(runtime, fresh_slapd, password="one", profile={"bind_dn": bind_dn})
    group = create_group(runtime, "Everyone", users)
    with fresh_slapd.connect() as conn:
        conn.modify(bind_dn, {"userPassword": [(ldap3.MODIFY_REPLACE, ["two"])]})
    assign_group(runtime, app_id, group)
    converge(runtime, timeout=60, horizon=1.0, settled=False)
    assert _quarantined(runtime, app_id)
    with runtime.database.read() as session:
        assert outbox.pending_count(session, app_id) > 0
        reason = session.get(t.App, app_id).quarantine_reason  # type: ignore[union-attr]
    assert reason is not None and "invalidCredentials" in reason and "two" not in reason
    assert directory.people() == {}
    # The operator enters the new password; the probe succeeds and the work resumes.
    spec = connections.ConnectionSpec("LDAP", None, {"password": "two"})
    with runtime.database.transaction() as session:
        prepared = connections.prepare_connection(session, runtime.secrets, app_id, spec)
        connections.save_connection(session, SYSTEM, prepared, enabled=True)

    def recovered() -> bool:
        converge(runtime, timeout=30, horizon=0.5, settled=False)
        return not _quarantined(runtime, app_id)

    wait_for(recovered, "recovery", timeout=60, interval=0.5)
    converge(runtime, timeout=60, horizon=HORIZON)
    assert len(directory.people()) == 5
    with runtime.database.read() as session:
        types = set(session.execute(select(t.Event.event_type)).scalars())
    assert {"app.headwater.quarantine.start", "app.headwater.quarantine.end"} <= types
