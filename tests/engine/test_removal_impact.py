"""The console's "what will this do" comes from a what-if run of the planner."""

from __future__ import annotations

from sqlalchemy import select

from headwater.db import tables as t
from headwater.engine import preview, snapshot
from headwater.engine.snapshot import Without
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    assign_user,
    converge,
    create_group,
    create_scim_app,
    create_user,
    push_group,
)


def test_impact_of_unassigning_a_group(runtime: Runtime) -> None:
    downstream = InProcessScim("impact.test").serve(runtime)
    ana, bo, cy = (create_user(runtime, f"{n}@example.com") for n in ("ana", "bo", "cy"))
    dee = create_user(runtime, "dee@example.com", activate=False)
    team = create_group(runtime, "Team", [ana, bo, cy, dee])
    app_id = create_scim_app(runtime, downstream.base_url, "Impact")
    assign_group(runtime, app_id, team)
    assign_user(runtime, app_id, bo)  # keeps access through a direct assignment
    push_group(runtime, app_id, team)
    converge(runtime)
    with runtime.database.read() as session:
        app = snapshot.load_app(session, app_id)
        assert app is not None
        members = select(t.Membership.user_id).where(t.Membership.group_id == team)
        found = preview.removal_impact(session, app, members, Without(group_id=team), sample=10)
    # ana and cy lose access and their accounts (removed from the pushed group first); bo keeps
    # a direct assignment; dee (staged) loses access but holds no account.
    assert found.people == 3
    assert found.accounts == 2
    assert found.memberships == 2
    assert found.sample == ("ana@example.com", "cy@example.com", "dee@example.com")
