"""Property: whatever admins do, in whatever order, once the worker has drained the downstream
equals the desired state, with no duplicate account and no member without a live account.

Each example runs a random sequence of directory, assignment and Group Push actions through the
HTTP API against a fresh runtime (SQLite) and a fresh in-process scim2-server, draining the
worker at random points and at the end. Actions that are invalid in the state reached (renaming
onto a taken name, activating an active user...) are refused by the API with a 4xx; that is
fine, a 5xx never is.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    InProcessScim,
    ScimReader,
    api_client,
    converge,
    create_scim_app,
    make_runtime,
)

USERS = 4
GROUPS = 3
NAMES = ("alpha", "beta", "gamma", "delta")

user_index = st.integers(0, USERS - 1)
group_index = st.integers(0, GROUPS - 1)

_membership_changes = [
    st.tuples(st.just("add_member"), group_index, user_index),
    st.tuples(st.just("remove_member"), group_index, user_index),
]
_grants = [
    st.tuples(st.just("assign_group"), group_index),
    st.tuples(st.just("unassign_group"), group_index),
    st.tuples(st.just("assign_user"), user_index),
    st.tuples(st.just("unassign_user"), user_index),
]
_mappings = [
    st.tuples(st.just("push"), group_index),
    st.tuples(st.just("deactivate_mapping"), group_index),
    st.tuples(st.just("activate_mapping"), group_index),
    st.tuples(st.just("delete_mapping"), group_index, st.booleans()),
    st.tuples(st.just("rename"), group_index, st.sampled_from(NAMES)),
]
_users = [
    st.tuples(st.just("create_user"), user_index),
    st.tuples(st.just("deactivate"), user_index),
    st.tuples(st.just("reactivate"), user_index),
]
#: Memberships and grants are listed twice: they are what makes accounts and pushed members.
ACTIONS = st.one_of(
    *_membership_changes,
    *_membership_changes,
    *_grants,
    *_grants,
    *_mappings,
    *_users,
    st.tuples(st.just("drain")),
)


@dataclass(frozen=True)
class Start:
    """Where a scenario starts: users 0-2 exist (user 3 only if an action creates it), some
    in groups; some groups assigned, some pushed."""

    members: frozenset[tuple[int, int]]
    assigned: frozenset[int]
    pushed: frozenset[int]


STARTS = st.builds(
    Start,
    members=st.frozensets(st.tuples(group_index, st.integers(0, USERS - 2)), max_size=7),
    assigned=st.frozensets(group_index, max_size=2),
    pushed=st.frozensets(group_index, max_size=2),
)


@dataclass
class World:
    """The API client and the ids of what exists so far."""

    client: TestClient
    app_id: str
    groups: list[str]
    users: dict[int, str] = field(default_factory=dict)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, f"/api/v1{path}", **kwargs)
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        return response

    def mapping_of(self, group: int) -> str | None:
        params = {"sourceGroupId": self.groups[group]}
        found = self.call("GET", f"/apps/{self.app_id}/group-push/mappings", params=params).json()
        return found[0]["id"] if found else None


def _user(world: World, index: int) -> str | None:
    return world.users.get(index)


def act(world: World, action: tuple[Any, ...]) -> bool:
    """Perform one action; returns True when the caller should drain now."""
    kind, *args = action
    if kind == "drain":
        return True
    handler = HANDLERS[kind]
    handler(world, *args)
    return False


def _create_user(world: World, index: int) -> None:
    if index in world.users:
        return
    login = f"user{index}@example.com"
    profile = {"login": login, "email": login, "firstName": f"U{index}", "lastName": "Test"}
    response = world.call("POST", "/users?activate=true", json={"profile": profile})
    world.users[index] = response.json()["id"]


def _lifecycle(action: str) -> Any:
    def run(world: World, index: int) -> None:
        user = _user(world, index)
        if user is not None:
            world.call("POST", f"/users/{user}/lifecycle/{action}")

    return run


def _membership(method: str) -> Any:
    def run(world: World, group: int, index: int) -> None:
        user = _user(world, index)
        if user is not None:
            world.call(method, f"/groups/{world.groups[group]}/users/{user}")

    return run


def _assign_group(world: World, group: int) -> None:
    world.call("PUT", f"/apps/{world.app_id}/groups/{world.groups[group]}", json={"priority": 0})


def _unassign_group(world: World, group: int) -> None:
    world.call("DELETE", f"/apps/{world.app_id}/groups/{world.groups[group]}")


def _assign_user(world: World, index: int) -> None:
    user = _user(world, index)
    if user is not None:
        world.call("POST", f"/apps/{world.app_id}/users", json={"id": user, "scope": "USER"})


def _unassign_user(world: World, index: int) -> None:
    user = _user(world, index)
    if user is not None:
        world.call("DELETE", f"/apps/{world.app_id}/users/{user}")


def _push(world: World, group: int) -> None:
    name = world.call("GET", f"/groups/{world.groups[group]}").json()["profile"]["name"]
    body = {"sourceGroupId": world.groups[group], "targetGroupName": name}
    world.call("POST", f"/apps/{world.app_id}/group-push/mappings", json=body)


def _set_status(status: str) -> Any:
    def run(world: World, group: int) -> None:
        mapping = world.mapping_of(group)
        if mapping is not None:
            path = f"/apps/{world.app_id}/group-push/mappings/{mapping}"
            world.call("PATCH", path, json={"status": status})

    return run


def _delete_mapping(world: World, group: int, delete_target: bool) -> None:
    mapping = world.mapping_of(group)
    if mapping is None:
        return
    path = f"/apps/{world.app_id}/group-push/mappings/{mapping}"
    world.call("PATCH", path, json={"status": "INACTIVE"})
    world.call("DELETE", f"{path}?deleteTargetGroup={str(delete_target).lower()}")


def _rename(world: World, group: int, name: str) -> None:
    world.call("PUT", f"/groups/{world.groups[group]}", json={"profile": {"name": name}})


HANDLERS: dict[str, Any] = {
    "create_user": _create_user,
    "deactivate": _lifecycle("deactivate"),
    "reactivate": _lifecycle("activate"),
    "add_member": _membership("PUT"),
    "remove_member": _membership("DELETE"),
    "assign_group": _assign_group,
    "unassign_group": _unassign_group,
    "assign_user": _assign_user,
    "unassign_user": _unassign_user,
    "push": _push,
    "deactivate_mapping": _set_status("INACTIVE"),
    "activate_mapping": _set_status("ACTIVE"),
    "delete_mapping": _delete_mapping,
    "rename": _rename,
}


# --- The desired state, read from the directory -----------------------------------------------


@dataclass(frozen=True)
class Desired:
    #: Logins (lowercased) that must hold an active account.
    logins: frozenset[str]
    #: ACTIVE mappings: downstream name → logins of source members with an account.
    groups: dict[str, frozenset[str]]
    #: External ids of downstream groups Headwater still manages (any mapping status).
    managed: frozenset[str]
    #: Messages of open Tasks.
    tasks: tuple[str, ...]
    keys: int


def desired_state(runtime: Runtime, app_id: str) -> Desired:
    with runtime.database.read() as session:
        live = {
            row.id: row.login.lower()
            for row in session.execute(
                select(t.User.id, t.User.login).where(t.User.status.in_(["ACTIVE", "PROVISIONED"]))
            )
        }
        assigned = set(
            session.execute(
                select(t.AppUserAssignment.user_id).where(t.AppUserAssignment.app_id == app_id)
            ).scalars()
        ) | set(
            session.execute(
                select(t.Membership.user_id)
                .join(t.AppGroupAssignment, t.AppGroupAssignment.group_id == t.Membership.group_id)
                .where(t.AppGroupAssignment.app_id == app_id)
            ).scalars()
        )
        wanted = {user: login for user, login in live.items() if user in assigned}
        groups: dict[str, frozenset[str]] = {}
        managed: set[str] = set()
        for mapping in session.execute(
            select(t.PushMapping).where(t.PushMapping.app_id == app_id)
        ).scalars():
            target = (
                session.get(t.Group, mapping.target_group_id) if mapping.target_group_id else None
            )
            if target is not None and target.external_id:
                managed.add(target.external_id)
            if mapping.status != "ACTIVE" or mapping.source_group_id is None:
                continue
            source = session.get(t.Group, mapping.source_group_id)
            assert source is not None
            members = session.execute(
                select(t.Membership.user_id).where(t.Membership.group_id == source.id)
            ).scalars()
            name = mapping.target_group_name or source.name
            groups[name] = frozenset(wanted[m] for m in members if m in wanted)
        tasks = tuple(session.execute(select(t.Task.message)).scalars())
        keys = len(session.execute(select(t.ReconcileKey.subject_id)).all())
    return Desired(frozenset(wanted.values()), groups, frozenset(managed), tasks, keys)


def check_converged(runtime: Runtime, app_id: str, scim: ScimReader) -> None:
    desired = desired_state(runtime, app_id)
    assert desired.keys == 0
    # The one failure allowed: renaming onto the name of a group left downstream by an unlink
    # that kept it (Okta's "group already exists"); that mapping is ERROR until an admin acts.
    assert all("already exists" in message for message in desired.tasks), desired.tasks
    accounts = scim.users()
    names = [a["userName"].lower() for a in accounts]
    assert len(names) == len(set(names)), f"duplicate accounts: {sorted(names)}"
    active = {a["id"]: a["userName"].lower() for a in accounts if a.get("active", True)}
    assert set(active.values()) == desired.logins
    downstream_groups = scim.groups()
    by_name = {g["displayName"]: g for g in downstream_groups}
    for name, logins in desired.groups.items():
        assert name in by_name, f"pushed group {name} missing downstream"
        members = {m["value"] for m in by_name[name].get("members") or []}
        assert {active.get(m, m) for m in members} == logins, name
    for group in downstream_groups:
        if group["id"] not in desired.managed:
            continue  # unlinked with "keep": no longer Headwater's
        for member in group.get("members") or []:
            assert member["value"] in active, f"{group['displayName']}: dead member"


# --- The property -----------------------------------------------------------------------------


@contextmanager
def fresh_world() -> Iterator[tuple[Runtime, TestClient]]:
    """A runtime on a new SQLite database, and an API client (one per Hypothesis example)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        runtime = make_runtime(f"sqlite:///{path / 'hw.db'}", path)
        try:
            with api_client(runtime, raise_server_exceptions=True) as client:
                yield runtime, client
        finally:
            runtime.close()


def run_scenario(
    runtime: Runtime,
    client: TestClient,
    start: Start,
    actions: list[Any],
    *,
    bulk: bool = False,
    **app_settings: Any,
) -> None:
    downstream = InProcessScim(bulk=bulk).serve(runtime)
    app_id = create_scim_app(runtime, downstream.base_url, "Property", **app_settings)
    play(runtime, client, app_id, start, actions)
    check_converged(runtime, app_id, downstream.scim)


def play(
    runtime: Runtime, client: TestClient, app_id: str, start: Start, actions: list[Any]
) -> None:
    groups = [
        client.post("/api/v1/groups", json={"profile": {"name": f"group{i}"}}).json()["id"]
        for i in range(GROUPS)
    ]
    world = World(client, app_id, groups)
    for index in range(USERS - 1):
        _create_user(world, index)
    for group, index in sorted(start.members):
        _membership("PUT")(world, group, index)
    for group in sorted(start.assigned):
        _assign_group(world, group)
    for group in sorted(start.pushed):
        _push(world, group)
    for action in actions:
        if act(world, action):
            converge(runtime)
    converge(runtime)


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(start=STARTS, actions=st.lists(ACTIONS, min_size=5, max_size=30))
def test_any_sequence_converges_to_the_desired_state(start: Start, actions: list[Any]) -> None:
    with fresh_world() as (runtime, client):
        run_scenario(runtime, client, start, actions)


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    start=STARTS,
    actions=st.lists(ACTIONS, min_size=5, max_size=30),
    bulk=st.booleans(),
    lookup_batch_size=st.sampled_from([0, 2, 50]),
    update_method=st.sampled_from(["PUT", "PATCH"]),
    lookup_before_create=st.booleans(),
)
def test_any_sequence_converges_with_bulk_and_batched_lookups(
    start: Start,
    actions: list[Any],
    bulk: bool,
    lookup_batch_size: int,
    update_method: str,
    lookup_before_create: bool,
) -> None:
    """The same property with the app options that change how requests are sent: writes in
    SCIM Bulk requests (the app announces Bulk), accounts looked up several at a time, or
    created first (looked up only on a 409)."""
    with fresh_world() as (runtime, client):
        run_scenario(
            runtime,
            client,
            start,
            actions,
            bulk=bulk,
            lookup_batch_size=lookup_batch_size,
            update_method=update_method,
            lookup_before_create=lookup_before_create,
        )


#: A vendor's behaviour played by the fault proxy, and the dialect the app is set to.
VENDORS: dict[str, tuple[str, dict[str, Any]]] = {
    "hidden members": ("aws-identity-center", {"dialect": "aws-identity-center"}),
    "PUT-only groups": ("put-only-groups", {"dialect": "put-only-groups"}),
}
#: An unlinked group kept downstream and pushed again is linked with members an app that
#: hides them cannot show (docs/compatibility.md): unlinking deletes the group here.
VENDOR_ACTIONS = ACTIONS.filter(lambda a: not (a[0] == "delete_mapping" and not a[2]))


@pytest.mark.slow
@pytest.mark.parametrize("vendor", list(VENDORS))
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(start=STARTS, actions=st.lists(VENDOR_ACTIONS, min_size=5, max_size=20))
def test_any_sequence_converges_against_vendor_behaviours(
    vendor: str, start: Start, actions: list[Any]
) -> None:
    """Members hidden on read (and no whole replace, 100 changes per PATCH), or groups that
    take only PUT (501 to PATCH): still converged, and every leaving account deactivated."""
    behaviour, app_settings = VENDORS[vendor]
    with (
        fresh_world() as (runtime, client),
        ScimServerProcess() as server,
        FaultProxyThread(server.base_url, seed=1) as proxy,
    ):
        proxy.vendor(behaviour)
        app_id = create_scim_app(runtime, proxy.base_url, "Property", **app_settings)
        play(runtime, client, app_id, start, actions)
        check_converged(runtime, app_id, ScimReader(server.base_url))
