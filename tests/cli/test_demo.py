"""``headwater demo`` stops cleanly on SIGTERM as on Ctrl-C: its HTTP server and its worker
stop, and so does the scim2-server child process it started as the downstream app."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import Demo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

PROMPTLY = 20.0


def accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_demo_stops_with_its_scim_server(tmp_path: Path, signum: signal.Signals) -> None:
    demo = Demo(tmp_path)
    with demo:
        assert demo.process is not None
        headers = {"Authorization": f"SSWS {demo.token}"}
        assert httpx.get(demo.base + "/api/v1/users", headers=headers).status_code == 200
        assert accepts_connections(demo.port)
        assert accepts_connections(demo.scim_port)
        assert demo.scim_server_running()

        started = time.monotonic()
        returncode = demo.stop(signum, timeout=PROMPTLY)
        took = time.monotonic() - started

        assert returncode == 0, demo.output
        assert took < PROMPTLY, demo.output
        assert not demo.scim_server_running(), f"scim2-server (pid {demo.scim_pid}) still runs"
        assert not accepts_connections(demo.scim_port)
        assert not accepts_connections(demo.port)
        assert "Traceback" not in demo.output, demo.output


@pytest.mark.parametrize("backend", ["uvicorn", "cli"])
def test_the_downstream_takes_a_token_that_starts_with_a_dash(backend: str) -> None:
    """The demo's random SCIM token (``secrets.token_urlsafe``) starts with "-" once in 64
    runs; the SCIM server must not take it for an option and refuse to start."""
    token = "-starts-with-a-dash"
    with ScimServerProcess(bearer_token=token, backend=backend) as server:  # type: ignore[arg-type]
        url = server.base_url + "/Users"
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer other"}).status_code == 401
