"""The latency-bound benchmark's downstream, ``bench.sink``: a far-away app that holds many
requests at once, in its own process, and counts what it created."""

from __future__ import annotations

import asyncio
import time

import httpx
from bench.provision import scim_total
from bench.sink import SinkProcess


def test_sink_holds_many_requests_at_once_and_counts_creates() -> None:
    latency, width = 1.0, 32
    with SinkProcess(latency) as sink:

        async def create_all() -> float:
            limits = httpx.Limits(max_connections=width)
            async with httpx.AsyncClient(base_url=sink.base_url, limits=limits, timeout=60) as c:
                started = time.monotonic()
                answers = await asyncio.gather(
                    *(c.post("/Users", json={"userName": f"u{i}"}) for i in range(width))
                )
                elapsed = time.monotonic() - started
            assert [a.status_code for a in answers] == [201] * width
            return elapsed

        elapsed = asyncio.run(create_all())
        # One after another would take width x latency (32 s); together, about one latency.
        assert latency <= elapsed < 8 * latency
        assert scim_total(sink.base_url) == width
    assert sink.process is not None and sink.process.poll() is not None
