"""Reads everything the planner needs for a batch of keys, a handful of set-based queries per
batch whatever its size (no query per user).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, func, null, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.rowsets import any_of
from headwater.domain.capabilities import Capabilities
from headwater.domain.desired import DirectGrant, GroupGrant, UserFacts
from headwater.domain.plan import AccountRecord, PushedMembership
from headwater.domain.profile_mapping import AppMapping, AppSchema
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import AppStatus, ConnectionStatus, LinkState, MappingStatus

__all__ = [
    "AccountSnapshot",
    "AppSnapshot",
    "PushSnapshot",
    "Without",
    "load_accounts",
    "load_app",
    "load_push",
]


@dataclass(frozen=True)
class AppSnapshot:
    id: str
    label: str
    name: str
    status: AppStatus
    settings: ProvisioningSettings
    base_url: str | None
    auth_scheme: str | None
    secret_encrypted: str | None
    connection_enabled: bool
    connection_updated: datetime | None
    quarantined: bool
    next_probe: datetime | None
    probe_interval: float
    capabilities: Capabilities = field(default_factory=Capabilities)
    #: The attribute mapping (the built-in one when nothing was changed).
    mapping: AppMapping = field(default_factory=AppMapping)


@dataclass(frozen=True)
class AccountSnapshot:
    user: UserFacts | None
    direct: DirectGrant | None
    groups: tuple[GroupGrant, ...]
    record: AccountRecord | None
    user_name: str | None
    memberships: tuple[PushedMembership, ...]
    manager_external_id: str | None
    #: When the account's current deprovision began (None: not being deprovisioned).
    deprovision_started: datetime | None = None
    #: Every group of the user, by id and name (loaded only for a mapping that reads membership).
    group_ids: frozenset[str] = frozenset()
    group_names: frozenset[str] = frozenset()
    #: When Headwater last wrote the account's link (a listing taken before then may not show
    #: what it recorded).
    link_written: datetime | None = None


@dataclass(frozen=True)
class PushSnapshot:
    mapping_id: str
    status: MappingStatus
    delete_requested: bool
    delete_target: bool
    source_group_id: str | None
    source_name: str | None
    custom_name: str | None
    target_group_id: str | None
    target_external_id: str | None
    target_name: str | None
    full_push: bool
    skipped_count: int
    eligible: frozenset[tuple[str, str]]
    recorded: frozenset[tuple[str, str]]
    source_member_count: int


def load_app(session: Session, app_id: str) -> AppSnapshot | None:
    row = session.execute(
        select(t.App, t.AppConnection)
        .outerjoin(t.AppConnection, t.AppConnection.app_id == t.App.id)
        .where(t.App.id == app_id)
    ).first()
    if row is None:
        return None
    app, connection = row
    return AppSnapshot(
        id=app.id,
        label=app.label,
        name=app.name,
        status=AppStatus(app.status),
        settings=ProvisioningSettings.from_json(app.provisioning),
        base_url=connection.base_url if connection else None,
        auth_scheme=connection.auth_scheme if connection else None,
        secret_encrypted=connection.secret_encrypted if connection else None,
        connection_enabled=bool(connection and connection.status == ConnectionStatus.ENABLED),
        connection_updated=connection.last_updated if connection else None,
        quarantined=app.quarantined_since is not None,
        next_probe=app.next_probe,
        probe_interval=app.probe_interval or 0.0,
        capabilities=Capabilities.from_json(app.capabilities),
        mapping=AppMapping.from_json(app.attribute_mapping, AppSchema.from_json(app.user_schema)),
    )


@dataclass(frozen=True)
class Without:
    """Grants a what-if leaves out, as if they had been removed (previews of a removal)."""

    #: This group no longer assigns the app.
    group_id: str | None = None
    #: Direct assignments no longer count.
    direct: bool = False


def _by_priority(grant: GroupGrant) -> tuple[int, str]:
    return grant.priority, grant.group_id


#: The user ids of one ``load_accounts`` call, bound once per statement (``{"user_ids": [...]}``).
_IDS: BindParameter[str] = bindparam("user_ids", expanding=True)


def load_accounts(
    session: Session,
    app_id: str,
    user_ids: list[str],
    *,
    without: Without | None = None,
    all_groups: bool = False,
    memberships: bool = True,
    managers: bool = True,
    last_pushed: bool = True,
) -> dict[str, AccountSnapshot]:
    """Users, grants, recorded accounts and pushed memberships for ``user_ids`` in one app;
    ``all_groups``: every group of each user too (the app's mapping reads membership).
    A caller that only maps attributes may leave out the pushed ``memberships``, the
    ``managers``' account ids and what was sent (``last_pushed``): then empty and None."""
    without = without or Without()
    ids = {"user_ids": user_ids}  # one expanding parameter, not a literal per id per query
    users = {
        row.id: UserFacts(row.id, row.status, dict(row.profile or {}))
        for row in session.execute(
            select(t.User.id, t.User.status, t.User.profile).where(any_of(t.User.id, _IDS)),
            ids,
        )
    }
    direct: dict[str, DirectGrant] = {}
    if not without.direct:
        direct = {
            row.user_id: DirectGrant(dict(row.profile or {}), row.user_name)
            for row in session.execute(
                select(
                    t.AppUserAssignment.user_id,
                    t.AppUserAssignment.profile,
                    t.AppUserAssignment.user_name,
                ).where(
                    t.AppUserAssignment.app_id == app_id,
                    any_of(t.AppUserAssignment.user_id, _IDS),
                ),
                ids,
            )
        }
    # The app's group assignments once (few), then only which of them each user is in: one
    # grant (and its profile, decoded once) per group, not one per user.
    assignments = select(
        t.AppGroupAssignment.group_id,
        t.Group.name,
        t.AppGroupAssignment.priority,
        t.AppGroupAssignment.profile,
    ).join(t.Group, t.Group.id == t.AppGroupAssignment.group_id)
    assignments = assignments.where(t.AppGroupAssignment.app_id == app_id)
    if without.group_id is not None:
        assignments = assignments.where(t.AppGroupAssignment.group_id != without.group_id)
    assigned = {
        row.group_id: GroupGrant(row.group_id, row.name, row.priority, dict(row.profile or {}))
        for row in session.execute(assignments)
    }
    groups: dict[str, list[GroupGrant]] = defaultdict(list)
    if assigned:
        members = (
            select(t.Membership.user_id, t.Membership.group_id)
            .join(t.AppGroupAssignment, t.AppGroupAssignment.group_id == t.Membership.group_id)
            .where(t.AppGroupAssignment.app_id == app_id, any_of(t.Membership.user_id, _IDS))
        )
        for user_id, group_id in session.execute(members, ids):
            grant = assigned.get(group_id)  # None: assigned after the read above, or left out
            if grant is not None:
                groups[user_id].append(grant)
    # The columns read below, not whole ORM rows: nothing here is written back.
    links = {
        row.user_id: row
        for row in session.execute(
            select(
                t.AppUserLink.user_id,
                t.AppUserLink.external_id,
                t.AppUserLink.state,
                t.AppUserLink.last_pushed if last_pushed else null().label("last_pushed"),
                t.AppUserLink.user_name,
                t.AppUserLink.deprovision_started,
                t.AppUserLink.last_updated,
            ).where(t.AppUserLink.app_id == app_id, any_of(t.AppUserLink.user_id, _IDS)),
            ids,
        )
    }
    pushed = load_memberships(session, app_id, user_ids) if memberships else {}
    manager_ids = _manager_accounts(session, app_id, users) if managers else {}
    member_of: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    if all_groups:
        for user_id, group_id, name in session.execute(
            select(t.Membership.user_id, t.Group.id, t.Group.name)
            .join(t.Group, t.Group.id == t.Membership.group_id)
            .where(any_of(t.Membership.user_id, _IDS)),
            ids,
        ):
            member_of[user_id][0].add(group_id)
            member_of[user_id][1].add(name)
    result = {}
    for user_id in user_ids:
        user = users.get(user_id)
        link = links.get(user_id)
        manager_ref = str((user.profile if user else {}).get("managerId") or "")
        granted = groups.get(user_id, ())
        result[user_id] = AccountSnapshot(
            user=user,
            direct=direct.get(user_id),
            groups=tuple(granted) if len(granted) < 2 else tuple(sorted(granted, key=_by_priority)),
            record=(
                AccountRecord(link.external_id, LinkState(link.state), link.last_pushed)
                if link
                else None
            ),
            user_name=link.user_name if link else None,
            memberships=tuple(pushed.get(user_id, ())),
            manager_external_id=manager_ids.get(manager_ref),
            deprovision_started=(
                clock.as_utc(link.deprovision_started)
                if link is not None and link.deprovision_started is not None
                else None
            ),
            group_ids=frozenset(member_of[user_id][0]) if all_groups else frozenset(),
            group_names=frozenset(member_of[user_id][1]) if all_groups else frozenset(),
            link_written=clock.as_utc(link.last_updated) if link is not None else None,
        )
    return result


def load_memberships(
    session: Session, app_id: str, user_ids: list[str]
) -> dict[str, list[PushedMembership]]:
    """Pushed groups of the app that record these users (pending adds included)."""
    result: dict[str, list[PushedMembership]] = defaultdict(list)
    for row in session.execute(
        select(
            t.PushMember.user_id,
            t.PushMember.mapping_id,
            t.Group.external_id,
            t.PushMember.external_id.label("member_id"),
            t.PushMember.pending,
            t.PushMember.stale_since,
        )
        .join(t.PushMapping, t.PushMapping.id == t.PushMember.mapping_id)
        .join(t.Group, t.Group.id == t.PushMapping.target_group_id)
        .where(t.PushMapping.app_id == app_id, any_of(t.PushMember.user_id, user_ids))
    ):
        if row.external_id:
            result[row.user_id].append(
                PushedMembership(
                    row.mapping_id,
                    row.external_id,
                    row.member_id,
                    row.pending,
                    stale=row.stale_since is not None,
                )
            )
    return result


def _manager_accounts(session: Session, app_id: str, users: dict[str, UserFacts]) -> dict[str, str]:
    """managerId → the manager's account id in this app, for the enterprise ``manager``."""
    manager_ids = {
        str(u.profile["managerId"]) for u in users.values() if u.profile.get("managerId")
    }
    if not manager_ids:
        return {}
    rows = session.execute(
        select(t.AppUserLink.user_id, t.AppUserLink.external_id).where(
            t.AppUserLink.app_id == app_id,
            any_of(t.AppUserLink.user_id, manager_ids),
            t.AppUserLink.state == LinkState.ACTIVE,
        )
    )
    return {row.user_id: row.external_id for row in rows if row.external_id}


def load_push(session: Session, app_id: str, mapping_ids: list[str]) -> dict[str, PushSnapshot]:
    """Mappings, their source members with active accounts, and what was pushed."""
    source = t.Group.__table__.alias("source")
    target = t.Group.__table__.alias("target")
    rows = session.execute(
        select(
            t.PushMapping,
            source.c.name.label("source_name"),
            target.c.external_id.label("target_external_id"),
            target.c.name.label("target_name"),
        )
        .outerjoin(source, source.c.id == t.PushMapping.source_group_id)
        .outerjoin(target, target.c.id == t.PushMapping.target_group_id)
        .where(t.PushMapping.app_id == app_id, any_of(t.PushMapping.id, mapping_ids))
    ).all()
    result = {}
    for mapping, source_name, target_external_id, target_name in rows:
        eligible: frozenset[tuple[str, str]] = frozenset()
        count = 0
        if mapping.source_group_id is not None:
            eligible = frozenset(
                (r.user_id, r.external_id)
                for r in session.execute(
                    select(t.Membership.user_id, t.AppUserLink.external_id)
                    .join(
                        t.AppUserLink,
                        (t.AppUserLink.user_id == t.Membership.user_id)
                        & (t.AppUserLink.app_id == app_id),
                    )
                    .where(
                        t.Membership.group_id == mapping.source_group_id,
                        t.AppUserLink.state == LinkState.ACTIVE,
                        t.AppUserLink.external_id.is_not(None),
                    )
                )
            )
            count = session.execute(
                select(func.count())
                .select_from(t.Membership)
                .where(t.Membership.group_id == mapping.source_group_id)
            ).scalar_one()
        recorded = frozenset(
            (r.user_id, r.external_id)
            for r in session.execute(
                select(t.PushMember.user_id, t.PushMember.external_id).where(
                    t.PushMember.mapping_id == mapping.id, t.PushMember.pending.is_(False)
                )
            )
        )
        result[mapping.id] = PushSnapshot(
            mapping_id=mapping.id,
            status=MappingStatus(mapping.status),
            delete_requested=mapping.delete_requested,
            delete_target=mapping.delete_target,
            source_group_id=mapping.source_group_id,
            source_name=source_name,
            custom_name=mapping.target_group_name,
            target_group_id=mapping.target_group_id,
            target_external_id=target_external_id,
            target_name=target_name,
            full_push=mapping.full_push,
            skipped_count=mapping.skipped_count,
            eligible=eligible,
            recorded=recorded,
            source_member_count=int(count),
        )
    return result


def known_accounts(session: Session, app_id: str) -> dict[str, str]:
    """Every linked account of the app: external id → user id (for drift classification)."""
    rows = session.execute(
        select(t.AppUserLink.external_id, t.AppUserLink.user_id).where(
            t.AppUserLink.app_id == app_id, t.AppUserLink.external_id.is_not(None)
        )
    )
    return {row.external_id: row.user_id for row in rows}
