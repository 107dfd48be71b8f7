"""A real SCIM 2.0 downstream (the ``scim2-server`` package) for tests.

Tests talk to an actual SCIM implementation instead of a hand-written fake, so that
filters, PATCH semantics, ETags and error bodies are whatever a real server does.

Two ways to run it:

* :func:`in_process_app` returns its ASGI application, for ``httpx.ASGITransport``
  (fast, no sockets, but no connection-level behaviour).
* :class:`ScimServerProcess` serves it under uvicorn in a loopback subprocess, so the
  client under test goes through real TCP with keep-alive connections (and can be put
  behind :class:`headwater.testing.faultproxy.FaultProxy`).

The subprocess entry point is this module: ``python -m headwater.testing.scimserver
--port P [--bearer-token T]``. ``ScimServerProcess(backend="cli")`` runs the package's
own ``scim2-server`` command instead (a threaded WSGI server), for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, cast

import httpx
from scim2_models import Bulk, ScimProvider, UnauthorizedException
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

__all__ = [
    "LOOPBACK_ALLOW",
    "ScimApplication",
    "ScimServerProcess",
    "free_port",
    "in_process_app",
    "main",
]

LOOPBACK = "127.0.0.1"
#: The ``HEADWATER_OUTBOUND_ALLOW`` entry that lets Headwater reach the servers (and proxies)
#: these tools start: their loopback address, and nothing else the policy denies by default.
LOOPBACK_ALLOW = f"{LOOPBACK}/32"
START_TIMEOUT = 15.0
# Idle keep-alive connections outlive any test: a server closing an idle connection just
# as the client reuses it would show up as a spurious transport error.
KEEP_ALIVE_SECONDS = 120


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    Another process may take it before the caller binds it; :class:`ScimServerProcess`
    avoids that race by handing a bound socket to its child instead.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


Message = MutableMapping[str, Any]


class ScimApplication(ASGIApplication):
    """The scim2-server ASGI application over in-memory storage, with optional bearer tokens.

    Without tokens it accepts every request, like the ``scim2-server`` command. ``__call__``
    takes the ASGI types as httpx and Starlette spell them (mutable mappings, where
    scim2-server says ``dict``), so ``httpx.ASGITransport(app=...)`` type-checks.
    """

    storage: AsyncInMemoryStorage

    def __init__(self, provider: ScimProvider, bearer_tokens: Sequence[str]) -> None:
        super().__init__(AsyncInMemoryStorage(), provider)
        self.bearer_tokens = frozenset(bearer_tokens)

    def check_auth(self, request: ScimRequest) -> None:
        if not self.bearer_tokens:
            return
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.bearer_tokens:
            raise UnauthorizedException

    async def __call__(  # type: ignore[override]
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        await super().__call__(cast(dict[str, Any], scope), cast(Any, receive), send)


def _build_app(bearer_tokens: Sequence[str], *, bulk: bool = False) -> ScimApplication:
    config = load_default_service_provider_config()
    if not bulk:
        # scim2-server implements Bulk; it is announced only when a test asks for it, since
        # most tests look at the single requests Headwater sends.
        config.bulk = Bulk(supported=False, max_operations=0, max_payload_size=0)
    if bearer_tokens:
        # Announcing the scheme is what makes 401 answers carry WWW-Authenticate.
        config.authentication_schemes = [
            *(config.authentication_schemes or []),
            BEARER_TOKEN_SCHEME,
        ]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    return ScimApplication(provider, bearer_tokens)


def in_process_app(bearer_token: str | None = None, *, bulk: bool = False) -> ScimApplication:
    """Return a fresh, empty scim2-server ASGI application (users and groups of RFC 7643).

    Use it with ``httpx.ASGITransport(app=...)`` when a test needs SCIM semantics but no
    sockets. Resources are served under ``/v2`` (the prefix is optional); ``.storage``
    holds them, for tests that seed or inspect the server directly. ``bulk`` announces SCIM
    Bulk (``/Bulk``, up to 1,000 operations and 1 MiB per request).
    """
    return _build_app([bearer_token] if bearer_token else [], bulk=bulk)


class ScimServerProcess:
    """A scim2-server running in a loopback subprocess, empty at each start.

    ``base_url`` ends with ``/v2``: ``f"{server.base_url}/Users"`` is the users endpoint.
    The server builds ``meta.location`` and ``Location`` from the request's Host header,
    so behind a proxy that keeps the Host header the URLs point at the proxy.
    """

    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        backend: Literal["uvicorn", "cli"] = "uvicorn",
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.bearer_token = bearer_token
        self.backend = backend
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SCIM server is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without the SCIM version prefix."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        """The SCIM base URL, ``http://127.0.0.1:PORT/v2``."""
        return f"{self.origin}/v2"

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

    def start(self) -> ScimServerProcess:
        """Start the child and wait until ``GET /ServiceProviderConfig`` answers."""
        if self._process is not None:
            raise RuntimeError("the SCIM server is already started")
        # A file, not a pipe: nobody reads a pipe while tests run, and a full pipe would
        # block the child.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        listener: socket.socket | None = None
        try:
            if self.backend == "uvicorn":
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind((LOOPBACK, 0))
                listener.listen(128)
                self._port = listener.getsockname()[1]
                args = [sys.executable, "-m", __name__, "--fd", str(listener.fileno())]
                pass_fds: tuple[int, ...] = (listener.fileno(),)
            else:
                self._port = free_port()
                cli = Path(sys.executable).with_name("scim2-server")
                args = [str(cli), "--hostname", LOOPBACK, "--port", str(self._port)]
                pass_fds = ()
            if self.bearer_token:
                # One argument: a token may start with "-" (token_urlsafe does, 1 time in 64),
                # which argparse would take for an option in "--bearer-token", token.
                args.append(f"--bearer-token={self.bearer_token}")
            args += self.extra_args
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                env=_child_env(),
            )
        except BaseException:
            self.stop()
            raise
        finally:
            # The child holds its own copy of the listening socket.
            if listener is not None:
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
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"scim2-server exited with code {self._process.returncode} before "
                        f"answering {url}; its output:\n{self.output()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                    last_error = "non-200 answer"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"scim2-server did not answer {url} within {self.start_timeout:g} s "
                        f"(last error: {last_error}); its output:\n{self.output()}"
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

    def __enter__(self) -> ScimServerProcess:
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
        return f"<ScimServerProcess {self.backend} {state}>"


def _child_env() -> dict[str, str]:
    """Return the environment of the child, able to import ``headwater`` from this tree."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths:
        env["PYTHONPATH"] = os.pathsep.join([src, *paths])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def main(argv: Sequence[str] | None = None) -> None:
    """Serve an empty scim2-server under uvicorn, on a port or on an inherited socket."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m headwater.testing.scimserver",
        description="Serve an in-memory SCIM 2.0 server (scim2-server) under uvicorn.",
    )
    parser.add_argument("--host", default=LOOPBACK, help="listen address (default 127.0.0.1)")
    place = parser.add_mutually_exclusive_group(required=True)
    place.add_argument("--port", type=int, help="listen on this TCP port")
    place.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument(
        "--bearer-token", action="append", default=[], help="accepted token (repeatable)"
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--bulk", action="store_true", help="announce SCIM Bulk")
    args = parser.parse_args(argv)

    config = uvicorn.Config(
        _build_app(args.bearer_token, bulk=args.bulk),
        host=args.host,
        port=args.port or 0,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    if args.fd is None:
        server.run()
        return
    # socket(fileno=...) detects the family; uvicorn's own --fd assumes a Unix socket.
    sock = socket.socket(fileno=args.fd)
    with contextlib.closing(sock):
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
