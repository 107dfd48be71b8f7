"""The engine's side of imports: an import survives its worker dying mid-way (the next worker
resumes where the stored pages end, reading each account once), and the periodic full
reconcile keeps the unmanaged accounts current without any import."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlalchemy import select

from headwater import clock
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.engine import schedule
from headwater.runtime import Runtime
from headwater.services import app_imports
from headwater.testing.toolkit import (
    InProcessScim,
    MovableClock,
    assign_user,
    converge,
    create_scim_app,
    create_user,
    run_async,
)


def _progress(runtime: Runtime, import_id: str) -> t.AppImport:
    with runtime.database.read() as session:
        row = session.get(t.AppImport, import_id)
        assert row is not None
        session.expunge(row)
        return row


def test_an_import_resumes_after_its_worker_dies(runtime: Runtime) -> None:
    downstream = InProcessScim(max_results=10).serve(runtime)
    for i in range(60):
        downstream.scim.create_user(f"old{i:02d}@example.com")
    app_id = create_scim_app(runtime, downstream.base_url, "Resumable", max_concurrency=1)
    with runtime.database.transaction() as session:
        import_id = app_imports.start_import(session, SYSTEM, app_id).id

    async def die_mid_way() -> None:
        worker = runtime.worker(worker_id="doomed")
        step = asyncio.create_task(worker.step())
        while (await asyncio.to_thread(_progress, runtime, import_id)).accounts_read < 20:
            assert not step.done()
            await asyncio.sleep(0.005)
        step.cancel()  # killed: no lease given back, nothing more stored
        with contextlib.suppress(asyncio.CancelledError):
            await step
        await worker.reconciler.aclose()

    run_async(die_mid_way)
    halfway = _progress(runtime, import_id)
    assert halfway.status == "RUNNING"
    assert 20 <= halfway.accounts_read < 60
    downstream.transport.clear()
    with MovableClock() as moved:
        moved.advance(timedelta(seconds=runtime.settings.lease_seconds + 1))
        converge(runtime)
    done = _progress(runtime, import_id)
    assert done.status == "COMPLETED"
    assert (done.accounts_read, done.unmatched) == (60, 60)
    # The next worker started where the stored pages end.
    first = downstream.transport.requests("GET", resource="Users")[0]
    assert f"startIndex={halfway.next_index}" in first.query
    with runtime.database.read() as session:
        names = session.execute(
            select(t.AppImportAccount.user_name).where(t.AppImportAccount.import_id == import_id)
        ).scalars()
        assert len(set(names)) == 60


def test_the_full_reconcile_keeps_unmanaged_accounts_current(runtime: Runtime) -> None:
    downstream = InProcessScim().serve(runtime)
    app_id = create_scim_app(runtime, downstream.base_url, "Surveyed")
    assign_user(runtime, app_id, create_user(runtime, "kept@example.com"))
    converge(runtime)
    hand_made = downstream.scim.create_user("by.hand@example.com")

    def full_reconcile() -> None:
        with runtime.database.transaction() as session:
            app = session.get(t.App, app_id)
            assert app is not None
            app.last_full_reconcile = clock.utcnow() - timedelta(days=1)
        assert schedule.start_full_reconciles(runtime.database) == 1
        converge(runtime)

    full_reconcile()
    with runtime.database.read() as session:
        rows = list(session.execute(select(t.UnmanagedAccount)).scalars())
        found = [(r.user_name, r.external_id, r.state) for r in rows]
        seen = rows[0].last_seen
    assert found == [("by.hand@example.com", hand_made, "UNMANAGED")]

    full_reconcile()
    with runtime.database.read() as session:
        again = session.execute(select(t.UnmanagedAccount.last_seen)).scalar_one()
    assert clock.as_utc(again) > clock.as_utc(seen)

    downstream.scim.delete_user(hand_made)
    full_reconcile()
    with runtime.database.read() as session:
        assert session.execute(select(t.UnmanagedAccount)).first() is None
