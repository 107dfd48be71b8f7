"""Screenshots of the console's main pages for docs/console.md.

Starts Headwater on a temporary SQLite database with its worker and a real scim2-server
downstream, loads the seed's example through the API (as ``headwater demo`` does), waits until
the downstream has converged, and photographs each page with Debian's Chromium:

    .venv/bin/python docs/images/make_screenshots.py
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright

from headwater.config import Settings
from headwater.db import outbox
from headwater.db.events import SYSTEM
from headwater.demo import load_example
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import admins, tokens
from headwater.testing.scimserver import LOOPBACK_ALLOW, ScimServerProcess, free_port

OUT = Path(__file__).parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
PASSWORD = "screenshots-" + secrets.token_urlsafe(6)


def _serve(runtime: Runtime) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime, start_worker=True), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return server, thread, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("Headwater did not start")


def _settle(runtime: Runtime, timeout: float = 30.0) -> None:
    """Until the worker has drained the outbox (the example is then applied downstream)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.database.read() as session:
            if outbox.pending_count(session) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError("the worker did not converge")


def _shoot(page: Page, path: str, name: str, *, full_page: bool = True) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print(f"wrote {OUT / name}.png")


def main() -> None:
    scim_token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp, ScimServerProcess(bearer_token=scim_token) as scim:
        # The downstream runs on loopback, which the outbound policy denies unless allowed.
        settings = Settings(
            data_dir=Path(tmp), idle_poll_seconds=0.2, outbound_allow=LOOPBACK_ALLOW
        )
        runtime = Runtime.from_settings(settings)
        with runtime.database.transaction() as session:
            _, api_token = tokens.create(session, "screenshots", SYSTEM)
            admins.create(session, "admin", PASSWORD)
        server, thread, base = _serve(runtime)
        try:
            headers = {"Authorization": f"SSWS {api_token}"}
            with httpx.Client(base_url=base, headers=headers) as api:
                example = load_example(api, scim.base_url, scim_token)
            _settle(runtime)
            app, groups = example["app"], example["groups"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 800})
                page.goto("/console/login")
                page.get_by_label("Username").fill("admin")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/console/people")
                _shoot(page, "/console/people", "people")
                _shoot(page, f"/console/people/{example['users']['Taylor']}", "person")
                _shoot(page, f"/console/groups/{groups['Accounting']}", "group")
                _shoot(page, f"/console/apps/{app}/provisioning", "app-provisioning")
                _shoot(page, f"/console/apps/{app}/assignments", "app-assignments")
                _shoot(page, f"/console/apps/{app}/push", "app-push-groups")
                _shoot(page, f"/console/apps/{app}/groups/{groups['Accounting']}/unassign", "plan")
                _shoot(page, "/console/logs", "system-log", full_page=False)
                _shoot(page, "/console/health", "health")
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            runtime.close()


if __name__ == "__main__":
    sys.exit(main())
