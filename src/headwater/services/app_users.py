"""App users: the effective assignments of an app (direct or through groups) as Okta shows them,
with the state of each downstream account. Read-only; pages load in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.paging import Page
from headwater.db.rowsets import any_of
from headwater.domain.desired import DirectGrant, GroupGrant, resolve_profile
from headwater.domain.mapping import MappingError, render_user_name
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import LinkState, SyncState
from headwater.errors import NotFound
from headwater.services.apps import ACTIVE, connected_app_ids, get_app, settings_of
from headwater.services.validation import prefix_pattern


@dataclass(frozen=True)
class AppUserView:
    """One effectively assigned user as Okta's app user, derived from rows loaded in bulk."""

    app_id: str
    user: t.User
    link: t.AppUserLink | None
    direct: t.AppUserAssignment | None
    grants: tuple[GroupGrant, ...]
    #: When each group grant began (assignment or membership, whichever is later).
    grant_times: dict[str, tuple[datetime, datetime]]
    settings: ProvisioningSettings
    connected: bool

    @property
    def scope(self) -> str:
        return "USER" if self.direct is not None else "GROUP"

    @property
    def winning_group(self) -> GroupGrant | None:
        return resolve_profile(None, self.grants)[1]

    @property
    def profile(self) -> dict[str, Any]:
        direct = DirectGrant(self.direct.profile or {}) if self.direct is not None else None
        return resolve_profile(direct, self.grants)[0]

    @property
    def status(self) -> str:
        if not self.connected and self.link is None:
            return "ACTIVE"  # sign-on only: nothing to provision (Okta's app user status)
        if self.link is None or self.link.external_id is None:
            return "STAGED"
        if self.link.state == LinkState.ACTIVE:
            return "PROVISIONED"
        if self.link.state in (LinkState.INACTIVE, LinkState.DEPROVISIONING):
            return "INACTIVE"
        return "STAGED"

    @property
    def sync_state(self) -> str:
        if self.link is not None:
            return self.link.sync_state
        return SyncState.SYNCING if self.connected else SyncState.DISABLED

    @property
    def user_name(self) -> str:
        if self.direct is not None and self.direct.user_name:
            return self.direct.user_name
        try:
            return render_user_name(self.settings.user_name_template, self.user.profile or {})
        except MappingError:
            return self.user.login

    def _times(self) -> list[tuple[datetime, datetime]]:
        """(created, last updated) of every record behind this app user."""
        times = [(clock.as_utc(c), clock.as_utc(u)) for c, u in self.grant_times.values()]
        for row in (self.direct, self.link):
            if row is not None:
                times.append((clock.as_utc(row.created), clock.as_utc(row.last_updated)))
        return times

    @property
    def created(self) -> datetime:
        return min(created for created, _ in self._times())

    @property
    def last_updated(self) -> datetime:
        return max(updated for _, updated in self._times())

    @property
    def status_changed(self) -> datetime:
        if self.link is not None and self.link.status_changed is not None:
            return clock.as_utc(self.link.status_changed)
        return self.created

    @property
    def last_sync(self) -> datetime | None:
        return self.link.last_sync if self.link is not None else None


def _effective_user_ids(app_id: str, after: str | None) -> Select[Any]:
    """Users assigned directly or through any assigned group (a set, not a loop)."""
    aua, aga, m = t.AppUserAssignment, t.AppGroupAssignment, t.Membership
    direct = select(aua.user_id.label("user_id")).where(aua.app_id == app_id)
    grouped = (
        select(m.user_id.label("user_id"))
        .join(aga, aga.group_id == m.group_id)
        .where(aga.app_id == app_id)
    )
    if after:
        direct = direct.where(aua.user_id > after)
        grouped = grouped.where(m.user_id > after)
    assigned = union(direct, grouped).subquery()
    return select(t.User.id).join(assigned, assigned.c.user_id == t.User.id)


def _group_grants(
    session: Session, app_id: str, user_ids: list[str]
) -> dict[str, list[tuple[GroupGrant, tuple[datetime, datetime]]]]:
    aga, m = t.AppGroupAssignment, t.Membership
    rows = session.execute(
        select(
            m.user_id,
            aga.group_id,
            t.Group.name,
            aga.priority,
            aga.profile,
            aga.created,
            m.created.label("joined"),
            aga.last_updated,
        )
        .join(aga, aga.group_id == m.group_id)
        .join(t.Group, t.Group.id == aga.group_id)
        .where(aga.app_id == app_id, any_of(m.user_id, user_ids))
    ).all()
    grants: dict[str, list[tuple[GroupGrant, tuple[datetime, datetime]]]] = {}
    for row in rows:
        grant = GroupGrant(row.group_id, row.name, row.priority, dict(row.profile or {}))
        began = max(clock.as_utc(row.created), clock.as_utc(row.joined))
        updated = max(began, clock.as_utc(row.last_updated))
        grants.setdefault(row.user_id, []).append((grant, (began, updated)))
    return grants


def _by_user(session: Session, model: Any, app_id: str, user_ids: list[str]) -> dict[str, Any]:
    rows = session.execute(
        select(model).where(model.app_id == app_id, any_of(model.user_id, user_ids))
    ).scalars()
    return {row.user_id: row for row in rows}


def _views(session: Session, app: t.App, user_ids: list[str]) -> list[AppUserView]:
    """App users for a page of ids: one query each for users, links, direct grants, groups."""
    if not user_ids:
        return []
    users = {
        u.id: u
        for u in session.execute(select(t.User).where(any_of(t.User.id, user_ids))).scalars()
    }
    links = _by_user(session, t.AppUserLink, app.id, user_ids)
    directs = _by_user(session, t.AppUserAssignment, app.id, user_ids)
    grants = _group_grants(session, app.id, user_ids)
    settings = settings_of(app)
    connected = bool(connected_app_ids(session, [app.id]))
    views = []
    for user_id in user_ids:
        pairs = grants.get(user_id, [])
        if user_id not in users or (user_id not in directs and not pairs):
            continue
        views.append(
            AppUserView(
                app_id=app.id,
                user=users[user_id],
                link=links.get(user_id),
                direct=directs.get(user_id),
                grants=tuple(grant for grant, _ in pairs),
                grant_times={grant.group_id: times for grant, times in pairs},
                settings=settings,
                connected=connected,
            )
        )
    return views


def list_app_users(
    session: Session, app_id: str, *, limit: int, after: str | None, q: str | None = None
) -> Page[AppUserView]:
    app = get_app(session, app_id)
    query = _effective_user_ids(app_id, after)
    if q:
        query = query.where(t.User.login_lower.like(prefix_pattern(q), escape="\\"))
    ids_ = list(session.execute(query.order_by(t.User.id).limit(limit + 1)).scalars())
    page: Page[AppUserView] = Page(_views(session, app, ids_[:limit]))
    if len(ids_) > limit:
        page.next_cursor = ids_[limit - 1]
    return page


def app_user(session: Session, app_id: str, user_id: str) -> AppUserView:
    """One effectively assigned user; 404 when the user holds no grant for the app."""
    app = get_app(session, app_id)
    views = _views(session, app, [user_id])
    if not views:
        raise NotFound(f"Not found: Resource not found: {user_id} (AppUser)")
    return views[0]


def app_links(
    session: Session, user_id_or_login: str, *, only: Collection[str] | None = None
) -> tuple[t.User, list[t.App]]:
    """Active apps the user is effectively assigned to, ordered by label (Okta's appLinks);
    ``only``: limited to these app ids."""
    user = session.get(t.User, user_id_or_login)
    if user is None:
        user = session.execute(
            select(t.User).where(t.User.login_lower == user_id_or_login.lower())
        ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"Not found: Resource not found: {user_id_or_login} (User)")
    aua, aga, m = t.AppUserAssignment, t.AppGroupAssignment, t.Membership
    direct = select(aua.app_id.label("app_id")).where(aua.user_id == user.id)
    grouped = (
        select(aga.app_id.label("app_id"))
        .join(m, m.group_id == aga.group_id)
        .where(m.user_id == user.id)
    )
    assigned = union(direct, grouped).subquery()
    query = (
        select(t.App)
        .join(assigned, assigned.c.app_id == t.App.id)
        .where(t.App.status == ACTIVE)
        .order_by(t.App.label, t.App.id)
    )
    if only is not None:
        query = query.where(t.App.id.in_(sorted(only)))
    return user, list(session.execute(query).scalars())
