"""``api_cost``: where an API request's server CPU goes, in-process, one request at a time.

The ASGI application is called directly (no network, no client, no other request beside it),
on SQLite, for ``GET /api/v1/users/{id}`` and ``POST /api/v1/users``. Three measurements:

- CPU per request as Headwater serves it (each handler in a worker thread);
- the same with the handlers run on the event loop, which shows what the hop to a worker
  thread costs (a measurement only: a handler waiting for SQLite's write lock or PostgreSQL
  would stall every other request there);
- the handler thread's CPU by phase (``time.thread_time``): the token check, the service call
  (the user read, or the create) and the user's JSON.

``bench.api_writes`` measures the same requests over HTTP with 8 clients at once; what it
shows beyond this is the network, uvicorn and the contention of requests in one interpreter.

    python -m bench.api_cost [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import uvloop

from bench.common import DIGITS, SECRET_KEY
from headwater.api import deps
from headwater.api.app import create_api
from headwater.api.routes import users as user_routes
from headwater.services import directory
from headwater.testing.toolkit import api_token, create_users, make_runtime

__all__ = ["main"]

#: What FastAPI calls a plain ``def`` handler through (Starlette's hop to a worker thread).
_HOP = "run_in_threadpool"
#: Requests before the clock starts (statement caches, the first connections).
WARM_UP = 200

#: What each phase wraps: (module, function name, label).
PHASES = (
    (deps, "_authenticate", "token check"),
    (directory, "find_user", "service: the user by id"),
    (directory, "create_user", "service: the create"),
    (user_routes, "user_json", "the user's JSON"),
)


class _Driver:
    """Calls the ASGI app as a server would, one request at a time."""

    def __init__(self, app: Any, token: str, user_ids: list[str]) -> None:
        self.app, self.token, self.user_ids = app, token, user_ids
        self.count = 0

    async def request(self, method: str) -> None:
        self.count += 1
        body = b""
        path = f"/api/v1/users/{self.user_ids[self.count % len(self.user_ids)]}"
        if method == "POST":
            login = f"cost{self.count:07d}-{time.monotonic_ns()}@example.com"
            profile = {"login": login, "email": login, "firstName": "Cost", "lastName": "Run"}
            body, path = json.dumps({"profile": profile}).encode(), "/api/v1/users"
        headers = [
            (b"host", b"bench"),
            (b"authorization", f"SSWS {self.token}".encode()),
            (b"accept", b"application/json"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent = False
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never leaves
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await self.app(scope, receive, send)
        if status != [200]:
            raise SystemExit(f"{method} {path} answered {status}")

    def cpu_per_request(self, method: str, requests: int) -> float:
        async def run() -> float:
            for _ in range(WARM_UP):
                await self.request(method)
            started = time.process_time()
            for _ in range(requests):
                await self.request(method)
            return (time.process_time() - started) / requests

        return asyncio.run(run())


@contextlib.contextmanager
def _on_the_loop() -> Iterator[None]:
    """Plain ``def`` handlers called on the event loop instead of a worker thread."""
    original = getattr(fastapi.routing, _HOP)

    async def direct(call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    setattr(fastapi.routing, _HOP, direct)
    try:
        yield
    finally:
        setattr(fastapi.routing, _HOP, original)


@contextlib.contextmanager
def _phases(spent: collections.defaultdict[str, float]) -> Iterator[None]:
    """Each phase's thread CPU added to ``spent`` while inside."""
    originals = [(module, name, getattr(module, name)) for module, name, _ in PHASES]

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started

        return call

    for (module, name, label), (_, _, function) in zip(PHASES, originals, strict=True):
        setattr(module, name, timed(function, label))
    try:
        yield
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per case")
    args = parser.parse_args(argv)
    requests = max(1, args.requests)
    uvloop.install()
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        folder = Path(scratch)
        runtime = make_runtime(f"sqlite:///{folder / 'cost.db'}", folder, secret_key=SECRET_KEY)
        try:
            user_ids = create_users(runtime, 50, prefix="cost", digits=DIGITS)
            driver = _Driver(create_api(runtime), api_token(runtime, "bench-cost"), user_ids)
            print(f"== api_cost: one request at a time, in-process, SQLite, {requests} each ==")
            for method in ("GET", "POST"):
                threaded = driver.cpu_per_request(method, requests)
                with _on_the_loop():
                    on_loop = driver.cpu_per_request(method, requests)
                spent: collections.defaultdict[str, float] = collections.defaultdict(float)
                with _phases(spent):
                    driver.cpu_per_request(method, requests)
                hop = threaded - on_loop
                print(
                    f"  {method:4s} cpu per request {threaded * 1e3:6.3f} ms; handlers on the "
                    f"loop {on_loop * 1e3:6.3f} ms (the thread hop: {hop * 1e3:.3f} ms)"
                )
                for label, seconds in spent.items():
                    print(f"       {label:28s} {seconds / (requests + WARM_UP) * 1e6:7.1f} µs")
        finally:
            runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
