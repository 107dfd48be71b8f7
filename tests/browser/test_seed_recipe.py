"""The seed's whole recipe done only through the console, then Taylor removed in the order the
seed warns against (from Accounting first); the downstream app is checked directly."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from headwater.db import tables as t
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import ADMIN, LiveServer, ScimReader, flash, sign_in, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PEOPLE = [
    ("Taylor", "Smith", "taylor.smith@example.com"),
    ("Alex", "Johnson", "alex.johnson@example.com"),
    ("Jordan", "Lee", "jordan.lee@example.com"),
]
TAYLOR, ALEX, JORDAN = (login for _, _, login in PEOPLE)


def create_group(page: Page, name: str) -> str:
    page.goto("/console/groups")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    return page.url


def create_person(page: Page, first: str, last: str, login: str) -> None:
    page.goto("/console/people/new")
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_label("Username (login)").fill(login)
    page.get_by_label("Email").fill(login)
    page.get_by_label("Password (optional)").fill("Pa55word-" + first)
    page.get_by_role("button", name="Create person").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{first} {last}")


def add_members(page: Page, group_url: str, logins: list[str]) -> None:
    """In place with htmx: the members table is swapped without leaving the page."""
    page.goto(group_url)
    members = page.locator("#members")
    for login in logins:
        page.get_by_label("Add a person (username)").fill(login)
        page.get_by_role("button", name="Add member").click()
        expect(members.get_by_role("cell", name=login, exact=True)).to_be_visible()
    expect(members.get_by_role("heading")).to_contain_text(f"Members ({len(logins)})")


def create_connected_app(page: Page, scim: ScimServerProcess, token: str) -> str:
    page.goto("/console/apps")
    page.get_by_label("Label", exact=True).fill("Demo SCIM App")
    page.get_by_role("button", name="Add application").click()
    expect(page).to_have_url(re.compile(r"/provisioning$"))
    app_url = page.url.removesuffix("/provisioning")

    def fill_connection() -> None:
        page.get_by_label("SCIM 2.0 base URL").fill(scim.base_url)
        page.get_by_label("Authentication", exact=True).select_option("TOKEN")
        page.get_by_label("Bearer token").fill(token)

    fill_connection()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".flash-ok")).to_contain_text("Connection test succeeded")
    fill_connection()
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator(".flash-ok")).to_contain_text("saved and enabled")
    return app_url


def downstream_state(scim: ScimReader) -> tuple[dict[str, dict[str, Any]], set[str] | None]:
    return scim.by_user_name(), scim.member_ids("AppPushGroup")


def test_seed_recipe_through_the_console(
    page: Page, console: LiveServer, downstream: tuple[ScimServerProcess, str]
) -> None:
    server, token = downstream
    scim = ScimReader(server.base_url, token=token)
    sign_in(page)

    accounting = create_group(page, "Accounting")
    push_group = create_group(page, "AppPushGroup")
    for first, last, login in PEOPLE:
        create_person(page, first, last, login)
    add_members(page, accounting, [TAYLOR, ALEX, JORDAN])
    add_members(page, push_group, [TAYLOR, ALEX, JORDAN])

    app_url = create_connected_app(page, server, token)
    page.goto(app_url + "/assignments")
    page.get_by_label("Assign to group (name)").fill("Accounting")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#assigned-groups")).to_contain_text("Accounting")

    page.goto(app_url + "/push")
    page.get_by_label("Group to push").fill("AppPushGroup")
    page.get_by_role("button", name="Push group").click()
    assert "Pushing AppPushGroup" in flash(page)

    def converged() -> tuple[dict[str, dict[str, Any]], set[str]] | None:
        users, members = downstream_state(scim)
        wanted = {TAYLOR, ALEX, JORDAN}
        if not wanted <= set(users) or not all(users[u]["active"] for u in wanted):
            return None
        if members != {users[u]["id"] for u in wanted}:
            return None
        return users, members

    users, _ = wait_for(converged, "three accounts and a full AppPushGroup downstream")
    page.goto(app_url + "/push")
    expect(page.get_by_role("row", name=re.compile("AppPushGroup"))).to_contain_text("3")

    # Unassigning Accounting would be risky: the console shows the plan and changes nothing.
    page.goto(app_url + "/assignments")
    page.get_by_role("link", name="Unassign Accounting…").click()
    plan = page.locator(".impact")
    expect(plan).to_contain_text("3 people lose access")
    expect(plan).to_contain_text("3 active accounts will be deactivated")
    expect(plan).to_contain_text("3 memberships in pushed groups will be removed first")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("#assigned-groups")).to_contain_text("Accounting")

    # The wrong order: out of the assignment group first, push group membership untouched.
    page.goto(accounting)
    page.get_by_role("button", name=f"Remove {TAYLOR} from Accounting").click()
    expect(page.locator("#members").get_by_role("heading")).to_contain_text("Members (2)")

    def taylor_gone() -> tuple[dict[str, dict[str, Any]], set[str]] | None:
        now, members = downstream_state(scim)
        if TAYLOR not in now or now[TAYLOR]["active"] or members is None:
            return None
        return (now, members) if users[TAYLOR]["id"] not in members else None

    after, members = wait_for(taylor_gone, "Taylor deactivated and out of AppPushGroup")
    assert members == {after[ALEX]["id"], after[JORDAN]["id"]}
    assert after[ALEX]["active"] and after[JORDAN]["active"]
    assert len(after) == 3  # no duplicate accounts

    # The console shows the outcome, and every console write is the admin's.
    page.goto("/console/people?q=taylor")
    page.get_by_role("link", name="Taylor Smith").click()
    expect(page.get_by_role("row", name=re.compile("Demo SCIM App"))).to_contain_text("INACTIVE")
    with console.runtime.database.read() as session:
        actors = [e.actor for e in session.execute(select(t.Event)).scalars()]
    by_admin = [a for a in actors if a["type"] == "User"]
    assert len(by_admin) >= 12
    assert {a["alternateId"] for a in by_admin} == {ADMIN}
