"""Per-app limits on what is sent downstream: concurrent requests, request rate, and a window of
recent outcomes that tells a dead app from a bad request.

Limits are for the whole cluster: each worker takes its share (limit / live workers), so
adding workers never multiplies the load on one app.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

__all__ = ["AppLimits", "GatedTransport", "TokenBucket"]


class TokenBucket:
    """``rate`` requests per second with bursts up to ``capacity``; 0 means unlimited."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


@dataclass
class AppLimits:
    concurrency: int
    rate: float
    #: Recent outcomes: (monotonic time, failed) for the quarantine decision.
    window: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=200))
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(max(1, self.concurrency))
        self._bucket = TokenBucket(self.rate)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            await self._bucket.take()
            yield

    def observe(self, failed: bool) -> None:
        self.window.append((time.monotonic(), failed))

    def failing(self, minimum: int = 20, share: float = 0.8) -> bool:
        """Most recent calls failed (transport errors, 5xx, 429): the app looks down."""
        horizon = time.monotonic() - self.window_seconds
        recent = [failed for at, failed in self.window if at >= horizon]
        return len(recent) >= minimum and sum(recent) >= share * len(recent)

    def reset(self) -> None:
        self.window.clear()


class GatedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport so every request waits for a slot and a token of its app."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limits: AppLimits) -> None:
        self.inner = inner
        self.limits = limits

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self.limits.slot():
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError:
                self.limits.observe(True)
                raise
        self.limits.observe(response.status_code >= 500 or response.status_code == 429)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
