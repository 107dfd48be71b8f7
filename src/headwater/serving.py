"""How ``headwater serve`` listens: uvicorn over httptools and uvloop when they are installed
(over h11 and asyncio otherwise), with deadlines for slow clients.

uvicorn closes idle keep-alive connections but waits for ever on a client that sends its
headers or its body a byte at a time (slowloris): each such connection holds a socket and,
once its headers are in, a request task. Here every request has two deadlines, both settings:
its line and headers must arrive within ``header_timeout_seconds`` of the connection (or of
the previous response), and its body within ``body_timeout_seconds`` of the headers. A
connection that misses one is closed; the handler waiting for the body sees a disconnect.

httptools parses a request in C and uvloop runs the event loop on libuv: together they take
about a fifth of the server's CPU off a request (docs/decisions/0041). Both protocols below
keep the same deadlines; the httptools one also bounds a request's line and headers, which
h11 bounds on its own (a client could otherwise send headers without end until the deadline).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from headwater.config import Settings

__all__ = ["MAX_HEAD_BYTES", "DeadlineProtocol", "fast_protocol", "uvicorn_config"]

log = logging.getLogger("headwater.serving")

#: The most bytes a request's line and headers may take (h11's own bound, which uvicorn's h11
#: protocol keeps: past it the request is answered 400 and the connection closed).
MAX_HEAD_BYTES = 16 * 1024


def fast_protocol() -> bool:
    """True when httptools and uvloop are both installed (the ``headwater`` package pins them;
    a source checkout without them still serves, over h11 and asyncio)."""
    return all(importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop"))


class _Deadlines:
    """The deadline bookkeeping both protocols share: ``_watch`` after every event that may
    change the client's phase arms the phase's deadline (headers or body), or none."""

    header_seconds: float = 10.0
    body_seconds: float = 30.0
    HEADERS: object = "headers"
    BODY: object = "body"
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None

    def _init_deadlines(self) -> None:
        self._phase: object = None
        self._deadline: asyncio.TimerHandle | None = None

    def _client_phase(self) -> object:
        """``HEADERS`` or ``BODY`` while the client sends that part, anything else otherwise."""
        raise NotImplementedError

    def _watch(self) -> None:
        phase = self._client_phase()
        if phase is self._phase:
            return  # the running deadline (if any) still counts from the phase's start
        self._phase = phase
        self._disarm()
        if self.transport.is_closing():
            return
        if phase is self.HEADERS:
            self._deadline = self.loop.call_later(self.header_seconds, self._expire, "headers")
        elif phase is self.BODY:
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


class DeadlineProtocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a body deadline per request.

    The client's side of h11's state machine tells the phase: IDLE while the request line and
    headers arrive, SEND_BODY while the body does; in any other state (the request is in, the
    application is answering) no deadline runs. The phase is looked at after every event that
    may change it: a connection, received data, a finished response.
    """

    HEADERS = h11.IDLE
    BODY = h11.SEND_BODY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadlines()

    def _client_phase(self) -> object:
        return self.conn.their_state

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


def _httptools_protocol() -> type[asyncio.Protocol]:
    """The httptools protocol class with deadlines (imported only when httptools is)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsDeadlines(_Deadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol with the same deadlines as :class:`DeadlineProtocol`.

        httptools has no state machine to read, so the phase is kept from the parser's
        callbacks, as h11 would see it: requests whose headers are in but whose answer is not
        (``_open``), and whether the parser is inside a request's headers or body
        (``_parsing``). No request open: the client owes headers. One open whose body is
        still arriving: the client owes its body. Otherwise the server owes an answer (a
        pipelined request behind it waits, as h11 leaves it unread).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._init_deadlines()
            self._open = 0
            self._parsing: str | None = None
            self._head_bytes = 0

        def _client_phase(self) -> object:
            if self._open == 0:
                return self.HEADERS
            if self._open == 1 and self._parsing == "body":
                return self.BODY
            return None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            owed_headers = self._parsing != "body"
            if owed_headers:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._parsing != "body" and self._head_bytes > MAX_HEAD_BYTES:
                if not self.transport.is_closing():
                    self.send_400_response("Invalid HTTP request received.")
                return
            self._watch()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._parsing = "headers"

        def on_headers_complete(self) -> None:
            self._parsing = "body"
            self._head_bytes = 0
            self._open += 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._parsing = None
            self._head_bytes = 0

        def on_response_complete(self) -> None:
            self._open = max(0, self._open - 1)
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HttpToolsDeadlines


def uvicorn_config(
    app: Any, settings: Settings, *, host: str, port: int, fast: bool | None = None, **options: Any
) -> Any:
    """The uvicorn configuration ``headwater serve`` runs with (``fast``: httptools and uvloop,
    by default when installed; ``options``: more of ``uvicorn.Config``'s keywords, such as
    ``log_level``)."""
    use_fast = fast_protocol() if fast is None else fast
    base: type[asyncio.Protocol] = _httptools_protocol() if use_fast else DeadlineProtocol
    protocol = type(
        base.__name__,
        (base,),
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
        loop="uvloop" if use_fast else "asyncio",
        timeout_keep_alive=settings.keep_alive_seconds,
        **options,
    )
