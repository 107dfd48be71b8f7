"""``headwater demo`` in a subprocess, as ``make demo`` runs it: a helper for the demo's tests
and the quickstart's.

The demo keeps its data in ``data/demo`` under its working directory and listens on
``--port``; everything else (the admin password, the API token, the downstream's port) is
read from what it prints.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from headwater.testing.scimserver import free_port

READY_SECONDS = 90.0
BANNER = re.compile(
    r"^Headwater is running at (?P<base>http://127\.0\.0\.1:\d+)\n"
    r".*\(user: admin, password: (?P<password>\S+)\)\n"
    r".*\n"
    r"  Downstream app: (?P<scim>http://127\.0\.0\.1:(?P<scim_port>\d+)/v2) .*\n"
    r".*\n"
    r"Press Ctrl-C to stop\. Your API token \(shown once\):\n"
    r"(?P<token>\S+)\n",
    re.MULTILINE,
)


def clean_env() -> dict[str, str]:
    """This process's environment without Headwater settings: the demo picks its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}


def children_of(pid: int) -> dict[int, str]:
    """Live child processes of ``pid`` (Linux ``/proc``), with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Demo:
    """``python -m headwater demo --port P`` with ``cwd`` as its working directory."""

    def __init__(self, cwd: Path, port: int | None = None) -> None:
        self.cwd = cwd
        self.port = port or free_port()
        self.log = cwd / "demo-output.txt"
        self.process: subprocess.Popen[bytes] | None = None
        self.scim_pid: int | None = None
        self.scim_cmdline = ""

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> Demo:
        """Start the demo and wait until it has printed its API token (the example is loaded)."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "headwater", "demo", "--port", str(self.port)],
                cwd=self.cwd,
                env=clean_env() | {"PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_SECONDS
        while (found := BANNER.search(self.output)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("headwater demo did not start:\n" + self.output)
            time.sleep(0.1)
        self.base = found["base"]
        self.password = found["password"]
        self.token = found["token"]
        self.scim_url = found["scim"]
        self.scim_port = int(found["scim_port"])
        assert self.base == f"http://127.0.0.1:{self.port}", self.output
        children = children_of(self.process.pid)
        scim = [pid for pid, cmd in children.items() if "headwater.testing.scimserver" in cmd]
        assert len(scim) == 1, children
        self.scim_pid = scim[0]
        self.scim_cmdline = children[self.scim_pid]
        return self

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the demo and wait for it (killed, and its SCIM server too, if it hangs)."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def scim_server_running(self) -> bool:
        """The demo's SCIM server process still exists (checked by PID and command line)."""
        if self.scim_pid is None or not alive(self.scim_pid):
            return False
        try:
            cmdline = Path(f"/proc/{self.scim_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return cmdline.replace(b"\0", b" ").decode(errors="replace") == self.scim_cmdline

    def reap_leftovers(self) -> None:
        """Kill the SCIM server if the demo left it running (a failed test must not leak it)."""
        if self.scim_server_running():
            assert self.scim_pid is not None
            os.kill(self.scim_pid, signal.SIGKILL)

    def __enter__(self) -> Demo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.reap_leftovers()
