"""Console sign-in under attack.

* A flood of sign-ins over HTTP hashes at most two passwords at a time, in its own pool, sheds
  the rest with 503 "try again", and holds no database transaction while hashing: an API write
  made during the flood is not held up behind it.
* Every attempt costs exactly one argon2 verification, whether the username is unknown,
  throttled or real: no shortcut tells them apart.
* Back-off is per client address: an attacker at one address meets 429 after ten attempts and
  cannot keep the admin, signing in from another address, out.

argon2's ``verify`` is wrapped (same work, plus what is measured) where a test needs to see it.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import (
    ADMIN,
    ADMIN_PASSWORD,
    LiveServer,
    api_token,
    console_client,
    console_sign_in,
    create_admin,
    event_types,
)
from headwater.web.throttle import HashingPool

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def watched_verify(
    monkeypatch: pytest.MonkeyPatch, during: Callable[[], None] = lambda: None
) -> Iterator[dict[str, Any]]:
    """argon2's verify, counted: calls, the most running at once; ``during`` runs inside it."""
    real = PasswordHasher.verify
    seen: dict[str, Any] = {"calls": 0, "running": 0, "most": 0}
    lock = threading.Lock()

    def verify(self: PasswordHasher, hash: str, password: str) -> bool:
        with lock:
            seen["calls"] += 1
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            during()
            return real(self, hash, password)
        finally:
            with lock:
                seen["running"] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    yield seen


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    create_admin(runtime)
    return create_app(runtime, start_worker=False)


def test_no_database_connection_is_held_while_hashing(
    app: FastAPI, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[int] = []
    pool: Any = runtime.database.engine.pool
    with (
        watched_verify(monkeypatch, lambda: held.append(pool.checkedout())),
        console_client(app, address="192.0.2.1") as client,
    ):
        assert console_sign_in(client, ADMIN, "wrong-password").status_code == 401
        assert console_sign_in(client).status_code == 303
    assert held == [0, 0]


async def _flood(base: str, count: int) -> list[httpx.Response]:
    """``count`` browsers, each from its own address (``X-Forwarded-For`` from loopback, as a
    reverse proxy sends it), submit a wrong password at the same moment."""

    async def one(index: int) -> httpx.Response:
        headers = {"X-Forwarded-For": f"198.18.{index // 200}.{index % 200 + 1}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            form = await client.get("/console/login")
            found = CSRF.search(form.text)
            assert found, form.text[:300]
            data = {"csrf_token": found[1], "username": ADMIN, "password": f"guess-{index}"}
            await start.wait()
            return await client.post("/console/login", data=data)

    start = asyncio.Event()
    tasks = [asyncio.create_task(one(index)) for index in range(count)]
    await asyncio.sleep(1.0)  # every form fetched
    start.set()
    return await asyncio.gather(*tasks)


def test_a_sign_in_flood_hashes_two_at_a_time_and_does_not_hold_up_api_writes(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_admin(runtime)
    token = api_token(runtime)
    with (
        watched_verify(monkeypatch, lambda: time.sleep(0.3)) as seen,
        LiveServer(runtime) as server,
    ):
        flood = threading.Thread(
            target=lambda: results.extend(asyncio.run(_flood(server.url, 40))), daemon=True
        )
        results: list[httpx.Response] = []
        flood.start()
        time.sleep(1.3)  # the flood is under way
        headers = {"Authorization": f"SSWS {token}"}
        started = time.perf_counter()
        response = httpx.post(
            server.url + "/api/v1/groups",
            json={"profile": {"name": "Written during the flood"}},
            headers=headers,
            timeout=60,
        )
        write_seconds = time.perf_counter() - started
        flood.join(timeout=60)
    assert response.status_code == 200, response.text
    # Behind the flood's 40 hashes of 0.3 s, two at a time, the write would wait about 6 s.
    assert write_seconds < 4.0, f"an API write took {write_seconds:.1f} s during the flood"
    statuses = sorted(r.status_code for r in results)
    assert len(statuses) == 40
    assert set(statuses) <= {401, 503}, statuses
    assert seen["most"] <= 2, seen
    shed = [r for r in results if r.status_code == 503]
    assert shed, statuses
    assert all(r.headers["Retry-After"] == "1" for r in shed)
    assert all("Sign-in is busy. Try again in a moment." in r.text for r in shed)


def test_unknown_throttled_and_real_usernames_cost_the_same(
    app: FastAPI, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refusal runs exactly one password verification, so none answers faster than the
    others (the work is counted, not timed: wall time on a busy machine proves nothing)."""

    def attempt(address: str, username: str, password: str) -> tuple[int, int]:
        with console_client(app, address=address) as client:
            before = seen["calls"]
            status = console_sign_in(client, username, password).status_code
            return status, seen["calls"] - before

    with watched_verify(monkeypatch) as seen:
        wrong = attempt("192.0.2.10", ADMIN, "wrong-password")
        unknown = attempt("192.0.2.11", "nobody", "wrong-password")
        # 30 failures for the username, from several addresses, throttle it for a minute
        for index in range(30):
            assert attempt(f"192.0.2.{100 + index // 10}", ADMIN, "nope")[0] == 401
        throttled = attempt("192.0.2.12", ADMIN, ADMIN_PASSWORD)  # even the right password
    assert wrong == (401, 1)
    assert unknown == (401, 1)
    assert throttled == (401, 1)
    assert event_types(runtime, "user.session.start") == ["user.session.start"] * 33


def test_an_attacker_at_one_address_cannot_keep_the_admin_out(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.console_signin.refusal_pause = 0.01  # the pause is the browser test's to wait for
    with watched_verify(monkeypatch) as seen, console_client(app, address="203.0.113.66") as bad:
        statuses = [console_sign_in(bad, ADMIN, f"guess-{n}").status_code for n in range(25)]
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429] * 15
        assert seen["calls"] == 10  # backing off costs no hashing
        refused = console_sign_in(bad)  # the right password, from the same address
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "Too many sign-in attempts from your address" in refused.text
    with console_client(app, address="192.0.2.1") as admin:
        assert console_sign_in(admin).status_code == 303
        assert admin.get("/console/people").status_code == 200


def test_hashing_threads_run_at_the_lowest_cpu_priority() -> None:
    """When the cores are busy, the API's threads are scheduled before a flood's hashing."""
    pool = HashingPool()
    try:
        niceness = asyncio.run(
            pool.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        )
    finally:
        pool.close()
    assert niceness == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19
