"""Who may do what, as a table: role, scope, permission and resource give allowed or not."""

from __future__ import annotations

import pytest

from headwater.domain.access import (
    MAX_SCOPE,
    Grant,
    Kind,
    Permission,
    Role,
    allows,
    check_grant,
    visible,
)

P = Permission
SUPER = Grant.of("SUPER_ADMIN")
READ_ONLY = Grant.of("READ_ONLY_ADMIN")
APP_ADMIN = Grant.of("APP_ADMIN", app_ids=["0oaMine"])
GROUP_ADMIN = Grant.of("GROUP_MEMBERSHIP_ADMIN", group_ids=["00gMine"])

CASES = [
    # super admin: everything, anywhere
    *[(SUPER, permission, None, True) for permission in Permission],
    (SUPER, P.APPS_WRITE, "0oaAny", True),
    (SUPER, P.MEMBERSHIPS_WRITE, "00gAny", True),
    # read-only: every read, no write, no tokens
    (READ_ONLY, P.USERS_READ, None, True),
    (READ_ONLY, P.GROUPS_READ, "00gAny", True),
    (READ_ONLY, P.APPS_READ, "0oaAny", True),
    (READ_ONLY, P.APPS_READ, None, True),
    (READ_ONLY, P.LOGS_READ, None, True),
    (READ_ONLY, P.USERS_WRITE, None, False),
    (READ_ONLY, P.GROUPS_WRITE, None, False),
    (READ_ONLY, P.MEMBERSHIPS_WRITE, "00gAny", False),
    (READ_ONLY, P.APPS_WRITE, "0oaAny", False),
    (READ_ONLY, P.APPS_MANAGE, None, False),
    (READ_ONLY, P.TOKENS_MANAGE, None, False),
    (READ_ONLY, P.TOKENS_SELF, None, True),
    (READ_ONLY, P.RULES_READ, None, True),
    (READ_ONLY, P.RULES_MANAGE, None, False),
    (SUPER, P.RULES_MANAGE, None, True),
    (APP_ADMIN, P.RULES_READ, None, False),
    (APP_ADMIN, P.RULES_MANAGE, None, False),
    (GROUP_ADMIN, P.RULES_MANAGE, None, False),
    # app admin: its apps, read and write; reads the directory; nothing else
    (APP_ADMIN, P.APPS_READ, "0oaMine", True),
    (APP_ADMIN, P.APPS_WRITE, "0oaMine", True),
    (APP_ADMIN, P.APPS_READ, "0oaOther", False),
    (APP_ADMIN, P.APPS_WRITE, "0oaOther", False),
    (APP_ADMIN, P.APPS_READ, None, True),  # the list, filtered
    (APP_ADMIN, P.APPS_WRITE, None, False),
    (APP_ADMIN, P.APPS_MANAGE, None, False),
    (APP_ADMIN, P.USERS_READ, None, True),
    (APP_ADMIN, P.GROUPS_READ, "00gAny", True),
    (APP_ADMIN, P.USERS_WRITE, None, False),
    (APP_ADMIN, P.GROUPS_WRITE, None, False),
    (APP_ADMIN, P.MEMBERSHIPS_WRITE, "00gAny", False),
    (APP_ADMIN, P.LOGS_READ, None, False),
    (APP_ADMIN, P.TOKENS_MANAGE, None, False),
    (APP_ADMIN, P.TOKENS_SELF, None, True),
    # group membership admin: its groups' members; reads people; nothing else
    (GROUP_ADMIN, P.MEMBERSHIPS_WRITE, "00gMine", True),
    (GROUP_ADMIN, P.MEMBERSHIPS_WRITE, "00gOther", False),
    (GROUP_ADMIN, P.GROUPS_READ, "00gMine", True),
    (GROUP_ADMIN, P.GROUPS_READ, "00gOther", False),
    (GROUP_ADMIN, P.GROUPS_READ, None, True),  # the list, filtered
    (GROUP_ADMIN, P.GROUPS_WRITE, None, False),
    (GROUP_ADMIN, P.USERS_READ, None, True),
    (GROUP_ADMIN, P.USERS_WRITE, None, False),
    (GROUP_ADMIN, P.APPS_READ, None, False),
    (GROUP_ADMIN, P.APPS_READ, "0oaAny", False),
    (GROUP_ADMIN, P.APPS_WRITE, "0oaAny", False),
    (GROUP_ADMIN, P.LOGS_READ, None, False),
    (GROUP_ADMIN, P.TOKENS_MANAGE, None, False),
    # an id in the wrong scope kind grants nothing
    (Grant.of("APP_ADMIN", app_ids=["00gMine"]), P.MEMBERSHIPS_WRITE, "00gMine", False),
    # a scoped role with an empty scope sees nothing
    (Grant.of("APP_ADMIN"), P.APPS_READ, None, False),
]


@pytest.mark.parametrize(
    ("grant", "permission", "resource", "expected"),
    CASES,
    ids=[f"{g.role.value}-{p.value}-{r}" for g, p, r, _ in CASES],
)
def test_allows(grant: Grant, permission: Permission, resource: str | None, expected: bool) -> None:
    assert allows(grant, permission, resource) is expected


@pytest.mark.parametrize(
    ("grant", "kind", "expected"),
    [
        (SUPER, Kind.APP, None),
        (SUPER, Kind.GROUP, None),
        (READ_ONLY, Kind.APP, None),
        (APP_ADMIN, Kind.APP, frozenset({"0oaMine"})),
        (APP_ADMIN, Kind.GROUP, None),
        (GROUP_ADMIN, Kind.GROUP, frozenset({"00gMine"})),
        (GROUP_ADMIN, Kind.APP, frozenset()),
    ],
)
def test_visible(grant: Grant, kind: Kind, expected: frozenset[str] | None) -> None:
    assert visible(grant, kind) == expected


@pytest.mark.parametrize(
    ("role", "apps", "groups", "problem"),
    [
        ("SUPER_ADMIN", [], [], None),
        ("READ_ONLY_ADMIN", [], [], None),
        ("APP_ADMIN", ["0oa1"], [], None),
        ("GROUP_MEMBERSHIP_ADMIN", [], ["00g1"], None),
        ("OWNER", [], [], "role: must be one of"),
        ("APP_ADMIN", [], [], "apps: a APP_ADMIN needs at least one"),
        ("GROUP_MEMBERSHIP_ADMIN", [], [], "groups: a GROUP_MEMBERSHIP_ADMIN needs at least one"),
        ("SUPER_ADMIN", ["0oa1"], [], "apps: a SUPER_ADMIN is not limited to apps"),
        ("APP_ADMIN", ["0oa1"], ["00g1"], "groups: a APP_ADMIN is not limited to groups"),
        ("APP_ADMIN", [f"0oa{i}" for i in range(MAX_SCOPE + 1)], [], f"apps: at most {MAX_SCOPE}"),
    ],
)
def test_check_grant(role: str, apps: list[str], groups: list[str], problem: str | None) -> None:
    causes = check_grant(role, apps, groups)
    if problem is None:
        assert causes == []
    else:
        assert any(cause.startswith(problem) for cause in causes), causes


def test_every_role_has_a_row() -> None:
    for role in Role:
        grant = Grant(role)
        assert allows(grant, P.TOKENS_SELF)
        assert allows(grant, P.TOKENS_MANAGE) is (role == Role.SUPER_ADMIN)
