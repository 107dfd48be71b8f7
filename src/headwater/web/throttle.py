"""Sign-in under attack: rate limits per client address and per username, and a small pool of
its own for argon2, so a flood of sign-ins cannot slow the API down.

* **Per address** (every attempt counts): beyond :data:`ADDRESS_LIMITS` the form answers 429
  at once, without hashing. This is the back-off an attacker meets.
* **Per username** (failures count, from any address): beyond :data:`USERNAME_FAILURES` the
  account answers as a wrong password would, after the same argon2 work (against a dummy hash),
  until the window moves on. One address alone cannot get there (its own limit is lower), so an
  attacker at one address cannot keep the admin at another out; the window is short, so no one
  can lock an account for good.
* **Hashing** runs in :class:`HashingPool` (half the cores: one or two threads, at the lowest
  CPU priority), never in the thread pool that serves the API, and never inside a database
  transaction. When the pool and
  its short queue are full, sign-in answers 503 "try again" rather than queueing for ever.
* A refused attempt (429 or 503) is answered after a one-second pause, which costs the server
  nothing (no thread, no hashing) and keeps a client that retries at once from turning refusals
  into a flood of their own.

The counters live in this process's memory (``limits``' moving windows; see
docs/decisions/0013): each ``headwater serve`` process counts on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

__all__ = [
    "ADDRESS_LIMITS",
    "REFUSAL_PAUSE_SECONDS",
    "USERNAME_FAILURES",
    "Busy",
    "HashingPool",
    "SignInGuard",
    "Verdict",
]

T = TypeVar("T")

#: Sign-in attempts one client address may make (every attempt counts).
ADDRESS_LIMITS = "10/minute;100/hour"
#: Failed sign-ins one username may take from all addresses together. Higher than one address's
#: limit, over the same window, so one address alone never reaches it.
USERNAME_FAILURES = "30/minute"
#: Threads hashing at once (half the cores, one or two: the rest stay with the API), and
#: sign-ins allowed to wait for one.
HASHING_THREADS = max(1, min(2, (os.cpu_count() or 2) // 2))
HASHING_QUEUE = 8
#: A refused attempt (429, 503) is answered after this pause: a client that retries at once
#: then costs the server one cheap request a second, not hundreds.
REFUSAL_PAUSE_SECONDS = 1.0


class Busy(Exception):
    """Every hashing thread is busy and the queue is full: try again shortly."""


class HashingPool:
    """A bounded pool for slow password hashing: ``threads`` at work, ``queue`` waiting, and
    :class:`Busy` for anyone beyond."""

    def __init__(self, threads: int = HASHING_THREADS, queue: int = HASHING_QUEUE) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="signin-hash", initializer=_yield_to_the_api
        )
        self._slots = threading.BoundedSemaphore(threads + queue)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if not self._slots.acquire(blocking=False):
            raise Busy()
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _yield_to_the_api() -> None:
    """Run this hashing thread at the lowest CPU priority (Linux schedules threads one by one;
    argon2 releases the GIL while it works): when the cores are busy, the API's threads go
    first and a flood of sign-ins waits, not the API. Elsewhere, a no-op."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@dataclass(frozen=True)
class Verdict:
    """``retry_after`` seconds when the address must back off; ``locked`` when the username
    has had too many failures (checked against a dummy hash, answered as a wrong password)."""

    retry_after: int = 0
    locked: bool = False


class SignInGuard:
    """The console's sign-in limits and hashing pool (one per app)."""

    def __init__(
        self,
        *,
        address_limits: str = ADDRESS_LIMITS,
        username_failures: str = USERNAME_FAILURES,
        threads: int = HASHING_THREADS,
        queue: int = HASHING_QUEUE,
        refusal_pause: float = REFUSAL_PAUSE_SECONDS,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._address: list[RateLimitItem] = parse_many(address_limits)
        self._username: list[RateLimitItem] = parse_many(username_failures)
        self.hashing = HashingPool(threads, queue)
        self.refusal_pause = refusal_pause

    def admit(self, address: str, username: str) -> Verdict:
        """Count an attempt from ``address``; say whether it may go on, and whether the
        username is throttled."""
        for item in self._address:
            if not self._limiter.hit(item, "address", address):
                stats = self._limiter.get_window_stats(item, "address", address)
                return Verdict(retry_after=max(1, int(stats.reset_time - time.time()) + 1))
        key = username.strip().lower()
        locked = not all(self._limiter.test(item, "username", key) for item in self._username)
        return Verdict(locked=locked)

    def failed(self, username: str) -> None:
        key = username.strip().lower()
        for item in self._username:
            self._limiter.hit(item, "username", key)
