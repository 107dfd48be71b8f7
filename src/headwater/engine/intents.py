"""Intents: what the engine writes down before it sends, so a crash mid-flight never loses
track of a change (the seed's orphan pitfall, closed in any order of admin actions).

* An account about to be deprovisioned is marked DEPROVISIONING first: from then on no push
  may add it to a group, and the memberships read under that mark are complete, so the
  removals sent before the deactivation leave nothing behind.
* A member about to be added to a pushed group is recorded as *pending* first, under a lock
  on its account's link, so a concurrent deprovision either sees the pending row (and removes
  it) or stops the add.

Each function returns facts for the pure planner; none of them edits a plan.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.rowsets import any_of
from headwater.domain import operations as ops
from headwater.domain.plan import PushedMembership, PushPlan
from headwater.domain.states import LinkState
from headwater.engine import snapshot

__all__ = ["admitted_members", "mark_deprovisioning", "record_pending"]


def mark_deprovisioning(
    session: Session, app_id: str, user_ids: list[str]
) -> dict[str, list[PushedMembership]]:
    """Mark the accounts DEPROVISIONING (their link rows are write-locked from here on) and
    return their pushed memberships as they stand under that mark."""
    session.execute(
        update(t.AppUserLink)
        .where(
            t.AppUserLink.app_id == app_id,
            any_of(t.AppUserLink.user_id, user_ids),
            t.AppUserLink.state.in_([LinkState.ACTIVE, LinkState.INACTIVE]),
        )
        .values(
            state=LinkState.DEPROVISIONING,
            # The offboarding deadline counts from the first mark, not from each retry.
            deprovision_started=func.coalesce(t.AppUserLink.deprovision_started, clock.utcnow()),
        )
    )
    return snapshot.load_memberships(session, app_id, user_ids)


def admitted_members(session: Session, app_id: str, user_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``user_ids`` whose account is still ACTIVE, read under a share lock (PostgreSQL)
    so no deprovision can mark them until this transaction has recorded its pending adds."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return frozenset()
    query = select(t.AppUserLink.user_id).where(
        t.AppUserLink.app_id == app_id,
        any_of(t.AppUserLink.user_id, wanted),
        t.AppUserLink.state == LinkState.ACTIVE,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    return frozenset(session.execute(query).scalars())


def adds_of(plan: PushPlan) -> list[ops.AddMembers | ops.ReplaceMembers]:
    return [op for op in plan.operations if isinstance(op, ops.AddMembers | ops.ReplaceMembers)]


def record_pending(session: Session, plan: PushPlan) -> None:
    """Record every member the plan adds as pending, before anything is sent."""
    for op in adds_of(plan):
        _insert_pending(session, op.mapping_id, op.members)


def _insert_pending(
    session: Session, mapping_id: str, members: tuple[tuple[str, str], ...]
) -> None:
    if not members:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(t.PushMember)
    # A member recorded under an account id that changed (the account was recreated):
    # the row follows the new id, pending, so removing the old id later keeps it.
    stmt = stmt.on_conflict_do_update(
        index_elements=["mapping_id", "user_id"],
        set_={"external_id": stmt.excluded.external_id, "pending": True},
        where=t.PushMember.external_id != stmt.excluded.external_id,
    )
    # One statement with many parameter sets on the session's connection: compiled once and
    # cached, where a multi-row VALUES list would be compiled again for every batch.
    session.connection().execute(
        stmt,
        [
            {"mapping_id": mapping_id, "user_id": u, "external_id": e, "pending": True}
            for u, e in members
        ],
    )
