"""Browser fixtures: Debian's Chromium driven by Playwright against a live Headwater (SQLite,
worker on) and, where a test needs one, a real scim2-server downstream on loopback.

Chromium comes from ``apt-get install chromium`` (Playwright's own browser download is not
used). Without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from consolekit import ADMIN, PASSWORD
from playwright.sync_api import Browser, Page, sync_playwright

from headwater.runtime import Runtime
from headwater.services import admins
from headwater.testing.scimserver import ScimServerProcess

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
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is required in CI: {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _root_conftest(config: pytest.Config) -> ModuleType:
    """The suite's top conftest, as pytest loaded it (its ``LiveServer`` is reused here)."""
    wanted = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ModuleType) and Path(plugin.__file__ or "").resolve() == wanted:
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture
def console(request: pytest.FixtureRequest, sqlite_runtime: Runtime) -> Iterator[Any]:
    """Headwater with its worker, on SQLite, and one console admin (``.url``, ``.runtime``)."""
    sqlite_runtime.settings.idle_poll_seconds = 0.2
    sqlite_runtime.settings.retry_base_seconds = 0.2
    with sqlite_runtime.database.transaction() as session:
        admins.create(session, ADMIN, PASSWORD)
    live_server = _root_conftest(request.config).LiveServer
    with live_server(sqlite_runtime, start_worker=True) as server:
        server.runtime = sqlite_runtime
        yield server


@pytest.fixture
def page(browser: Browser, console: Any) -> Iterator[Page]:
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
