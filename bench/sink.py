"""A canned-answer SCIM sink (:class:`CannedScim`), in the benchmark's process for ``engine``
or in its own process (:class:`SinkProcess`), optionally far away, for the latency-bound
``workers`` runs.

It costs next to nothing: no parsing beyond the path, every lookup finds nobody, every create
answers the user sent, reads answer the users created, a listing pages the created users.
With ``bulk`` it announces SCIM Bulk (1,000 operations, 1 MiB, as scim2-server does) and answers
``POST /Bulk`` the same way operation by operation (each create's answer is its ``location``);
without, it announces none, so figures taken before Bulk stay comparable.

The latency-bound ``workers`` runs need a downstream that holds many requests at once and costs
next to nothing, and whose cost does not land in the benchmark process: served from a thread
there (with a fault proxy in front adding the wait), it shared one interpreter lock with the
proxy, the in-process API and the pending-key polling, and on a busy machine passed about 20
requests per second, so the benchmark measured itself rather than the workers. In its own
process every request waits ``latency`` seconds (``asyncio.sleep``, so any number wait together)
and is then answered from canned bytes.

``python -m bench.sink --port P [--latency S]`` serves it; :class:`SinkProcess` starts one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = ["CannedScim", "SinkProcess"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_EMPTY = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
).encode()
_NO_BULK = {"supported": False, "maxOperations": 0, "maxPayloadSize": 0}
_BULK = {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1_048_576}
_BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def _config(bulk: bool) -> bytes:
    return json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": True},
            "bulk": _BULK if bulk else _NO_BULK,
            "filter": {"supported": True, "maxResults": 200},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [],
        }
    ).encode()


class CannedScim:
    """A SCIM service provider that answers from canned bytes and counts requests."""

    def __init__(self, latency: float = 0.0, *, bulk: bool = False) -> None:
        #: Seconds every request waits before its answer (a far-away app); 0 answers at once.
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self._config = _config(bulk)
        self._ids = itertools.count(1)
        #: What each created user answers to ``GET /Users/{id}`` (for re-reconciles).
        self.users: dict[str, bytes] = {}
        #: Accounts created, alone or as operations of Bulk requests.
        self.created = 0

    def _create(self, sent: dict[str, Any]) -> tuple[str, bytes]:
        sent["id"] = f"u{next(self._ids)}"
        payload = json.dumps(sent).encode()
        self.users[sent["id"]] = payload
        self.created += 1
        return sent["id"], payload

    def _bulk(self, body: bytes, base: str) -> bytes:
        """Each operation answered as alone: a create by its ``location``, a change 200."""
        answers = []
        for operation in json.loads(body).get("Operations", []):
            method, path = operation.get("method"), operation.get("path", "")
            answer = {"method": method, "bulkId": operation.get("bulkId")}
            if method == "POST":
                created, _ = self._create(dict(operation.get("data") or {}))
                answer |= {"status": "201", "location": f"{base}{path}/{created}"}
            else:
                answer |= {"status": "204" if method == "DELETE" else "200"}
                answer["location"] = f"{base}{path}"
            answers.append(answer)
        return json.dumps({"schemas": [_BULK_RESPONSE], "Operations": answers}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.latency:
            await asyncio.sleep(self.latency)
        method, path = scope["method"], scope["path"]
        resource = path.split("/scim/v2/", 1)[-1]
        self.requests[
            f"{method} /{resource.split('/')[0]}{'/{id}' if '/' in resource else ''}"
        ] += 1
        status, payload = 200, _EMPTY
        if path.endswith("/ServiceProviderConfig"):
            payload = self._config
        elif method == "POST" and resource == "Bulk":
            payload = self._bulk(body, path.removesuffix("/Bulk"))
        elif method == "POST":
            _, created = self._create(json.loads(body))
            status, payload = 201, created
        elif method == "GET" and resource.startswith("Users/"):
            found = self.users.get(resource.split("/", 1)[1])
            status, payload = (200, found) if found is not None else (404, b"")
        elif method == "GET" and resource == "Users" and b"filter" not in scope["query_string"]:
            payload = self._page(scope["query_string"].decode())
        elif method in ("PUT", "PATCH"):
            status, payload = 200, body
        headers = [(b"content-type", b"application/scim+json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _page(self, query: str) -> bytes:
        """One page of every created user (``startIndex``/``count``), for listings."""
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        start, count = int(params.get("startIndex") or 1), int(params.get("count") or 100)
        page = list(self.users.values())[start - 1 : start - 1 + count]
        return json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": len(self.users),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [json.loads(user) for user in page],
            }
        ).encode()


class SinkProcess:
    """``python -m bench.sink`` on a free loopback port; ``base_url`` ends in ``/scim/v2``."""

    def __init__(self, latency: float = 0.0) -> None:
        from headwater.testing.scimserver import free_port

        self.latency = latency
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/scim/v2"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> SinkProcess:
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ)
        paths = (str(root), str(root / "src"), env.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        command = [sys.executable, "-m", "bench.sink", "--port", str(self.port)]
        command += ["--latency", str(self.latency)]
        self.process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120  # a busy machine starts Python slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the sink exited with status {self.process.returncode}")
            try:
                httpx.get(self.base_url + "/ServiceProviderConfig", timeout=5)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("the sink did not start")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    uvicorn.run(
        CannedScim(args.latency),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        backlog=1024,
    )


if __name__ == "__main__":
    main()
