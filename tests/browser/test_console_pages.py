"""Console pages without a downstream: lifecycle buttons, search as you type, priority order,
a push mapping paused and unlinked after its plan, log filters, and the pages without
JavaScript (htmx only enhances them)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from headwater.db import tables as t
from headwater.testing.toolkit import LiveServer, create_app, create_group, create_user, sign_in

pytestmark = pytest.mark.browser


def seed(console: LiveServer) -> dict[str, str]:
    """Two people, two groups and an app, made through the services (not under test here)."""
    runtime = console.runtime
    ids = {
        first: create_user(
            runtime, f"{first.lower()}@example.com", last="Park", password="Pa55word-x1"
        )
        for first in ("Robin", "Riley")
    }
    for name in ("Finance", "Payroll"):
        ids[name] = create_group(runtime, name)
    ids["app"] = create_app(runtime, "Ledger")
    return ids


def test_lifecycle_buttons_follow_okta_rules(page: Page, console: LiveServer) -> None:
    ids = seed(console)
    sign_in(page)
    page.goto(f"/console/people/{ids['Robin']}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("ACTIVE")
    for button, status in (
        ("Suspend", "SUSPENDED"),
        ("Unsuspend", "ACTIVE"),
        ("Deactivate", "DEPROVISIONED"),
    ):
        page.get_by_role("button", name=button, exact=True).click()
        expect(heading).to_contain_text(status)
    expect(page.get_by_role("button", name="Suspend", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/console/people$"))
    expect(page.locator(".flash-ok")).to_contain_text("Deleted robin@example.com")
    page.get_by_label("Status").select_option("DEPROVISIONED")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#people-rows")).to_contain_text("No people match")


def test_search_as_you_type_swaps_only_the_rows(page: Page, console: LiveServer) -> None:
    seed(console)
    sign_in(page)
    rows = page.locator("#people-rows tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Search by name, username or email").press_sequentially("rob", delay=30)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("robin@example.com")
    expect(page).to_have_url(re.compile(r"q=rob"))


def test_groups_are_reordered_by_swapping_priorities(page: Page, console: LiveServer) -> None:
    ids = seed(console)
    sign_in(page)
    page.goto(f"/console/apps/{ids['app']}/assignments")
    for name in ("Finance", "Payroll"):
        page.get_by_label("Assign to group (name)").fill(name)
        page.get_by_role("button", name="Assign", exact=True).click()
    names = page.locator("#assigned-groups tbody tr td:nth-child(2)")
    expect(names).to_have_text(["Finance", "Payroll"])
    page.get_by_role("button", name="Move Payroll up").click()
    expect(names).to_have_text(["Payroll", "Finance"])
    with console.runtime.database.read() as session:
        rows = session.execute(
            select(t.AppGroupAssignment.group_id, t.AppGroupAssignment.priority)
        ).all()
    assert dict(rows) == {ids["Payroll"]: 0, ids["Finance"]: 1}


def test_a_mapping_is_paused_then_unlinked_after_its_plan(page: Page, console: LiveServer) -> None:
    ids = seed(console)
    sign_in(page)
    page.goto(f"/console/apps/{ids['app']}/push")
    page.get_by_label("Group to push").fill("Finance")
    page.get_by_label("Downstream name (optional)").fill("fin-team")
    page.get_by_role("button", name="Push group").click()
    row = page.get_by_role("row", name=re.compile("fin-team"))
    expect(row).to_contain_text("ACTIVE")
    row.get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("INACTIVE")
    row.get_by_role("link", name="Unlink, delete group…").click()
    expect(page.get_by_role("heading", level=2)).to_contain_text("delete the downstream group")
    expect(page.locator(".card.warning")).to_contain_text("0 pushed membership(s)")
    page.get_by_role("button", name="Confirm: unlink and delete the group").click()
    expect(page.locator(".flash-ok")).to_contain_text("Mapping unlinked")
    expect(page.get_by_role("row", name=re.compile("fin-team"))).to_have_count(0)


def test_the_log_filters_by_event_type_and_target(page: Page, console: LiveServer) -> None:
    ids = seed(console)
    sign_in(page)
    page.goto("/console/logs")
    page.get_by_label("Event type").fill("group.lifecycle.create")
    page.get_by_role("button", name="Filter").click()
    events = page.locator("table.log tbody tr")
    expect(events).to_have_count(2)
    page.goto(f"/console/logs?target={ids['Riley']}")
    expect(events).to_have_count(2)  # created, then activated
    expect(events.first).to_contain_text("Riley Park")


def test_pages_work_without_javascript(browser: Browser, console: LiveServer) -> None:
    ids = seed(console)
    context = browser.new_context(base_url=console.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page)
    page.goto(f"/console/groups/{ids['Finance']}")
    page.get_by_label("Add a person (username)").fill("riley@example.com")
    page.get_by_role("button", name="Add member").click()
    expect(page).to_have_url(re.compile(rf"/console/groups/{ids['Finance']}"))
    expect(page.locator("#members")).to_contain_text("riley@example.com")
    page.get_by_label("Add a person (username)").fill("nobody@example.com")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("alert")).to_contain_text("no such person")
    page.get_by_role("button", name="Remove riley@example.com from Finance").click()
    expect(page.locator("#members")).to_contain_text("No members.")
    context.close()
