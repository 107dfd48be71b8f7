"""How ``headwater serve`` listens: uvicorn over h11, with deadlines for slow clients.

uvicorn closes idle keep-alive connections but waits for ever on a client that sends its
headers or its body a byte at a time (slowloris): each such connection holds a socket and,
once its headers are in, a request task. Here every request has two deadlines, both settings:
its line and headers must arrive within ``header_timeout_seconds`` of the connection (or of
the previous response), and its body within ``body_timeout_seconds`` of the headers. A
connection that misses one is closed; the handler waiting for the body sees a disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from headwater.config import Settings

__all__ = ["DeadlineProtocol", "uvicorn_config"]

log = logging.getLogger("headwater.serving")


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a body deadline per request.

    The client's side of h11's state machine tells the phase: IDLE while the request line and
    headers arrive, SEND_BODY while the body does; in any other state (the request is in, the
    application is answering) no deadline runs. The phase is looked at after every event that
    may change it: a connection, received data, a finished response.
    """

    header_seconds: float = 10.0
    body_seconds: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: object = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        phase = self.conn.their_state
        if phase is self._phase:
            return  # the running deadline (if any) still counts from the phase's start
        self._phase = phase
        self._disarm()
        if self.transport.is_closing():
            return
        if phase is h11.IDLE:
            self._deadline = self.loop.call_later(self.header_seconds, self._expire, "headers")
        elif phase is h11.SEND_BODY:
            self._deadline = self.loop.call_later(self.body_seconds, self._expire, "body")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, part: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        host = self.client[0] if self.client else "?"
        log.info("closed a connection from %s: its request %s came too slowly", host, part)
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int, **options: Any) -> Any:
    """The uvicorn configuration ``headwater serve`` runs with (``options``: more of
    ``uvicorn.Config``'s keywords, such as ``log_level``)."""
    protocol: type[DeadlineProtocol] = type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {
            "header_seconds": settings.header_timeout_seconds,
            "body_seconds": settings.body_timeout_seconds,
        },
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        timeout_keep_alive=settings.keep_alive_seconds,
        **options,
    )
