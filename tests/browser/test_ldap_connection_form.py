"""An LDAP directory set up in the console as an admin would: created by choosing its kind,
its connection form filled in, tested and saved against a real slapd, the password never
shown back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from headwater.db import tables as t
from headwater.testing.slapd import Slapd
from headwater.testing.toolkit import LiveServer, flash, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_an_ldap_directory_is_created_and_connected_in_the_console(
    page: Page, console: LiveServer, slapd: Slapd
) -> None:
    sign_in(page)
    page.goto("/console/apps")
    page.get_by_label("Label", exact=True).fill("Corporate Directory")
    page.get_by_label("Kind").select_option(label="LDAP directory")
    page.get_by_role("button", name="Add application").click()
    expect(page).to_have_url(re.compile(r"/console/apps/[^/]+/provisioning$"))
    app_id = page.url.split("/")[-2]

    def field(label: str) -> Locator:
        return page.get_by_label(label, exact=True)

    field("LDAP URL").fill(slapd.url)
    field("Bind DN").fill(slapd.root_dn)
    field("Bind password").fill(slapd.root_password)
    field("People base DN").fill(slapd.people_base)
    field("Groups base DN").fill(slapd.groups_base)
    field("Disabled base DN").fill(slapd.disabled_base)
    field("Deactivation").select_option("MOVE")
    field("Group object class").select_option("groupOfUniqueNames")
    field("On missing entry").select_option("TASK")
    field("Connect timeout (s)").fill("3")
    expect(field("Use StartTLS (on an ldap:// URL)")).not_to_be_checked()

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".flash-ok")).to_contain_text("Connection test succeeded")
    # The form comes back as entered, but for the password.
    expect(field("People base DN")).to_have_value(slapd.people_base)
    expect(field("Deactivation")).to_have_value("MOVE")
    expect(field("Bind password")).to_have_value("")
    assert slapd.root_password not in page.content()

    field("Bind password").fill(slapd.root_password)
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator(".flash-ok")).to_contain_text("Connection saved and enabled.")
    expect(page.locator("#connection-summary")).to_contain_text(f"LDAP URL {slapd.url}")
    expect(field("Group object class")).to_have_value("groupOfUniqueNames")
    expect(field("Bind password")).to_have_value("")
    assert slapd.root_password not in page.content()
    assert slapd.root_password not in flash(page)
    with console.runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.status == "ENABLED" and row.auth_scheme == "LDAP"
