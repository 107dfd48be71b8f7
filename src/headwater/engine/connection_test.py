"""Testing a connection before it is saved or switched on: reach the app with the credentials
given and say plainly why it fails.

A transient failure (a 5xx, a 429, a reset, a timeout) is tried again within a short budget,
honouring ``Retry-After`` when it fits, so that one hiccup of the app does not refuse a good
connection; the last error is reported only when the budget is spent. The reason given names
the request and the status (or the outbound policy) but never repeats what the app answered:
that text goes, scrubbed, to the operational log only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import NoReturn

from headwater.connectors.errors import DownstreamError, TransientError
from headwater.connectors.scrub import scrub_text
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import PreparedConnection
from headwater.engine.connectors import ConnectorFactory
from headwater.errors import InvalidRequest

__all__ = ["ATTEMPTS", "BUDGET_SECONDS", "probe"]

log = logging.getLogger(__name__)

#: At most this many tries, all started within this many seconds.
ATTEMPTS = 4
BUDGET_SECONDS = 10.0
#: Pause before the second try; it doubles for each further one (unless Retry-After says).
FIRST_PAUSE = 0.5


def _scrub(message: str, hidden: Sequence[str]) -> str:
    """Defence in depth: the connector scrubs its errors already."""
    return scrub_text(message, hidden)


async def probe(
    connectors: ConnectorFactory,
    prepared: PreparedConnection,
    *,
    attempts: int = ATTEMPTS,
    budget: float = BUDGET_SECONDS,
) -> Capabilities:
    """Reach the app with these credentials and read what it announces; InvalidRequest with
    the cause when it fails."""
    try:
        connector = connectors.build(prepared.info, prepared.settings)
    except ValueError as exc:
        raise InvalidRequest(
            "Connection test failed: " + _scrub(str(exc), prepared.hidden)
        ) from None
    deadline = time.monotonic() + budget
    pause = FIRST_PAUSE
    try:
        for attempt in range(1, attempts + 1):
            try:
                return await connector.test_connection()
            except TransientError as exc:
                wait = exc.retry_after if exc.retry_after is not None else pause
                pause *= 2
                left = deadline - time.monotonic()
                if attempt == attempts or wait >= left:
                    _fail(prepared, exc)
                log.info(
                    "connection test of app %s: %s; trying again in %.1f s (attempt %d of %d)",
                    prepared.info.app_id,
                    _scrub(str(exc), prepared.hidden),
                    wait,
                    attempt + 1,
                    attempts,
                )
                await asyncio.sleep(wait)
            except DownstreamError as exc:
                _fail(prepared, exc)
    finally:
        await connector.aclose()
    raise AssertionError("unreachable")  # pragma: no cover


def _fail(prepared: PreparedConnection, exc: DownstreamError) -> NoReturn:
    reason = _scrub(exc.message, prepared.hidden)
    log.warning(
        "connection test failed for app %s: %s",
        prepared.info.app_id,
        _scrub(str(exc), prepared.hidden),
    )
    raise InvalidRequest("Connection test failed: " + reason, [reason]) from None
