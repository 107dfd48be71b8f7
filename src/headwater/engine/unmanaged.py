"""Unmanaged accounts, acted on by the engine for ``stray`` keys: deactivations an admin asked
for go through the mass-change guard, the planner (``domain.unmanaged``), the executor and the
system log like any deprovision; links to a chosen user are recorded as the engine records a
link (``imports.link_account``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from headwater import clock
from headwater.connectors.errors import DownstreamError, TransientError
from headwater.db import leases, outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.rowsets import any_of
from headwater.domain.mass_change import tripped
from headwater.domain.states import HoldDecision, UnmanagedState
from headwater.domain.unmanaged import StrayPlan, plan_stray
from headwater.engine import guard, trail
from headwater.engine.executor import execute
from headwater.engine.imports import link_account
from headwater.engine.links import Links
from headwater.engine.ports import Connector
from headwater.engine.snapshot import AppSnapshot

__all__ = ["run_stray_keys"]

RETRY_MAX = 300.0


@dataclass
class _Stray:
    key: leases.ClaimedKey
    row_id: str
    external_id: str
    user_name: str
    plan: StrayPlan
    error: DownstreamError | None = None
    sent: bool = False


async def run_stray_keys(
    database: Database, app: AppSnapshot, connector: Connector, keys: Sequence[leases.ClaimedKey]
) -> None:
    """Guard and plan (one transaction), send the deactivations within the app's concurrency,
    record the outcomes (one transaction)."""
    strays = await asyncio.to_thread(_screen, database, app, keys)
    limit = asyncio.Semaphore(app.settings.max_concurrency)

    async def send(stray: _Stray) -> None:
        operation = stray.plan.operation
        if operation is None:
            return
        async with limit:
            try:
                await execute(operation, connector, app.settings)
                stray.sent = True
            except DownstreamError as exc:
                stray.error = exc

    await asyncio.gather(*(send(s) for s in strays))
    await asyncio.to_thread(_record, database, app, keys, strays)


def _screen(
    database: Database, app: AppSnapshot, keys: Sequence[leases.ClaimedKey]
) -> list[_Stray]:
    with database.transaction() as session:
        _guard(session, app)
        rows = {
            row.id: row
            for row in session.execute(
                select(t.UnmanagedAccount).where(
                    t.UnmanagedAccount.app_id == app.id,
                    any_of(t.UnmanagedAccount.id, [k.subject_id for k in keys]),
                )
            ).scalars()
        }
        strays = []
        for key in keys:
            row = rows.get(key.subject_id)
            if row is None:
                continue
            decision = HoldDecision(row.decision) if row.decision else None
            plan = plan_stray(UnmanagedState(row.state), row.external_id, row.active, decision)
            if plan.link:
                _link(session, app, row)
                continue
            strays.append(_Stray(key, row.id, row.external_id, row.user_name, plan))
        return strays


def _guard(session: Session, app: AppSnapshot) -> None:
    """The mass-change guard over every undecided deactivation of the app's unmanaged accounts:
    weighed against all the app's active accounts, managed or not; held for approval when the
    share is over the app's threshold."""
    waiting = (
        t.UnmanagedAccount.app_id == app.id,
        t.UnmanagedAccount.state == UnmanagedState.DEACTIVATING,
        t.UnmanagedAccount.decision.is_(None),
        t.UnmanagedAccount.active.is_(True),
    )
    undecided = int(session.execute(select(func.count()).where(*waiting)).scalar_one())
    if not undecided or app.settings.mass_change_threshold <= 0:
        return
    unmanaged_active = int(
        session.execute(
            select(func.count()).where(
                t.UnmanagedAccount.app_id == app.id,
                t.UnmanagedAccount.active.is_(True),
                t.UnmanagedAccount.state != UnmanagedState.DEACTIVATED,
            )
        ).scalar_one()
    )
    active = guard.active_accounts(session, app.id) + unmanaged_active
    if not tripped(undecided, active, app.settings):
        return
    session.execute(
        update(t.UnmanagedAccount).where(*waiting).values(decision=HoldDecision.HELD.value)
    )
    trail.app_event(
        session,
        app,
        "app.headwater.mass_change.held",
        f"{undecided} of {active} accounts in {app.label} would be deactivated (unmanaged "
        "accounts); held for approval",
        outcome="FAILURE",
        reason="mass-change threshold exceeded",
        debug={"leaving": undecided, "active": active, "unmanaged": True},
    )


def _link(session: Session, app: AppSnapshot, row: t.UnmanagedAccount) -> None:
    now = clock.utcnow()
    user_id = row.user_id
    user = session.get(t.User, user_id) if user_id else None
    if user is None or user_id is None:
        row.state = UnmanagedState.UNMANAGED
        row.last_error = "the chosen user no longer exists"
        row.last_updated = now
        return
    links = Links.load(session, app.id, [user_id])
    if not link_account(session, app, links, user_id, row.external_id, row.user_name, row.active):
        row.state = UnmanagedState.UNMANAGED
        row.user_id = None
        row.last_error = f"{user.login} already has another account in this app"
        row.last_updated = now
        return
    links.write()
    outbox.enqueue_users_for_apps(session, app.id, [user_id])
    labels = trail.load_labels(session, [user_id])
    trail.account_event(
        session,
        app,
        user_id,
        labels,
        "application.provision.user.import",
        f"Account {row.user_name} ({row.external_id}) in {app.label} linked to {user.login}",
    )
    session.delete(row)


def _record(
    database: Database,
    app: AppSnapshot,
    keys: Sequence[leases.ClaimedKey],
    strays: list[_Stray],
) -> None:
    now = clock.utcnow()
    retried: set[tuple[str, str]] = set()
    with database.transaction() as session:
        for stray in strays:
            row = session.get(t.UnmanagedAccount, stray.row_id)
            if row is None:
                continue
            if stray.sent or stray.plan.done:
                row.state = UnmanagedState.DEACTIVATED
                row.active = False
                row.decision = None
                row.last_error = None
                row.last_updated = now
                trail.app_event(
                    session,
                    app,
                    "application.provision.user.deactivate",
                    f"Unmanaged account {stray.user_name} ({stray.external_id}) deactivated "
                    f"in {app.label}",
                    debug={"externalId": stray.external_id},
                )
            elif stray.error is not None:
                message = str(stray.error)[:2000]
                row.last_error = message
                row.last_updated = now
                if isinstance(stray.error, TransientError):
                    delay = min(RETRY_MAX, 5.0 * 2**stray.key.attempts)
                    leases.retry_later(session, stray.key, delay)
                    retried.add((stray.key.kind, stray.key.subject_id))
                    continue
                row.state = UnmanagedState.UNMANAGED
                row.decision = None
                trail.app_event(
                    session,
                    app,
                    "application.provision.user.deactivate",
                    f"Unmanaged account {stray.user_name} ({stray.external_id}) could not be "
                    f"deactivated in {app.label}",
                    outcome="FAILURE",
                    reason=message[:300],
                )
        leases.finish_many(session, [k for k in keys if (k.kind, k.subject_id) not in retried])
