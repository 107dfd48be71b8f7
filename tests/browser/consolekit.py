"""Helpers for the console's browser tests: sign in, fill labelled forms, poll a downstream."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Page, expect

ADMIN = "admin"
PASSWORD = "correct-horse-battery"
CONVERGE_SECONDS = 20.0

T = TypeVar("T")


def sign_in(page: Page, username: str = ADMIN, password: str = PASSWORD) -> None:
    page.goto("/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/people$"))


def flash(page: Page) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def wait_for(check: Callable[[], T | None], what: str, timeout: float = CONVERGE_SECONDS) -> T:
    """Poll until ``check`` returns something truthy (bounded), else fail with ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Scim:
    """Reads the downstream scim2-server directly, as an auditor would."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def users(self) -> dict[str, dict[str, Any]]:
        """Downstream users by userName."""
        body = self.client.get("/Users", params={"count": 1000}).raise_for_status().json()
        return {u["userName"]: u for u in body.get("Resources", [])}

    def group(self, name: str) -> dict[str, Any] | None:
        body = self.client.get("/Groups", params={"count": 1000}).raise_for_status().json()
        found = [g for g in body.get("Resources", []) if g.get("displayName") == name]
        return found[0] if found else None

    def member_ids(self, name: str) -> set[str] | None:
        group = self.group(name)
        if group is None:
            return None
        return {m["value"] for m in group.get("members") or []}

    def close(self) -> None:
        self.client.close()
