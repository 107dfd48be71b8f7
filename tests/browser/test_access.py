"""Accessibility basics: sign in and create a group with the keyboard alone, and every visible
form field on the main pages has a label."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from headwater.testing.toolkit import ADMIN, ADMIN_PASSWORD, LiveServer, create_app, sign_in

pytestmark = pytest.mark.browser

MAX_TABS = 40


def tab_to(page: Page, element_id: str) -> None:
    """Press Tab until the element has focus (bounded), as a keyboard user would."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


def tab_to_link(page: Page, text: str) -> None:
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement.tagName === 'A' ? document.activeElement.textContent : ''"
        )
        if focused.strip() == text:
            return
    raise AssertionError(f"link {text!r} cannot be reached with Tab")


def test_sign_in_and_create_a_group_with_the_keyboard(page: Page) -> None:
    page.goto("/console/people")
    expect(page).to_have_url(re.compile(r"/console/login"))
    tab_to(page, "f-username")
    page.keyboard.type(ADMIN)
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/people$"))

    tab_to_link(page, "Groups")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/groups$"))
    tab_to(page, "group-name")
    page.keyboard.type("Keyboard Crew")
    page.keyboard.press("Tab")
    page.keyboard.type("Made without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Keyboard Crew")
    expect(page.locator(".flash-ok")).to_contain_text("Created group Keyboard Crew")


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""


def test_every_field_on_the_main_pages_has_a_label(page: Page, console: LiveServer) -> None:
    app_id = create_app(console.runtime, "Labelled")
    page.goto("/console/login")
    assert page.evaluate(UNLABELLED) == []
    sign_in(page)
    page.goto("/console/groups")
    page.get_by_label("Name", exact=True).fill("Labelled group")
    page.get_by_role("button", name="Create group").click()
    group_url = page.url
    pages = [
        "/console/people",
        "/console/people/new",
        "/console/import",
        "/console/groups",
        group_url,
        "/console/apps",
        *(f"/console/apps/{app_id}{tab}" for tab in ("", "/provisioning", "/assignments")),
        f"/console/apps/{app_id}/push",
        f"/console/apps/{app_id}/mappings",
        f"/console/apps/{app_id}/mappings?attribute=title&user=nobody@example.com",
        f"/console/apps/{app_id}/tasks",
        "/console/logs",
        "/console/health",
        "/console/rules",
    ]
    checked = 0
    for url in pages:
        page.goto(url)
        assert page.evaluate(UNLABELLED) == [], url
        checked += page.locator("input:not([type=hidden]), select").count()
        buttons = page.evaluate("[...document.querySelectorAll('[onclick]')].length")
        assert buttons == 0, f"{url}: actions must be real buttons or links"
    assert checked > 40
