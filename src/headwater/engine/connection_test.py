"""Testing a connection before it is saved or switched on: reach the app with the credentials
given and say plainly why it fails.

The reason given names the request and the status but never repeats what the app answered:
that text goes, scrubbed, to the operational log only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from headwater.connectors.errors import DownstreamError
from headwater.connectors.scrub import scrub_text
from headwater.domain.connection import PreparedConnection
from headwater.engine.connectors import ConnectorFactory
from headwater.errors import InvalidRequest

__all__ = ["probe"]

log = logging.getLogger(__name__)


def _scrub(message: str, hidden: Sequence[str]) -> str:
    """Defence in depth: the connector scrubs its errors already."""
    return scrub_text(message, hidden)


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
        log.warning(
            "connection test failed for app %s: %s",
            prepared.info.app_id,
            _scrub(str(exc), prepared.hidden),
        )
        raise InvalidRequest("Connection test failed: " + reason, [reason]) from None
    finally:
        await connector.aclose()
