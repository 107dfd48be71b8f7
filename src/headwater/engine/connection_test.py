"""Testing a connection before it is saved or switched on: reach the app with the credentials
given and say plainly why it fails, with every secret scrubbed from what the app answered."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from headwater.connectors.errors import DownstreamError
from headwater.domain.connection import PreparedConnection
from headwater.engine.connectors import ConnectorFactory
from headwater.errors import InvalidRequest

__all__ = ["probe"]

log = logging.getLogger(__name__)


def _scrub(message: str, hidden: Sequence[str]) -> str:
    """Defence in depth: a downstream could echo a credential in its error text."""
    for value in hidden:
        if len(value) >= 4:
            message = message.replace(value, "***")
    return message


async def probe(connectors: ConnectorFactory, prepared: PreparedConnection) -> None:
    """Reach the app with these credentials; InvalidRequest with the cause when it fails."""
    try:
        connector = connectors.build(prepared.info, prepared.settings)
    except ValueError as exc:
        raise InvalidRequest(
            "Connection test failed: " + _scrub(str(exc), prepared.hidden)
        ) from None
    try:
        await connector.test_connection()
    except DownstreamError as exc:
        reason = _scrub(exc.message, prepared.hidden)
        log.warning("connection test failed for app %s: %s", prepared.info.app_id, reason)
        raise InvalidRequest("Connection test failed: " + reason, [reason]) from None
    finally:
        await connector.aclose()
