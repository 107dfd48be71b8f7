"""The engine against vendor behaviours (the fault proxy in front of a real scim2-server): what
is sent to a group just created, what a 501 teaches, when bisection stops, and groups read
without members."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.capabilities import Capabilities
from headwater.runtime import Runtime
from headwater.services import tasks
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    ScimReader,
    api_client,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    ok,
    push_group,
    unique,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ScimServerProcess]:
    with ScimServerProcess() as running:
        yield running


@pytest.fixture
def proxy(server: ScimServerProcess) -> Iterator[FaultProxyThread]:
    with FaultProxyThread(server.base_url, seed=9) as running:
        yield running


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(f"sqlite:///{tmp_path / 'hw.db'}", tmp_path, retry_base_seconds=0.02)
    yield rt
    rt.close()


def pushed_team(runtime: Runtime, app: str, size: int = 8) -> tuple[str, str, list[str]]:
    """A group of ``size`` people, assigned to the app and pushed; (name, mapping, logins)."""
    prefix = unique("d")
    people = create_users(runtime, size, prefix=prefix)
    name = f"Team {prefix}"
    group = create_group(runtime, name, people)
    assign_group(runtime, app, group)
    mapping = push_group(runtime, app, group)
    logins = [f"{prefix}{n:05d}@example.com" for n in range(size)]
    return name, mapping, logins


def group_patches(proxy: FaultProxyThread) -> list[list[dict[str, Any]]]:
    return [json.loads(r.body)["Operations"] for r in proxy.requests("PATCH", r"/Groups/")]


def test_a_group_just_created_is_filled_by_adds_never_replaced(
    runtime: Runtime, server: ScimServerProcess, proxy: FaultProxyThread
) -> None:
    """Defect 3: a new group is known to be empty; an app that refuses a whole replace (and
    hides members) still gets every member, in batches within its cap."""
    proxy.vendor("aws-identity-center")
    app = create_scim_app(
        runtime, proxy.base_url, dialect="aws-identity-center", membership_batch_size=1000
    )
    name, _, logins = pushed_team(runtime, app, size=130)
    converge(runtime)
    assert ScimReader(server.base_url).members(name) == set(logins)
    ops = [op for batch in group_patches(proxy) for op in batch]
    assert ops and {op["op"] for op in ops} == {"add"}
    # nothing refused, nothing capped
    assert not [r for r in proxy.requests() if r.fault and r.fault != "hide_members"]
    assert max(sum(len(op["value"]) for op in b) for b in group_patches(proxy)) <= 100


def test_a_501_to_patch_is_redone_by_put_and_remembered(
    runtime: Runtime, server: ScimServerProcess, proxy: FaultProxyThread
) -> None:
    """Defect 2: 501 is permanent for that request; the change is made by PUT at once, the app's
    capability is stored, and later changes go straight to PUT."""
    proxy.put_only_groups()
    app = create_scim_app(runtime, proxy.base_url)
    name, _, logins = pushed_team(runtime, app, size=3)
    converge(runtime)
    assert ScimReader(server.base_url).members(name) == set(logins)
    with runtime.database.read() as session:
        row = session.get(t.App, app)
        assert row is not None
        learned = Capabilities.from_json(row.capabilities)
        events = session.execute(
            select(t.Event.event_type).where(
                t.Event.event_type == "app.headwater.capabilities.update"
            )
        ).all()
    assert learned.patch is False and learned.patch_refused_at is not None
    assert len(events) == 1
    patches = proxy.count("PATCH", r"/Groups/")
    name2, _, logins2 = pushed_team(runtime, app, size=2)
    converge(runtime)
    assert ScimReader(server.base_url).members(name2) == set(logins2)
    assert proxy.count("PATCH", r"/Groups/") == patches  # no PATCH tried any more


def test_bisection_stops_when_the_request_itself_is_refused(
    runtime: Runtime, proxy: FaultProxyThread
) -> None:
    """Defect 6: both halves refused alike means the operation is refused, not N members."""
    app = create_scim_app(runtime, proxy.base_url)
    proxy.status(
        400,
        method="PATCH",
        path=r"/Groups/",
        body={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "invalidSyntax",
            "detail": "unsupported op",
        },
    )
    _, mapping, _ = pushed_team(runtime, app, size=8)
    converge(runtime, settled=False)
    assert proxy.count("PATCH", r"/Groups/") == 3  # the whole, then each half: not 2N-1 = 15
    with runtime.database.read() as session:
        message = session.execute(
            select(t.Task.message).where(t.Task.subject_id == mapping)
        ).scalar_one()
    assert "refuses the operation itself" in message


def test_a_group_read_without_members_is_unknown_not_empty(
    runtime: Runtime, server: ScimServerProcess, proxy: FaultProxyThread
) -> None:
    """Defect 5: an app that hides members is never read as holding nobody: a full reconcile
    overwrites the membership where the dialect allows it (removing a linked account added by
    hand), and the API says where drift repair is unavailable."""
    app = create_scim_app(runtime, proxy.base_url)
    name, _, logins = pushed_team(runtime, app, size=3)
    extra_name, _, extra = pushed_team(runtime, app, size=1)
    converge(runtime)
    scim = ScimReader(server.base_url)
    group = scim.group(name)
    outsider = scim.user(extra[0])
    assert group is not None and outsider is not None
    scim.patch_members(group["id"], add=[outsider["id"]])
    proxy.hide_members()
    proxy.clear_log()
    with runtime.database.transaction() as session:
        tasks.reconcile_app(session, SYSTEM, app)
    converge(runtime)
    assert scim.members(name) == set(logins)
    ops = [op["op"] for batch in group_patches(proxy) for op in batch]
    assert "replace" in ops  # one overwrite, not every member re-added one by one
    with api_client(runtime) as client:
        shown = ok(client.get(f"/api/v1/apps/{app}"))["capabilities"]
        assert shown["driftRepair"] == "AVAILABLE"
        ok(
            client.put(
                f"/api/v1/apps/{app}/provisioning/settings", json={"dialect": "aws-identity-center"}
            )
        )
        shown = ok(client.get(f"/api/v1/apps/{app}"))["capabilities"]
        assert shown["driftRepair"] == "AVAILABLE" and shown["memberCheck"] == "group-filter"
        ok(client.put(f"/api/v1/apps/{app}/provisioning/settings", json={"memberCheck": "none"}))
        shown = ok(client.get(f"/api/v1/apps/{app}"))["capabilities"]
    assert shown["driftRepair"] == "UNAVAILABLE" and shown["membersReplace"] is False
    assert shown["announced"]["patch"]["supported"] is True
    assert extra_name


def _checks(proxy: FaultProxyThread) -> list[str]:
    """The member filters sent (``GET /Groups?filter=id eq ... and members eq ...``)."""
    return [r.query for r in proxy.requests("GET", r"/Groups$") if "members%20eq" in r.query]


def test_hidden_members_are_checked_one_by_one_and_drift_is_repaired(
    runtime: Runtime, server: ScimServerProcess, proxy: FaultProxyThread
) -> None:
    """AWS IAM Identity Center's behaviours: members hidden, no whole replace. A linked account
    added to the pushed group by hand is found by the member filter and taken out; a member
    removed by hand is added back; a member no account stands for stays (unknown)."""
    proxy.vendor("aws-identity-center")
    app = create_scim_app(runtime, proxy.base_url, dialect="aws-identity-center")
    name, _, logins = pushed_team(runtime, app, size=3)
    _, _, others = pushed_team(runtime, app, size=2)
    converge(runtime)
    scim = ScimReader(server.base_url)
    group = scim.group(name)
    outsider, gone = scim.user(others[0]), scim.user(logins[0])
    assert group is not None and outsider is not None and gone is not None
    stranger = scim.create_user(f"{unique('s')}@example.com")
    scim.patch_members(group["id"], add=[outsider["id"], stranger], remove=[gone["id"]])
    proxy.clear_log()
    with runtime.database.transaction() as session:
        tasks.reconcile_app(session, SYSTEM, app)
    converge(runtime)
    held = scim.members(name)
    assert held is not None and set(logins) <= held, "the member removed by hand is back"
    assert others[0] not in held, "the linked account added by hand is out"
    ids = {m["value"] for m in (scim.group(name) or {}).get("members", [])}
    assert stranger in ids, "a member no account stands for is never removed on a guess"
    # Two pushed groups, each checked for the linked accounts it should not hold (the other
    # team's two, and the strays of this one: 2 + 3 checks), never for its wanted members.
    assert len(_checks(proxy)) == 5
    with api_client(runtime) as client:
        shown = ok(client.get(f"/api/v1/apps/{app}"))["capabilities"]
    assert shown["driftRepair"] == "AVAILABLE" and "checks up to 200" in shown["driftRepairNote"]


def test_member_checks_stay_within_the_budget_per_pass(
    runtime: Runtime, server: ScimServerProcess, proxy: FaultProxyThread
) -> None:
    """A large app is sampled, never checked in full every pass: the budget bounds the checks
    one full reconcile sends, and repeated passes still find the stray member."""
    proxy.vendor("aws-identity-center")
    app = create_scim_app(
        runtime, proxy.base_url, dialect="aws-identity-center", member_check_budget=3
    )
    name, _, _ = pushed_team(runtime, app, size=2)
    _, _, others = pushed_team(runtime, app, size=10)
    converge(runtime)
    scim = ScimReader(server.base_url)
    group, outsider = scim.group(name), scim.user(others[4])
    assert group is not None and outsider is not None
    scim.patch_members(group["id"], add=[outsider["id"]])
    passes = 0
    while others[4] in (scim.members(name) or set()):
        passes += 1
        assert passes <= 40, "the stray member was never found"
        proxy.clear_log()
        with runtime.database.transaction() as session:
            tasks.reconcile_app(session, SYSTEM, app)
        converge(runtime)
        assert len(_checks(proxy)) <= 3
