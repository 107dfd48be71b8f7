"""``scim2-server`` is only the demo's (and the tests'): Headwater works without it, and
``headwater demo`` says in one line what is missing."""

from __future__ import annotations

import subprocess
import sys

# Runs in a fresh interpreter where importing scim2_server fails as if it were not installed.
WITHOUT_SCIM2_SERVER = "import sys; sys.modules['scim2_server'] = None\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SCIM2_SERVER + code],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_headwater_imports_without_scim2_server() -> None:
    result = _python(
        "import headwater, headwater.cli, headwater.server, headwater.demo, headwater.testing\n"
        "import headwater.testing.faultproxy\n"
    )
    assert result.returncode == 0, result.stderr


def test_demo_says_what_is_missing() -> None:
    result = _python("from headwater.cli import app; app(['demo'])")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "headwater demo needs the scim2-server package: pip install 'headwater[demo]'"
    ]
    assert result.stdout == ""
