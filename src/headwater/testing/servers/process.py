"""Run a SCIM server in a loopback subprocess: the common runner and one class per server.

The runner binds a loopback socket and hands it to the child (no race for a free port),
waits until ``GET /ServiceProviderConfig`` answers, sends the child's output to a file (never
a pipe nobody reads) and stops it with SIGTERM, then SIGKILL after 5 s. Each start is a new,
empty server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

import httpx

__all__ = [
    "SCIMMY_DIR",
    "DjangoScimProcess",
    "ScimmyProcess",
    "ServerProcess",
    "scimmy_missing",
]

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
#: The scimmy server's folder: ``server.js``, ``package.json`` and its lockfile.
SCIMMY_DIR = Path(__file__).resolve().with_name("scimmy")


class ServerProcess:
    """A SCIM server in a loopback subprocess, empty at each start (subclasses say which).

    ``base_url`` is the SCIM base URL (``f"{server.base_url}/Users"`` is the users endpoint);
    ``headers`` are the ones a client needs (the bearer token, if any).
    """

    #: The name tests parametrise over (see :data:`headwater.testing.servers.SERVER_NAMES`).
    name: ClassVar[str]
    #: The path the SCIM endpoints are served under.
    prefix: ClassVar[str] = "/scim/v2"

    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.bearer_token = bearer_token
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    # -- what a subclass says ---------------------------------------------------------------

    def command(self, fd: int) -> list[str]:
        """The child's command line, serving on the inherited listening socket ``fd``."""
        raise NotImplementedError

    def cwd(self) -> Path | None:
        return None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # -- where it is ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"the {self.name} server is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without the SCIM prefix."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}{self.prefix}"

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request needs: the bearer token, when the server has one."""
        return {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """Return what the child wrote on stdout and stderr so far (for failure messages)."""
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    # -- life -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the child and wait until ``GET /ServiceProviderConfig`` answers 200."""
        if self._process is not None:
            raise RuntimeError(f"the {self.name} server is already started")
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            listener.listen(128)
            self._port = listener.getsockname()[1]
            args = self.command(listener.fileno())
            if self.bearer_token:
                # One argument: a token may start with "-", which would read as an option.
                args.append(f"--bearer-token={self.bearer_token}")
            args += self.extra_args
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                cwd=self.cwd(),
                env=self.env(),
            )
        except BaseException:
            self.stop()
            raise
        finally:
            # The child holds its own copy of the listening socket.
            listener.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        url = f"{self.base_url}/ServiceProviderConfig"
        last_error = "no attempt"
        with httpx.Client(timeout=1.0, trust_env=False, headers=self.headers) as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"the {self.name} server exited with code {self._process.returncode} "
                        f"before answering {url}; its output:\n{self.output()}"
                    )
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last_error = f"answer {response.status_code}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the {self.name} server did not answer {url} within "
                        f"{self.start_timeout:g} s (last error: {last_error}); its output:\n"
                        f"{self.output()}"
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 5 s) and forget its data."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output, self._output = self._output, None
        if output is not None:
            output.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} port={self._port}" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"


class DjangoScimProcess(ServerProcess):
    """django-scim2's stock views and adapters over SQLite, under uvicorn (Django's ASGI app).

    Users' and groups' ids are Django's integer primary keys, as strings.
    """

    name = "django-scim2"

    def command(self, fd: int) -> list[str]:
        return [sys.executable, "-m", "headwater.testing.servers.django_scim", "--fd", str(fd)]

    def env(self) -> dict[str, str]:
        # The child imports headwater from this tree, whatever the installed copy is.
        env = super().env()
        src = str(Path(__file__).resolve().parents[3])
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if src not in paths:
            env["PYTHONPATH"] = os.pathsep.join([src, *paths])
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env


def scimmy_missing() -> str | None:
    """Why the scimmy server cannot start here (no ``node``, or ``npm ci`` not run), or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed (the scimmy server needs node >= 18.3)"
    if not (SCIMMY_DIR / "node_modules" / "scimmy-routers").is_dir():
        return f"the scimmy server's packages are not installed: run `npm ci` in {SCIMMY_DIR}"
    return None


class ScimmyProcess(ServerProcess):
    """scimmy's User and Group resources with in-memory handlers, served by scimmy-routers
    (express) under node. Needs ``node`` and ``npm ci`` in :data:`SCIMMY_DIR`.

    Users' and groups' ids are random UUIDs.
    """

    name = "scimmy"

    def command(self, fd: int) -> list[str]:
        missing = scimmy_missing()
        if missing is not None:
            raise RuntimeError(missing)
        node = shutil.which("node")
        assert node is not None
        return [node, str(SCIMMY_DIR / "server.js"), "--fd", str(fd)]

    def cwd(self) -> Path:
        return SCIMMY_DIR
