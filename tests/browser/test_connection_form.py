"""The console's connection form: a stored credential never follows a new base URL, and what a
downstream answers in an error is not shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from headwater.db import tables as t
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import ERROR_SCHEMA, LiveServer, create_scim_app, flash, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def elsewhere() -> Iterator[FaultProxyThread]:
    """Another SCIM server, behind a proxy that logs every request it gets."""
    with ScimServerProcess() as server, FaultProxyThread(server.base_url, seed=2) as proxy:
        yield proxy


def stored(console: LiveServer, app_id: str) -> tuple[str, str | None]:
    with console.runtime.database.read() as session:
        row = session.execute(
            select(t.AppConnection).where(t.AppConnection.app_id == app_id)
        ).scalar_one()
        return row.base_url, row.secret_encrypted


def test_a_new_base_url_without_the_token_is_refused(
    page: Page,
    console: LiveServer,
    downstream: tuple[ScimServerProcess, str],
    elsewhere: FaultProxyThread,
) -> None:
    server, token = downstream
    app_id = create_scim_app(console.runtime, server.base_url, token=token)
    before = stored(console, app_id)
    sign_in(page)
    page.goto(f"/console/apps/{app_id}/provisioning")
    for button in ("Test connection", "Save and enable", "Save without testing (disabled)"):
        page.get_by_label("SCIM 2.0 base URL").fill(elsewhere.base_url)
        page.get_by_role("button", name=button).click()
        expect(page.locator(".flash-error")).to_contain_text(
            "profile.token: required again when baseUrl changes"
        )
    assert elsewhere.requests() == []
    assert stored(console, app_id) == before
    assert token not in page.content()


def test_the_downstream_answer_is_not_shown(
    page: Page, console: LiveServer, elsewhere: FaultProxyThread
) -> None:
    page_text = "root:x:0:0 internal-only page"
    elsewhere.status(
        400,
        {"schemas": [ERROR_SCHEMA], "status": "400", "detail": page_text},
        path=r"/ServiceProviderConfig$",
    )
    app_id = create_scim_app(console.runtime, elsewhere.base_url, enabled=False)
    sign_in(page)
    page.goto(f"/console/apps/{app_id}/provisioning")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".flash-error")).to_contain_text(
        "Connection test failed: GET /ServiceProviderConfig: HTTP 400"
    )
    assert "internal-only" not in flash(page) and "internal-only" not in page.content()
