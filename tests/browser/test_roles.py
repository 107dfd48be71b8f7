"""Roles in the console, in Chromium: an app admin sees only their app, has no System Log in the
navigation, is refused another app's page, and signs out for good (the old cookie is dead)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from headwater.testing.toolkit import LiveServer, create_admin, create_app, sign_in

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery"


def test_an_app_admin_sees_only_their_app(browser: Browser, console: LiveServer) -> None:
    wiki = create_app(console.runtime, "Wiki")
    payroll = create_app(console.runtime, "Payroll")
    create_admin(console.runtime, "wiki-admin", PASSWORD, role="APP_ADMIN", apps=[wiki])
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    sign_in(page, "wiki-admin", PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Applications")).to_be_visible()
    expect(nav.get_by_role("link", name="System Log")).to_have_count(0)
    page.goto("/console/apps")
    expect(page.get_by_role("link", name="Wiki")).to_be_visible()
    expect(page.get_by_role("link", name="Payroll")).to_have_count(0)
    page.goto(f"/console/apps/{payroll}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Refused")
    expect(page.get_by_role("alert")).to_contain_text("You do not have permission")
    page.goto(f"/console/apps/{wiki}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Wiki")

    cookies = context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    replay = browser.new_context(base_url=console.url)
    replay.add_cookies(
        [
            {"name": c["name"], "value": c["value"], "domain": c["domain"], "path": c["path"]}
            for c in cookies
        ]
    )
    stolen = replay.new_page()
    stolen.goto(f"/console/apps/{wiki}")
    expect(stolen).to_have_url(re.compile(r"/console/login\?next="))
    replay.close()
    context.close()
