"""The seed's scenarios against every SCIM server and dialect profile Headwater is tested with:
scim2-server as it is and behind the fault proxy playing a vendor (AWS IAM Identity Center's
hidden members, 100-change cap and refused whole replace, with and without the member filter;
an app that answers 501 to every group PATCH, or to every PATCH), django-scim2 and scimmy,
each a real process. docs/compatibility.md's matrix is this file's outcome: a cell is a test
here.

Each scenario uses names of its own, so one server per target serves the whole module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import apps, tasks
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.servers import ScimServer, server_process
from headwater.testing.toolkit import (
    ScimReader,
    assign_group,
    change_status,
    converge,
    create_group,
    create_scim_app,
    create_user,
    make_runtime,
    push_group,
    remove_member,
    rename_group,
    require_scim_server,
    scim_reader,
    unique,
    unlink_mapping,
)

TOKEN = "compat-token"


@dataclass(frozen=True)
class Target:
    """A server, what the proxy in front of it plays, and the dialect the app is set to."""

    server: str
    vendor: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    #: scim2-server announces SCIM Bulk (scimmy always does).
    bulk: bool = False


TARGETS = {
    "scim2-server": Target("scim2-server", None),
    "aws-identity-center": Target(
        "scim2-server", "aws-identity-center", {"dialect": "aws-identity-center"}
    ),
    "aws-identity-center, no member check": Target(
        "scim2-server",
        "aws-identity-center",
        {
            "dialect": "custom",
            "group_members_returned": False,
            "members_replace": False,
            "member_check": "none",
        },
    ),
    "scimmy as aws, user groups": Target(
        "scimmy",
        "aws-identity-center",
        {
            "dialect": "custom",
            "group_members_returned": False,
            "members_replace": False,
            "member_check": "user-groups",
        },
    ),
    "501-on-patch, rfc7644": Target("scim2-server", "put-only-groups"),
    "501-on-every-patch, rfc7644": Target("scim2-server", "put-only"),
    "501-on-patch, put-only-groups": Target(
        "scim2-server", "put-only-groups", {"dialect": "put-only-groups"}
    ),
    "django-scim2, entra-style": Target("django-scim2", None, {"dialect": "entra-style"}),
    "scimmy": Target("scimmy", None, {"bulk_support": "unsupported"}),
    "scim2-server, Bulk and batched look-ups": Target(
        "scim2-server", None, {"lookup_batch_size": 50}, bulk=True
    ),
    "scimmy, Bulk and batched look-ups": Target("scimmy", None, {"lookup_batch_size": 50}),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str, bool], ScimServer]]:
    """Starts each server once, when first asked for."""
    running: dict[tuple[str, bool], ScimServer] = {}
    with contextlib.ExitStack() as stack:

        def get(name: str, bulk: bool = False) -> ScimServer:
            if (name, bulk) not in running:
                require_scim_server(name)
                process = server_process(name, bearer_token=TOKEN, bulk=bulk)
                running[name, bulk] = stack.enter_context(process)
            return running[name, bulk]

        yield get


@dataclass
class World:
    runtime: Runtime
    scim: ScimReader
    app: str
    tag: str
    proxy: FaultProxyThread

    def login(self, who: str) -> str:
        return f"{who}.{self.tag}@example.com"

    def name(self, group: str) -> str:
        return f"{group} {self.tag}"

    def members(self, group: str) -> set[str]:
        return self.scim.members(self.name(group)) or set()

    def active(self, who: str) -> bool:
        account = self.scim.user(self.login(who))
        assert account is not None
        return bool(account["active"])


@pytest.fixture(params=list(TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def world(
    target: str, servers: Callable[[str, bool], ScimServer], tmp_path: Path
) -> Iterator[World]:
    spec = TARGETS[target]
    server = servers(spec.server, spec.bulk)
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hw.db'}", tmp_path, retry_base_seconds=0.05)
    with FaultProxyThread(server.base_url, seed=3) as proxy:
        if spec.vendor:
            proxy.vendor(spec.vendor)
        app = create_scim_app(runtime, proxy.base_url, token=TOKEN, **spec.settings)
        yield World(runtime, scim_reader(spec.server, server), app, unique("c"), proxy)
    runtime.close()


def settle(runtime: Runtime) -> None:
    """Converge, letting a passing failure of a real server (django-scim2 on SQLite answers
    500 when two requests write at once) be retried: everything must still end done."""
    converge(runtime, horizon=10)


@dataclass
class Seed:
    taylor: str
    alex: str
    sam: str
    accounting: str
    pushed: str
    mapping: str


def seed(world: World, *, push_accounting: bool = False) -> Seed:
    """The seed's recipe: Accounting (three people) assigned, AppPushGroup pushed."""
    runtime = world.runtime
    people = [create_user(runtime, world.login(who)) for who in ("taylor", "alex", "sam")]
    accounting = create_group(runtime, world.name("Accounting"), people)
    pushed = create_group(runtime, world.name("AppPushGroup"), people)
    assign_group(runtime, world.app, accounting)
    mapping = push_group(runtime, world.app, accounting if push_accounting else pushed)
    settle(runtime)
    taylor, alex, sam = people
    return Seed(taylor, alex, sam, accounting, pushed, mapping)


EVERYONE = {"taylor", "alex", "sam"}


def logins(world: World, *who: str) -> set[str]:
    return {world.login(w) for w in who}


def taylor_gone(world: World) -> None:
    assert not world.active("taylor")
    taylor = world.scim.user(world.login("taylor"))
    assert taylor is not None
    for group in world.scim.groups():
        assert taylor["id"] not in {m["value"] for m in group.get("members") or []}


# -- the scenarios -----------------------------------------------------------------------------


def test_two_group_recipe(world: World) -> None:
    seed(world)
    assert world.members("AppPushGroup") == logins(world, *EVERYONE)
    assert all(world.active(who) for who in EVERYONE)


def test_unassign_wrong_order(world: World) -> None:
    """Removed from the assignment group first (the order the seed warns about)."""
    s = seed(world)
    remove_member(world.runtime, s.accounting, s.taylor)
    settle(world.runtime)
    taylor_gone(world)
    assert world.members("AppPushGroup") == logins(world, "alex", "sam")


def test_unassign_right_order(world: World) -> None:
    s = seed(world)
    remove_member(world.runtime, s.pushed, s.taylor)
    settle(world.runtime)
    assert world.members("AppPushGroup") == logins(world, "alex", "sam")
    remove_member(world.runtime, s.accounting, s.taylor)
    change_status(world.runtime, s.taylor, "deactivate")
    settle(world.runtime)
    taylor_gone(world)


def test_one_group_assigns_and_pushes(world: World) -> None:
    s = seed(world, push_accounting=True)
    assert world.members("Accounting") == logins(world, *EVERYONE)
    remove_member(world.runtime, s.accounting, s.sam)
    settle(world.runtime)
    assert world.members("Accounting") == logins(world, "taylor", "alex")
    assert not world.active("sam")


def test_link_existing_group(world: World, target: str) -> None:
    existing = world.scim.create_group(world.name("AppPushGroup"))
    s = seed(world)
    same = [g for g in world.scim.groups() if g["displayName"] == world.name("AppPushGroup")]
    assert [g["id"] for g in same] == [existing]  # never a duplicate
    if target.startswith("django-scim2"):
        # Known gap: django-scim2 cannot filter groups, so the group is not found by name and
        # its create answers 409: the mapping waits in a Task, the group is left alone.
        assert world.members("AppPushGroup") == set()
        with world.runtime.database.read() as session:
            status = session.execute(
                select(t.Task.http_status).where(t.Task.subject_id == s.mapping)
            ).scalar_one()
        assert status == 409
        return
    assert world.members("AppPushGroup") == logins(world, *EVERYONE)


def test_rename(world: World) -> None:
    s = seed(world)
    rename_group(world.runtime, s.pushed, world.name("Renamed"))
    settle(world.runtime)
    assert world.scim.group(world.name("AppPushGroup")) is None
    assert world.members("Renamed") == logins(world, *EVERYONE)


def test_unlink_keep(world: World) -> None:
    s = seed(world)
    unlink_mapping(world.runtime, world.app, s.mapping, delete_target=False)
    remove_member(world.runtime, s.pushed, s.alex)
    settle(world.runtime)
    assert world.members("AppPushGroup") == logins(world, *EVERYONE)


def test_unlink_delete(world: World) -> None:
    s = seed(world)
    unlink_mapping(world.runtime, world.app, s.mapping, delete_target=True)
    settle(world.runtime)
    assert world.scim.group(world.name("AppPushGroup")) is None
    assert world.active("taylor")


#: Targets whose members are hidden and checked one account at a time (by the member filter, or
#: by reading the account's groups).
CHECKED = {"aws-identity-center": "members%20eq", "scimmy as aws, user groups": "attributes=groups"}


def test_drift_made_downstream_is_repaired(world: World, target: str) -> None:
    """A member removed by hand comes back; a linked account added by hand is taken out where
    the app lets Headwater see, overwrite or check members (elsewhere the API says drift repair
    is unavailable, and it is not)."""
    s = seed(world)
    outsider = create_user(world.runtime, world.login("outsider"))
    other = create_group(world.runtime, world.name("Other"), [outsider])
    assign_group(world.runtime, world.app, other)
    settle(world.runtime)
    group = world.scim.group(world.name("AppPushGroup"))
    assert group is not None
    sam = world.scim.user(world.login("sam"))
    extra = world.scim.user(world.login("outsider"))
    assert sam is not None and extra is not None
    world.scim.patch_members(group["id"], add=[extra["id"]], remove=[sam["id"]])
    assert world.members("AppPushGroup") == logins(world, "taylor", "alex", "outsider")
    with world.runtime.database.transaction() as session:
        tasks.reconcile_app(session, SYSTEM, world.app)
        repair = apps.capabilities_of(apps.get_app(session, world.app))["driftRepair"]
    world.proxy.clear_log()
    settle(world.runtime)
    if target in CHECKED:
        assert any(CHECKED[target] in r.query for r in world.proxy.requests("GET"))
    if repair == "AVAILABLE":
        assert world.members("AppPushGroup") == logins(world, *EVERYONE)
    else:
        assert world.members("AppPushGroup") == logins(world, *EVERYONE, "outsider")
    assert s.mapping
