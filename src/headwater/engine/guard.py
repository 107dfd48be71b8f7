"""The mass-change guard in the engine: reads what the pure verdict needs (``domain.mass_change``)
and, in the live path, records the holds it decides. Previews call ``assess`` only."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.rowsets import any_of
from headwater.domain.desired import ACCOUNT_STATUSES
from headwater.domain.lifecycle import Status
from headwater.domain.mass_change import GuardVerdict, judge
from headwater.domain.settings import ProvisioningSettings, SuspendAction
from headwater.domain.states import HoldDecision, LinkState
from headwater.engine import trail
from headwater.engine.snapshot import AppSnapshot

__all__ = ["Assessment", "assess", "screen", "settle"]


def _unwanted_active_accounts(session: Session, app_id: str, settings: ProvisioningSettings) -> int:
    """Active accounts of the app whose user the directory no longer wants there."""
    keeps = set(ACCOUNT_STATUSES)
    if settings.on_suspend is SuspendAction.LEAVE:
        keeps.add(Status.SUSPENDED)
    direct = exists().where(
        t.AppUserAssignment.app_id == app_id, t.AppUserAssignment.user_id == t.AppUserLink.user_id
    )
    grouped = exists().where(
        t.Membership.user_id == t.AppUserLink.user_id,
        t.Membership.group_id == t.AppGroupAssignment.group_id,
        t.AppGroupAssignment.app_id == app_id,
    )
    query = (
        select(func.count())
        .select_from(t.AppUserLink)
        .join(t.User, t.User.id == t.AppUserLink.user_id)
        .where(
            t.AppUserLink.app_id == app_id,
            t.AppUserLink.state == LinkState.ACTIVE,
            or_(t.User.status.not_in(keeps), and_(~direct, ~grouped)),
        )
    )
    return int(session.execute(query).scalar_one())


def active_accounts(session: Session, app_id: str) -> int:
    """Active accounts of the app (the base of the mass-change threshold)."""
    return int(
        session.execute(
            select(func.count()).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.state == LinkState.ACTIVE
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class Assessment:
    verdict: GuardVerdict
    unwanted: int = 0
    active: int = 0


def assess(session: Session, app: AppSnapshot, leaving: Collection[str]) -> Assessment:
    """The guard's verdict on ``leaving`` users, read-only (previews use it as it is)."""
    if not leaving:
        return Assessment(GuardVerdict(frozenset(), frozenset()))
    rows = session.execute(
        select(t.HeldOperation.user_id, t.HeldOperation.decision).where(
            t.HeldOperation.app_id == app.id, any_of(t.HeldOperation.user_id, leaving)
        )
    )
    decisions = {row.user_id: HoldDecision(row.decision) for row in rows}
    unwanted = active = 0
    if any(u not in decisions for u in leaving) and app.settings.mass_change_threshold > 0:
        # Only an undecided deprovision can trip the guard: count the app only then.
        unwanted = _unwanted_active_accounts(session, app.id, app.settings)
        active = active_accounts(session, app.id)
    verdict = judge(leaving, decisions, unwanted=unwanted, active=active, settings=app.settings)
    return Assessment(verdict, unwanted, active)


def screen(
    session: Session, app: AppSnapshot, leaving: Collection[str], staying: Collection[str]
) -> frozenset[str]:
    """Record the guard's verdict; returns the leaving users whose deprovision must wait.

    Users no longer leaving (``staying``) lose any decision recorded for them."""
    settle(session, app.id, list(staying))
    assessment = assess(session, app, leaving)
    verdict = assessment.verdict
    if verdict.newly_held:
        _hold(session, app, verdict.newly_held, assessment)
    return verdict.blocked


def _hold(session: Session, app: AppSnapshot, users: frozenset[str], seen: Assessment) -> None:
    first = not session.execute(
        select(
            exists().where(
                t.HeldOperation.app_id == app.id, t.HeldOperation.decision == HoldDecision.HELD
            )
        )
    ).scalar()
    now = clock.utcnow()
    for user_id in sorted(users):
        session.add(
            t.HeldOperation(
                app_id=app.id,
                user_id=user_id,
                operation="DEPROVISION",
                decision=HoldDecision.HELD,
                created=now,
            )
        )
    if first:
        trail.app_event(
            session,
            app,
            "app.headwater.mass_change.held",
            f"{seen.unwanted} of {seen.active} accounts in {app.label} would be deprovisioned; "
            "held for approval",
            outcome="FAILURE",
            reason="mass-change threshold exceeded",
            debug={"leaving": seen.unwanted, "active": seen.active},
        )


def settle(session: Session, app_id: str, user_ids: list[str]) -> None:
    """Forget decisions for users whose account is no longer being taken away."""
    if user_ids:
        session.execute(
            delete(t.HeldOperation).where(
                t.HeldOperation.app_id == app_id, any_of(t.HeldOperation.user_id, user_ids)
            )
        )
