"""The mass-change guard: deprovisions beyond a share of an app's accounts wait for an admin.

Like Okta's import safeguard and Entra's accidental-deletion threshold: a mistaken group
unassignment or a broken directory sync must not wipe an app. The guard measures the whole
pending change (every active account that the directory no longer wants), not one batch.
"""

from __future__ import annotations

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Target
from headwater.domain.desired import ACCOUNT_STATUSES
from headwater.domain.settings import ProvisioningSettings, SuspendAction
from headwater.domain.states import HoldDecision

__all__ = ["screen", "settle"]


def _unwanted_active_accounts(session: Session, app_id: str, settings: ProvisioningSettings) -> int:
    """Active accounts of the app whose user the directory no longer wants there."""
    keeps = set(ACCOUNT_STATUSES)
    if settings.on_suspend is SuspendAction.LEAVE:
        keeps.add("SUSPENDED")
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
            t.AppUserLink.state == "ACTIVE",
            or_(t.User.status.not_in(keeps), and_(~direct, ~grouped)),
        )
    )
    return int(session.execute(query).scalar_one())


def screen(
    session: Session, app_id: str, label: str, settings: ProvisioningSettings, user_ids: list[str]
) -> set[str]:
    """Users among ``user_ids`` whose deprovision must not run now (held or rejected)."""
    rows = session.execute(
        select(t.HeldOperation.user_id, t.HeldOperation.decision).where(
            t.HeldOperation.app_id == app_id, t.HeldOperation.user_id.in_(user_ids)
        )
    )
    decisions = {row.user_id: row.decision for row in rows}
    blocked = {u for u, d in decisions.items() if d in (HoldDecision.HELD, HoldDecision.REJECTED)}
    undecided = [u for u in user_ids if u not in decisions]
    if not undecided or settings.mass_change_threshold <= 0:
        return blocked
    active = session.execute(
        select(func.count()).where(t.AppUserLink.app_id == app_id, t.AppUserLink.state == "ACTIVE")
    ).scalar_one()
    leaving = _unwanted_active_accounts(session, app_id, settings)
    tripped = leaving >= settings.mass_change_minimum and leaving > (
        settings.mass_change_threshold * max(int(active), 1)
    )
    if not tripped:
        return blocked
    first = not session.execute(
        select(
            exists().where(
                t.HeldOperation.app_id == app_id, t.HeldOperation.decision == HoldDecision.HELD
            )
        )
    ).scalar()
    now = clock.utcnow()
    for user_id in undecided:
        session.add(
            t.HeldOperation(
                app_id=app_id,
                user_id=user_id,
                operation="DEPROVISION",
                decision=HoldDecision.HELD,
                created=now,
            )
        )
    if first:
        events.record(
            session,
            "app.headwater.mass_change.held",
            f"{leaving} of {active} accounts in {label} would be deprovisioned; held for approval",
            actor=SYSTEM,
            targets=[Target(app_id, "AppInstance", label, label)],
            outcome="FAILURE",
            reason="mass-change threshold exceeded",
            debug={"leaving": leaving, "active": int(active)},
        )
    return blocked | set(undecided)


def settle(session: Session, app_id: str, user_ids: list[str]) -> None:
    """Forget decisions for users whose account is no longer being taken away."""
    if user_ids:
        session.execute(
            delete(t.HeldOperation).where(
                t.HeldOperation.app_id == app_id, t.HeldOperation.user_id.in_(user_ids)
            )
        )
