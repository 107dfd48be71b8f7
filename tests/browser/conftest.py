"""Browser fixtures: Debian's Chromium driven by Playwright against a live Headwater (SQLite,
worker on) and, where a test needs one, a real scim2-server downstream or slapd on loopback.

Chromium comes from ``apt-get install chromium`` (Playwright's own browser download is not
used). Without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from headwater.runtime import Runtime
from headwater.services import admins
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.slapd import Slapd, slapd_missing
from headwater.testing.toolkit import ADMIN, ADMIN_PASSWORD, IN_CI, LiveServer

CHROMIUM = Path(os.environ.get("HEADWATER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"Chromium is required in CI: {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def console(sqlite_runtime: Runtime) -> Iterator[LiveServer]:
    """Headwater with its worker, on SQLite, and one console admin (``.url``, ``.runtime``)."""
    sqlite_runtime.settings.idle_poll_seconds = 0.2
    sqlite_runtime.settings.retry_base_seconds = 0.2
    with sqlite_runtime.database.transaction() as session:
        admins.create(session, ADMIN, ADMIN_PASSWORD)
    with LiveServer(sqlite_runtime, start_worker=True) as server:
        yield server


@pytest.fixture
def page(browser: Browser, console: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def downstream() -> Iterator[tuple[ScimServerProcess, str]]:
    token = secrets.token_urlsafe(16)
    server = ScimServerProcess(bearer_token=token)
    server.start()
    yield server, token
    server.stop()


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    """A directory of its own (skipped outside CI when slapd is not installed)."""
    problem = slapd_missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"slapd is required in CI: {problem}")
        pytest.skip(problem)
    with Slapd() as server:
        yield server
