"""What a risky change will do downstream, shown before the admin confirms it.

The engine's planner works on the state *after* a change, which does not exist yet while the
admin is still deciding; so the impact is computed here directly from today's rows: the people
who would be left with no grant for the app, how many of them hold an active account, and how
many pushed memberships Headwater has recorded for them (those are removed first, then the
accounts go). Read-only queries; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.domain.lifecycle import DELETED
from headwater.domain.settings import Deprovision, ProvisioningSettings

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


def _no_other_grant(
    app_id: str, *, except_group: str | None, keep_direct: bool
) -> list[ColumnElement[bool]]:
    """Conditions on ``User.id``: no grant of the app outside the one being removed."""
    other_groups = exists().where(
        t.Membership.user_id == t.User.id,
        t.Membership.group_id == t.AppGroupAssignment.group_id,
        t.AppGroupAssignment.app_id == app_id,
        *(() if except_group is None else (t.AppGroupAssignment.group_id != except_group,)),
    )
    conditions: list[ColumnElement[bool]] = [~other_groups]
    if keep_direct:
        direct = exists().where(
            t.AppUserAssignment.app_id == app_id, t.AppUserAssignment.user_id == t.User.id
        )
        conditions.append(~direct)
    return conditions


def _measure(session: Session, app: t.App, losing: Select[str]) -> Impact:
    ids = losing.subquery()
    people = session.execute(select(func.count()).select_from(ids)).scalar_one()
    accounts = session.execute(
        select(func.count())
        .select_from(t.AppUserLink)
        .where(
            t.AppUserLink.app_id == app.id,
            t.AppUserLink.state == "ACTIVE",
            t.AppUserLink.user_id.in_(select(ids.c.id)),
        )
    ).scalar_one()
    memberships = session.execute(
        select(func.count())
        .select_from(t.PushMember)
        .join(t.PushMapping, t.PushMapping.id == t.PushMember.mapping_id)
        .where(t.PushMapping.app_id == app.id, t.PushMember.user_id.in_(select(ids.c.id)))
    ).scalar_one()
    sample = session.execute(
        select(t.User.login)
        .where(t.User.id.in_(select(ids.c.id)))
        .order_by(t.User.login_lower)
        .limit(SAMPLE)
    ).scalars()
    settings = ProvisioningSettings.from_json(app.provisioning)
    return Impact(
        app_id=app.id,
        app_label=app.label,
        people=int(people),
        accounts=int(accounts),
        memberships=int(memberships),
        sample=tuple(sample),
        deprovision=str(settings.deprovision),
        deactivation_on=settings.deactivate_users,
    )


def group_removal(session: Session, app: t.App, group_id: str) -> Impact:
    """Unassigning ``group_id`` from ``app`` (or deleting the group): members left with no
    direct assignment and no other assigned group lose their account."""
    losing = (
        select(t.User.id)
        .join(t.Membership, t.Membership.user_id == t.User.id)
        .where(
            t.Membership.group_id == group_id,
            t.User.status != DELETED,
            *_no_other_grant(app.id, except_group=group_id, keep_direct=True),
        )
    )
    return _measure(session, app, losing)


def user_removal(session: Session, app: t.App, user_id: str) -> Impact:
    """Removing a direct assignment: the account goes unless a group still grants the app."""
    losing = select(t.User.id).where(
        t.User.id == user_id,
        *_no_other_grant(app.id, except_group=None, keep_direct=False),
    )
    return _measure(session, app, losing)


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
