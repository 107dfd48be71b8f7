"""Deprovisions held by the mass-change guard: list them, approve them (they run) or reject
them (the accounts stay). The guard that holds them is the engine's (``engine.guard``)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.states import HoldDecision
from headwater.errors import NotFound

__all__ = ["decide", "held"]


def held(session: Session, app_id: str) -> list[t.HeldOperation]:
    return list(
        session.execute(
            select(t.HeldOperation)
            .where(t.HeldOperation.app_id == app_id)
            .order_by(t.HeldOperation.created, t.HeldOperation.user_id)
        ).scalars()
    )


def decide(
    session: Session, app_id: str, approve: bool, actor: Actor, user_ids: list[str] | None = None
) -> int:
    """Approve (the deprovisions run) or reject (the accounts stay) held operations."""
    app = session.get(t.App, app_id)
    if app is None:
        raise NotFound()
    condition = [t.HeldOperation.app_id == app_id, t.HeldOperation.decision == HoldDecision.HELD]
    if user_ids is not None:
        condition.append(t.HeldOperation.user_id.in_(user_ids))
    targets = list(session.execute(select(t.HeldOperation.user_id).where(*condition)).scalars())
    if not targets:
        return 0
    decision = HoldDecision.APPROVED if approve else HoldDecision.REJECTED
    session.execute(update(t.HeldOperation).where(*condition).values(decision=decision))
    if approve:
        outbox.enqueue_users_for_apps(session, app_id, targets)
    events.record(
        session,
        "app.headwater.mass_change.approved" if approve else "app.headwater.mass_change.rejected",
        f"{len(targets)} held deprovision(s) in {app.label} {decision.lower()}",
        actor=actor,
        targets=[Target(app_id, "AppInstance", app.name, app.label)],
        debug={"count": len(targets)},
    )
    return len(targets)
