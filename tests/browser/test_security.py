"""Console security: CSRF tokens on every POST, the session cookie's flags, sign-in back-off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from headwater.db import tables as t
from headwater.testing.toolkit import ADMIN, ADMIN_PASSWORD, LiveServer, sign_in

pytestmark = pytest.mark.browser


def group_names(console: LiveServer) -> set[str]:
    with console.runtime.database.read() as session:
        return set(session.execute(select(t.Group.name)).scalars())


def test_pages_need_a_signed_in_admin(page: Page) -> None:
    page.goto("/console/apps")
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Fapps$"))
    response = page.request.post("/console/groups", form={"name": "Anonymous"}, max_redirects=0)
    assert response.status in (303, 403)


def test_a_post_without_the_csrf_token_is_refused(page: Page, console: LiveServer) -> None:
    sign_in(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "hw_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    missing = page.request.post("/console/groups", form={"name": "Forged"}, max_redirects=0)
    assert missing.status == 403
    wrong = page.request.post(
        "/console/groups", form={"name": "Forged", "csrf_token": "guess"}, max_redirects=0
    )
    assert wrong.status == 403
    assert "Forged" not in group_names(console)

    page.goto("/console/groups")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    by_header = page.request.post(
        "/console/groups",
        form={"name": "Genuine"},
        headers={"X-CSRF-Token": token},
        max_redirects=0,
    )
    assert by_header.status == 303
    assert "Genuine" in group_names(console)


def test_repeated_wrong_passwords_make_this_address_back_off(
    browser: Browser, console: LiveServer
) -> None:
    """Ten attempts a minute per address; the eleventh is told to wait, without a check."""
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    page.goto("/console/login")
    for attempt in range(10):
        page.get_by_label("Username").fill(ADMIN)
        page.get_by_label("Password").fill(f"wrong-{attempt}")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many sign-in attempts from your address")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    context.close()
