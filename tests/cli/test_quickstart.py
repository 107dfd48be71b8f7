"""docs/quickstart.md, part 2: its ``sh`` blocks run as written, with bash, against a live
``headwater serve`` (fresh SQLite folder) and a real scim2-server downstream.

Only the variables the page documents are set (BASE, TOKEN, SCIM_URL, SCIM_TOKEN); every
``text`` block of the section must appear in the output, in order, and the downstream must end
as the page says: Taylor deactivated and out of AppPushGroup, Alex and Jordan active.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.testing.scimserver import ScimServerProcess, free_port

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
SECTION = "## 2. With curl"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOC_VARIABLES = ("BASE", "TOKEN", "SCIM_URL", "SCIM_TOKEN")


def curl_section() -> str:
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else None]


def blocks(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(curl_section()) if lang == kind]


def clean_env() -> dict[str, str]:
    """This process's environment without Headwater settings or the page's variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEADWATER_") and k not in DOC_VARIABLES
    }


def headwater(*args: str) -> list[str]:
    return [sys.executable, "-m", "headwater", *args]


class Served:
    """``headwater serve`` in a subprocess on a free port, with its own data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.env = clean_env() | {
            "HEADWATER_DATA_DIR": str(data_dir),
            "HEADWATER_IDLE_POLL_SECONDS": "0.2",
        }
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "serve.log"

    def token(self) -> str:
        """``headwater token create`` prints the token as its last line of stdout."""
        done = subprocess.run(
            headwater("token", "create", "--name", "quickstart"),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def __enter__(self) -> Served:
        self.output = self.log.open("wb")
        command = headwater("serve", "--host", "127.0.0.1", "--port", str(self.port))
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("headwater serve did not answer: " + self.log.read_text())

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path / "data") as server:
        yield server


def scim_get(server: ScimServerProcess, path: str) -> list[dict[str, Any]]:
    response = httpx.get(
        server.base_url + path, headers={"Authorization": f"Bearer {server.bearer_token}"}
    )
    response.raise_for_status()
    resources: list[dict[str, Any]] = response.json()["Resources"]
    return resources


def assert_in_order(expected: list[str], lines: list[str]) -> None:
    """Every expected line appears in ``lines``, in this order."""
    position = 0
    for line in expected:
        try:
            position = lines.index(line, position) + 1
        except ValueError:
            raise AssertionError(
                f"{line!r} missing (in order) from:\n" + "\n".join(lines)
            ) from None


def test_the_page_is_shaped_as_this_test_expects() -> None:
    script = blocks("sh")
    assert len(script) >= 8
    assert script[0].startswith("BASE=${BASE:-http://127.0.0.1:8080}\n")
    for name in ("SCIM_URL", "SCIM_TOKEN"):
        assert f"{name}=${{{name}:-" in script[0]
    assert "jq" not in "".join(script)  # jq is no documented prerequisite
    text = "\n".join(script)
    for path in (
        "/api/v1/users?activate=true",
        '/api/v1/groups"',
        "/api/v1/groups/$ACCOUNTING/users/$USER_ID",
        "/api/v1/apps?activate=true",
        "/api/v1/apps/$APP/connections/default?activate=true",
        "/api/v1/apps/$APP/groups/$ACCOUNTING",
        "/api/v1/apps/$APP/group-push/mappings",
        '/api/v1/apps/$APP/users"',
        "/api/v1/apps/$APP/plan",
        "/api/v1/apps/$APP/users/$TAYLOR/explain",
        "/api/v1/groups/$ACCOUNTING/users/$TAYLOR",
        "/api/v1/logs",
    ):
        assert f'"$BASE{path}' in text, path
    for method in ("POST", "PUT", "DELETE"):
        assert f"-X {method}" in text


@pytest.mark.skipif(
    shutil.which("curl") is None and os.environ.get("CI", "").lower() != "true",
    reason="curl is not installed",
)
def test_curl_walkthrough_runs_as_written(served: Served, tmp_path: Path) -> None:
    scim_token = secrets.token_urlsafe(16)
    with ScimServerProcess(bearer_token=scim_token) as downstream:
        variables = {
            "BASE": served.base,
            "TOKEN": served.token(),
            "SCIM_URL": downstream.base_url,
            "SCIM_TOKEN": scim_token,
        }
        script = tmp_path / "quickstart.sh"
        script.write_text("\n".join(blocks("sh")))
        done = subprocess.run(
            ["bash", "-euo", "pipefail", str(script)],
            env=clean_env() | variables,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        expected = [line for block in blocks("text") for line in block.splitlines()]
        assert_in_order(expected, lines)

        accounts = {u["userName"]: u for u in scim_get(downstream, "/Users")}
        assert {name: a["active"] for name, a in accounts.items()} == {
            "taylor.smith@example.org": False,
            "alex.johnson@example.org": True,
            "jordan.lee@example.org": True,
        }
        (group,) = scim_get(downstream, "/Groups")
        assert group["displayName"] == "AppPushGroup"
        members = {m["value"] for m in group.get("members", [])}
        assert members == {accounts["alex.johnson@example.org"]["id"]}
