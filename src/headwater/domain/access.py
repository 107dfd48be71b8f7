"""Who may do what: administrator roles, their scopes, and the one decision every edge asks.

Roles follow Okta's standard administrator roles, for API tokens and console admins alike:

* ``SUPER_ADMIN``: everything, including API tokens and console admins.
* ``APP_ADMIN``: the named apps only: their settings, lifecycle, connection, assignments, app
  users, Group Push mappings and rules, tasks, held operations, plan, explain, reconcile and
  orphans. It reads the directory (people and groups) to choose whom to assign, and changes
  none of it. It cannot create or delete apps.
* ``GROUP_MEMBERSHIP_ADMIN``: the named groups only: read them and their members, add and
  remove members. It reads people (to find whom to add) and nothing else.
* ``READ_ONLY_ADMIN``: every read (the system log and group rules included), no write; API
  tokens stay hidden.

Inbound sources master users and groups, so only a ``SUPER_ADMIN`` creates them or issues
their tokens.

Group rules change memberships across the whole directory, so only a ``SUPER_ADMIN`` manages
them (Okta's group rules need a super or org administrator too).

A decision is ``allows(grant, permission, resource_id)``: pure, tested from a table
(``tests/unit/test_access.py``). ``resource_id`` is the app or group a scoped permission is
about; ``None`` means "the collection", allowed when the role may see some of it, the listing
then showing only :func:`visible` ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MAX_SCOPE",
    "Grant",
    "Kind",
    "Permission",
    "Role",
    "allows",
    "check_grant",
    "visible",
]

#: Apps or groups one grant may name.
MAX_SCOPE = 100


class Role(StrEnum):
    SUPER_ADMIN = "SUPER_ADMIN"
    APP_ADMIN = "APP_ADMIN"
    GROUP_MEMBERSHIP_ADMIN = "GROUP_MEMBERSHIP_ADMIN"
    READ_ONLY_ADMIN = "READ_ONLY_ADMIN"


class Kind(StrEnum):
    """What a permission's resource id names."""

    ORG = "org"  # nothing: the permission is about the whole organisation
    APP = "app"
    GROUP = "group"


class Permission(StrEnum):
    """One per family of endpoints and verb; each route and console page declares one."""

    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    GROUPS_READ = "groups.read"
    GROUPS_WRITE = "groups.write"
    MEMBERSHIPS_WRITE = "memberships.write"
    APPS_READ = "apps.read"
    APPS_WRITE = "apps.write"
    APPS_MANAGE = "apps.manage"  # create and delete apps
    LOGS_READ = "logs.read"
    RULES_READ = "rules.read"  # group rules
    RULES_MANAGE = "rules.manage"  # create, change, activate, delete group rules
    SCHEMA_MANAGE = "schema.manage"  # change the directory's user schema
    TOKENS_MANAGE = "tokens.manage"
    TOKENS_SELF = "tokens.self"  # a token revoking itself
    SOURCES_READ = "sources.read"  # inbound sources (never their tokens)
    SOURCES_MANAGE = "sources.manage"  # create and delete sources, issue their tokens

    @property
    def kind(self) -> Kind:
        return _KINDS.get(self, Kind.ORG)

    @property
    def is_read(self) -> bool:
        return self.value.endswith(".read")


_KINDS = {
    Permission.GROUPS_READ: Kind.GROUP,
    Permission.MEMBERSHIPS_WRITE: Kind.GROUP,
    Permission.APPS_READ: Kind.APP,
    Permission.APPS_WRITE: Kind.APP,
}


@dataclass(frozen=True)
class Grant:
    """A role and, for the scoped roles, the apps or groups it covers."""

    role: Role
    app_ids: frozenset[str] = field(default_factory=frozenset)
    group_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, role: str, app_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> Grant:
        return cls(Role(role), frozenset(app_ids), frozenset(group_ids))

    def scope(self, kind: Kind) -> frozenset[str]:
        return self.app_ids if kind == Kind.APP else self.group_ids

    def describe(self) -> str:
        """``APP_ADMIN (apps: 0oa1, 0oa2)``, for listings."""
        named = [
            f"{label}: {', '.join(sorted(ids))}"
            for label, ids in (("apps", self.app_ids), ("groups", self.group_ids))
            if ids
        ]
        return self.role.value + (f" ({'; '.join(named)})" if named else "")


SUPER = Grant(Role.SUPER_ADMIN)

#: Role → permissions held on everything.
_EVERYWHERE: dict[Role, frozenset[Permission]] = {
    Role.SUPER_ADMIN: frozenset(Permission),
    Role.READ_ONLY_ADMIN: frozenset(
        {
            Permission.USERS_READ,
            Permission.GROUPS_READ,
            Permission.APPS_READ,
            Permission.LOGS_READ,
            Permission.RULES_READ,
            Permission.SOURCES_READ,
            Permission.TOKENS_SELF,
        }
    ),
    Role.APP_ADMIN: frozenset(
        {Permission.USERS_READ, Permission.GROUPS_READ, Permission.TOKENS_SELF}
    ),
    Role.GROUP_MEMBERSHIP_ADMIN: frozenset({Permission.USERS_READ, Permission.TOKENS_SELF}),
}
#: Role → permissions held on the apps or groups its grant names only.
_SCOPED: dict[Role, frozenset[Permission]] = {
    Role.SUPER_ADMIN: frozenset(),
    Role.READ_ONLY_ADMIN: frozenset(),
    Role.APP_ADMIN: frozenset({Permission.APPS_READ, Permission.APPS_WRITE}),
    Role.GROUP_MEMBERSHIP_ADMIN: frozenset({Permission.GROUPS_READ, Permission.MEMBERSHIPS_WRITE}),
}


def allows(grant: Grant, permission: Permission, resource_id: str | None = None) -> bool:
    """Whether ``grant`` may use ``permission`` on ``resource_id`` (``None``: the collection
    of a scoped kind, or nothing for an organisation-wide permission)."""
    if permission in _EVERYWHERE[grant.role]:
        return True
    if permission not in _SCOPED[grant.role]:
        return False
    scope = grant.scope(permission.kind)
    if resource_id is None:
        return permission.is_read and bool(scope)
    return resource_id in scope


def visible(grant: Grant, kind: Kind) -> frozenset[str] | None:
    """Ids of ``kind`` a listing may show: ``None`` for all of them."""
    read = Permission.APPS_READ if kind == Kind.APP else Permission.GROUPS_READ
    if read in _EVERYWHERE[grant.role]:
        return None
    if read in _SCOPED[grant.role]:
        return grant.scope(kind)
    return frozenset()


def check_grant(role: str, app_ids: Iterable[str], group_ids: Iterable[str]) -> list[str]:
    """Causes (``field: problem``) why this grant cannot be stored; empty when it can."""
    causes: list[str] = []
    try:
        parsed = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        return [f"role: must be one of {choices}"]
    apps, groups = list(app_ids), list(group_ids)
    needs = {Role.APP_ADMIN: ("apps", apps), Role.GROUP_MEMBERSHIP_ADMIN: ("groups", groups)}
    for name, given in (("apps", apps), ("groups", groups)):
        wanted = needs.get(parsed)
        if given and (wanted is None or wanted[0] != name):
            causes.append(f"{name}: a {parsed.value} is not limited to {name}")
        if len(given) > MAX_SCOPE:
            causes.append(f"{name}: at most {MAX_SCOPE}")
    wanted = needs.get(parsed)
    if wanted is not None and not wanted[1]:
        causes.append(f"{wanted[0]}: a {parsed.value} needs at least one")
    return causes
