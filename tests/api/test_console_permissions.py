"""The console enforces the API's rules: every page declares one permission (a new page
without one fails here), scoped admins see only their apps or groups, and a refused page or
form answers 403 and is recorded in the system log."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services.access import DENIED_EVENT
from headwater.testing.toolkit import (
    console_client,
    console_csrf,
    console_sign_in,
    create_admin,
    create_group,
    create_user,
    events,
)
from headwater.testing.toolkit import (
    create_app as create_bookmark_app,
)

OPEN_PAGES = {"/console/", "/console/login", "/console/logout"}
PASSWORD = "correct-horse-battery"


def test_every_console_page_declares_one_permission(sqlite_runtime: Runtime) -> None:
    app = create_app(sqlite_runtime, start_worker=False)
    checked = 0
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not isinstance(route.original_route, APIRoute) or not path.startswith("/console"):
            continue
        declared = [
            sub.call.permission
            for sub in route.dependant.dependencies
            if hasattr(sub.call, "permission")
        ]
        if path in OPEN_PAGES:
            assert declared == [], path
            continue
        assert len(declared) == 1, f"{path}: {declared}"
        if "GET" in (route.methods or ()):
            assert declared[0].is_read, path
        else:
            assert not declared[0].is_read, path
        checked += 1
    assert checked > 45


@pytest.fixture
def world(runtime: Runtime) -> dict[str, str]:
    user = create_user(runtime, "taylor.smith@example.com")
    ids = {
        "user": user,
        "group_in": create_group(runtime, "Mine", [user]),
        "group_out": create_group(runtime, "Theirs", [user]),
        "app_in": create_bookmark_app(runtime, "Wiki"),
        "app_out": create_bookmark_app(runtime, "Payroll"),
    }
    create_admin(runtime, "apps", PASSWORD, role="APP_ADMIN", apps=[ids["app_in"]])
    create_admin(
        runtime, "helpdesk", PASSWORD, role="GROUP_MEMBERSHIP_ADMIN", groups=[ids["group_in"]]
    )
    create_admin(runtime, "auditor", PASSWORD, role="READ_ONLY_ADMIN")
    return ids


@pytest.fixture
def app(runtime: Runtime, world: dict[str, str]) -> FastAPI:
    return create_app(runtime, start_worker=False)


def test_an_app_admin_sees_and_changes_only_its_apps(
    app: FastAPI, runtime: Runtime, world: dict[str, str]
) -> None:
    with console_client(app) as client:
        assert console_sign_in(client, "apps", PASSWORD).status_code == 303
        listing = client.get("/console/apps")
        assert "Wiki" in listing.text and "Payroll" not in listing.text
        assert ">System Log<" not in listing.text  # not in the navigation
        assert client.get(f"/console/apps/{world['app_in']}/provisioning").status_code == 200
        assert client.get(f"/console/apps/{world['app_out']}").status_code == 403
        assert client.get("/console/logs").status_code == 403
        health = client.get("/console/health")
        assert "Wiki" in health.text and "Payroll" not in health.text
        person = client.get(f"/console/people/{world['user']}")
        assert person.status_code == 200
        csrf = console_csrf(client)
        refused = client.post(
            f"/console/apps/{world['app_out']}/lifecycle/deactivate",
            data={"csrf_token": csrf},
            headers={"referer": "http://testserver/console/apps"},
        )
        assert refused.status_code == 303  # back to the page, with the refusal as a message
        assert "permission" in client.get("/console/apps").text
        deleted = client.post(
            f"/console/apps/{world['app_in']}/lifecycle/delete", data={"csrf_token": csrf}
        )
        assert deleted.status_code == 303
        ok = client.post(
            f"/console/apps/{world['app_in']}/lifecycle/deactivate", data={"csrf_token": csrf}
        )
        assert ok.status_code == 303
    denied = events(runtime, DENIED_EVENT)
    assert [e.debug["permission"] for e in denied] == [
        "apps.read",
        "logs.read",
        "apps.write",
        "apps.manage",
    ]
    assert all(e.actor["alternateId"] == "apps" for e in denied)


def test_a_group_membership_admin_manages_only_its_groups_members(
    app: FastAPI, runtime: Runtime, world: dict[str, str]
) -> None:
    other = create_user(runtime, "alex.johnson@example.com")
    with console_client(app) as client:
        assert console_sign_in(client, "helpdesk", PASSWORD).status_code == 303
        groups = client.get("/console/groups")
        assert "Mine" in groups.text and "Theirs" not in groups.text
        assert client.get("/console/apps").status_code == 403
        csrf = console_csrf(client)
        added = client.post(
            f"/console/groups/{world['group_in']}/members",
            data={"csrf_token": csrf, "person": "alex.johnson@example.com"},
        )
        assert added.status_code == 303
        assert "alex.johnson@example.com" in client.get(f"/console/groups/{world['group_in']}").text
        refused = client.post(
            f"/console/groups/{world['group_out']}/members",
            data={"csrf_token": csrf, "person": "alex.johnson@example.com"},
        )
        assert refused.status_code == 303
        assert client.get(f"/console/groups/{world['group_out']}").status_code == 403
        person = client.get(f"/console/people/{other}")
        assert "Mine" in person.text and "Theirs" not in person.text
        rename = client.post(
            f"/console/groups/{world['group_in']}",
            data={"csrf_token": csrf, "name": "Renamed"},
        )
        assert rename.status_code == 303
    assert "Renamed" not in [e.display_message for e in events(runtime, "group.profile")]
    assert len(events(runtime, DENIED_EVENT)) == 4


def test_a_read_only_admin_reads_everything_and_changes_nothing(
    app: FastAPI, runtime: Runtime, world: dict[str, str]
) -> None:
    with console_client(app) as client:
        assert console_sign_in(client, "auditor", PASSWORD).status_code == 303
        for page in ("/console/people", "/console/groups", "/console/apps", "/console/logs"):
            assert client.get(page).status_code == 200, page
        assert client.get(f"/console/apps/{world['app_out']}/tasks").status_code == 200
        csrf = console_csrf(client)
        made = client.post("/console/groups", data={"csrf_token": csrf, "name": "Nope"})
        assert made.status_code == 303
    assert len(events(runtime, "group.lifecycle.create")) == 2  # the two seeded groups only
    assert [e.debug["permission"] for e in events(runtime, DENIED_EVENT)] == ["groups.write"]
