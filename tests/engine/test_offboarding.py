"""Offboarding always wins: a leaving account's membership removals go first, but when they
fail for good, or keep failing past the app's offboarding deadline, the account is deactivated
anyway and the membership is reported stale, retried by its push mapping, until it is gone."""

from __future__ import annotations

from sqlalchemy import select

from headwater import clock
from headwater.db import tables as t
from headwater.domain.capabilities import Capabilities
from headwater.engine import preview
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    ScimReader,
    api_client,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    proxied_scim_server,
    push_group,
    queued,
    unassign_group,
)

LOGIN = "taylor@example.com"


def _members(scim: ScimReader, name: str) -> set[str]:
    group = scim.group(name)
    assert group is not None
    return {m["value"] for m in group.get("members", [])}


def _stale(runtime: Runtime) -> list[tuple[str, str]]:
    """(mapping id, user id) of every stale membership."""
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.PushMember.mapping_id, t.PushMember.user_id).where(
                t.PushMember.stale_since.is_not(None)
            )
        )
        return [(row.mapping_id, row.user_id) for row in rows]


def test_a_refused_removal_does_not_keep_the_account_active(runtime: Runtime) -> None:
    with proxied_scim_server() as (server, proxy):
        scim = ScimReader(server.base_url)
        taylor = create_user(runtime, LOGIN)
        staff = create_group(runtime, "Staff", [taylor])
        pushed = create_group(runtime, "Pushed", [taylor])
        app_id = create_scim_app(runtime, proxy.base_url)
        assign_group(runtime, app_id, staff)
        mapping = push_group(runtime, app_id, pushed)
        converge(runtime)
        account = scim.user(LOGIN)
        assert account is not None and account["active"] is True
        assert _members(scim, "Pushed") == {account["id"]}

        refusal = proxy.status(400, method="PATCH", path=r"/Groups/")
        unassign_group(runtime, app_id, staff)
        converge(runtime, settled=False)
        account = scim.user(LOGIN)
        assert account is not None and account["active"] is False, "offboarding held back"
        assert _members(scim, "Pushed") == {account["id"]}, "the removal was refused"
        assert _stale(runtime) == [(mapping, taylor)]
        with api_client(runtime) as client:
            tasks = ok(client.get(f"/api/v1/apps/{app_id}/tasks"))
            assert any(task["operation"] == "RemoveMembers" for task in tasks), tasks
            metrics = client.get("/metrics").text
            assert f'headwater_stale_memberships{{app="{app_id}"}} 1.0' in metrics
        explained = preview.explain_user(runtime.database, app_id, taylor)
        assert any("could not be removed" in reason for reason in explained["reasons"])

        # The downstream accepts removals again: retrying the Task finishes the job.
        proxy.remove(refusal)
        with api_client(runtime) as client:
            ok(client.post(f"/api/v1/apps/{app_id}/tasks/retry"), 202)
        converge(runtime)
        assert _members(scim, "Pushed") == set()
        assert _stale(runtime) == []
        assert not queued(runtime)


def test_a_removal_that_keeps_failing_waits_no_longer_than_the_deadline(runtime: Runtime) -> None:
    with proxied_scim_server() as (server, proxy):
        scim = ScimReader(server.base_url)
        taylor = create_user(runtime, LOGIN)
        staff = create_group(runtime, "Staff", [taylor])
        app_id = create_scim_app(runtime, proxy.base_url, offboarding_deadline=5)
        assign_group(runtime, app_id, staff)
        push_group(runtime, app_id, staff)
        converge(runtime)

        proxy.status(503, method="PATCH", path=r"/Groups/")
        started = clock.utcnow()
        unassign_group(runtime, app_id, staff)
        converge(runtime, horizon=7, timeout=60, settled=False)
        account = scim.user(LOGIN)
        assert account is not None and account["active"] is False
        with runtime.database.read() as session:
            link = session.get(t.AppUserLink, (app_id, taylor))
            assert link is not None and link.status_changed is not None
            took = (clock.as_utc(link.status_changed) - started).total_seconds()
        assert 5 <= took < 10, f"deactivated after {took:.1f} s (deadline 5 s)"
        patches = proxy.requests("PATCH", r"/Groups/")
        assert len(patches) >= 2, "the removal was retried before the deadline"
        assert len(_stale(runtime)) == 1


def test_an_app_that_refuses_every_patch_still_deactivates_within_the_deadline(
    runtime: Runtime,
) -> None:
    """501 to every PATCH (users and groups), and the group PUT that would take the membership
    out keeps failing: the account is deactivated by a PUT of the whole account within the
    deadline, and the app is remembered as refusing PATCH."""
    with proxied_scim_server() as (server, proxy):
        scim = ScimReader(server.base_url)
        taylor = create_user(runtime, LOGIN)
        staff = create_group(runtime, "Staff", [taylor])
        app_id = create_scim_app(runtime, proxy.base_url, offboarding_deadline=5)
        assign_group(runtime, app_id, staff)
        push_group(runtime, app_id, staff)
        converge(runtime)

        proxy.vendor("put-only")
        proxy.status(503, method="PUT", path=r"/Groups/")
        started = clock.utcnow()
        unassign_group(runtime, app_id, staff)
        converge(runtime, horizon=7, timeout=60, settled=False)
        account = scim.user(LOGIN)
        assert account is not None and account["active"] is False
        assert account["userName"] == LOGIN  # the PUT carried the account as it was
        with runtime.database.read() as session:
            link = session.get(t.AppUserLink, (app_id, taylor))
            assert link is not None and link.status_changed is not None
            took = (clock.as_utc(link.status_changed) - started).total_seconds()
            app = session.get(t.App, app_id)
            assert app is not None
            assert Capabilities.from_json(app.capabilities).patch_refused_at is not None
        assert 5 <= took < 10, f"deactivated after {took:.1f} s (deadline 5 s)"
        assert proxy.count("PUT", r"/Users/") >= 1
        assert len(_stale(runtime)) == 1
