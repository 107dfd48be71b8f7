"""What a risky change will do downstream, shown before the admin confirms it.

The engine's own planner answers, in a what-if run: today's state with the grant left out
(``engine.preview.removal_impact``), so the page says what the reconcile will do (who loses
access, which accounts go, which pushed memberships are removed first), not a second guess of
it. Read-only; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.domain.settings import Deprovision
from headwater.engine import preview, snapshot
from headwater.engine.snapshot import Without

__all__ = ["Impact", "MappingImpact", "group_removal", "mapping_removal", "user_removal"]

SAMPLE = 10


@dataclass(frozen=True)
class Impact:
    """The consequence of taking one grant away in one app."""

    app_id: str
    app_label: str
    people: int
    accounts: int
    memberships: int
    sample: tuple[str, ...]
    deprovision: str
    deactivation_on: bool

    @property
    def verb(self) -> str:
        """What happens to the accounts, as the app's settings say."""
        if not self.deactivation_on:
            return "left active (the app's deactivation switch is off)"
        return "deleted" if self.deprovision == Deprovision.DELETE else "deactivated"


@dataclass(frozen=True)
class MappingImpact:
    mapping_id: str
    target_name: str
    memberships: int
    delete_target: bool


def _impact(session: Session, app: t.App, subjects: Select[Any], without: Without) -> Impact:
    view = snapshot.load_app(session, app.id)
    assert view is not None
    found = preview.removal_impact(session, view, subjects, without, sample=SAMPLE)
    settings = view.settings
    return Impact(
        app_id=app.id,
        app_label=app.label,
        people=found.people,
        accounts=found.accounts,
        memberships=found.memberships,
        sample=found.sample,
        deprovision=str(settings.deprovision),
        deactivation_on=settings.deactivate_users,
    )


def group_removal(session: Session, app: t.App, group_id: str) -> Impact:
    """Unassigning ``group_id`` from ``app`` (or deleting the group), planned for its members."""
    members = select(t.Membership.user_id).where(t.Membership.group_id == group_id)
    return _impact(session, app, members, Without(group_id=group_id))


def user_removal(session: Session, app: t.App, user_id: str) -> Impact:
    """Removing a direct assignment: the account goes unless a group still grants the app."""
    user = select(t.User.id).where(t.User.id == user_id)
    return _impact(session, app, user, Without(direct=True))


def mapping_removal(
    session: Session, mapping: t.PushMapping, *, delete_target: bool
) -> MappingImpact:
    """Unlinking a mapping: its recorded downstream memberships go with a deleted group, or stay
    (unmanaged from then on) with a kept one."""
    members = session.execute(
        select(func.count()).where(t.PushMember.mapping_id == mapping.id)
    ).scalar_one()
    return MappingImpact(mapping.id, target_name(session, mapping), int(members), delete_target)


def target_name(session: Session, mapping: t.PushMapping) -> str:
    """The downstream group's name: the custom one, the linked app group's, else the source's."""
    if mapping.target_group_name:
        return mapping.target_group_name
    for group_id in (mapping.target_group_id, mapping.source_group_id):
        group = session.get(t.Group, group_id) if group_id else None
        if group is not None:
            return group.name
    return mapping.id
