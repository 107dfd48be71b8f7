"""The app's Import tab in Chromium: start an import of a real scim2-server that already holds
accounts, watch it complete, confirm the match, and ignore the account nobody owns."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    LiveServer,
    ScimReader,
    create_scim_app,
    create_user,
    sign_in,
)


def test_import_tab(
    page: Page, console: LiveServer, downstream: tuple[ScimServerProcess, str]
) -> None:
    server, token = downstream
    runtime = console.runtime
    scim = ScimReader(server.base_url, token=token)
    create_user(runtime, "taylor.smith@example.com")
    scim.create_user("taylor.smith@example.com")
    scim.create_user("forgotten@vendor.example")
    app_id = create_scim_app(runtime, server.base_url, "Legacy", token=token)

    sign_in(page)
    page.goto(f"/console/apps/{app_id}/imports")
    app_tabs = page.get_by_role("navigation", name="Application")
    expect(app_tabs.get_by_role("link", name="Import", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    page.get_by_role("button", name="Start import").click()
    expect(page.locator(".flash-ok")).to_contain_text("Import queued")
    _reload_until(page, "COMPLETED")
    expect(page.get_by_role("cell", name="taylor.smith@example.com")).to_be_visible()

    page.get_by_role("button", name="Confirm all matches").click()
    expect(page.locator(".flash-ok")).to_contain_text("1 account(s) to link")
    _reload_until(page, "CONFIRMED")

    row = page.locator("tr", has_text="forgotten@vendor.example")
    expect(row).to_contain_text("UNMANAGED")
    row.get_by_role("button", name="Ignore").click()
    expect(page.locator(".flash-ok")).to_contain_text("Account ignored")
    expect(page.locator("tr", has_text="forgotten@vendor.example")).to_contain_text("IGNORED")


def _reload_until(page: Page, status: str) -> None:
    """The engine works in the background: reload until the import shows ``status``."""
    for _ in range(50):
        if re.search(rf"<td>{status}</td>", page.content()):
            return
        page.wait_for_timeout(200)
        page.reload()
    raise AssertionError(f"the import never showed {status}")
