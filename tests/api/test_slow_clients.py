"""Slow clients are cut off: a client that sends its request's headers (slowloris) or its body
a byte at a time has its connection closed once ``HEADWATER_HEADER_TIMEOUT_SECONDS`` or
``HEADWATER_BODY_TIMEOUT_SECONDS`` have passed, while other clients are served as usual and a
slow *answer* (the application's own time) is never cut. The server runs as ``headwater serve``
configures uvicorn (``headwater.serving``)."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import LiveServer, api_token, count_rows

BOUND = 1.0  # seconds, both deadlines
SLACK = 1.0
DRIBBLE = 0.2  # seconds between two bytes


@pytest.fixture
def server(sqlite_runtime: Runtime) -> Iterator[LiveServer]:
    sqlite_runtime.settings.header_timeout_seconds = BOUND
    sqlite_runtime.settings.body_timeout_seconds = BOUND
    with LiveServer(sqlite_runtime) as live:
        yield live


def _dribble(connection: socket.socket, chunk: bytes, *, limit: float) -> float | None:
    """Send ``chunk`` every DRIBBLE seconds until the server closes the connection; the seconds
    that took, or None if it was still open after ``limit``."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            connection.sendall(chunk)
            readable, _, _ = select.select([connection], [], [], DRIBBLE)
            if readable and connection.recv(65536) == b"":
                return time.monotonic() - start
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
    return None


def _read_response(connection: socket.socket) -> bytes:
    """One whole HTTP response (headers, then a body of its Content-Length), however many
    segments it arrives in."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed before the response's headers ended: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, "closed before the response's body ended"
        body += chunk
    return head + b"\r\n\r\n" + body


def _connect(live: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=5)


def _served_meanwhile(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=5) as client:
        assert client.get("/health").status_code == 200


def test_slow_headers_are_cut_off_and_others_served(server: LiveServer) -> None:
    with _connect(server) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: headwater\r\n")
        with _connect(server) as second:
            second.sendall(b"GET /health HTTP/1.1\r\n")
            _served_meanwhile(server)
            closed = _dribble(slow, b"X-Slow: 1\r\n", limit=BOUND + 4)
        assert closed is not None, "a slowloris client was never cut off"
        assert closed <= BOUND + SLACK
    _served_meanwhile(server)


def test_a_kept_alive_connection_gets_the_same_deadline(server: LiveServer) -> None:
    with _connect(server) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: headwater\r\n\r\n")
        assert _read_response(slow).startswith(b"HTTP/1.1 200")
        slow.sendall(b"GET /health HTTP/1.1\r\n")  # the next request starts, and drags
        closed = _dribble(slow, b"X-Slow: 1\r\n", limit=BOUND + 4)
    assert closed is not None and closed <= BOUND + SLACK


def test_a_slow_body_is_cut_off_and_nothing_is_written(
    server: LiveServer, sqlite_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = api_token(sqlite_runtime)
    groups = count_rows(sqlite_runtime, t.Group)
    with _connect(server) as slow:
        slow.sendall(
            b"POST /api/v1/groups HTTP/1.1\r\nHost: headwater\r\n"
            b"Authorization: SSWS " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
            b'{"profile": {"name": "'
        )
        _served_meanwhile(server)
        closed = _dribble(slow, b"x", limit=BOUND + 4)
    assert closed is not None, "a client sending its body a byte at a time was never cut off"
    assert closed <= BOUND + SLACK
    assert count_rows(sqlite_runtime, t.Group) == groups
    _served_meanwhile(server)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "request body came too slowly" in caplog.text


def test_a_slow_answer_is_not_cut_off(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadlines time the client, not the application: an answer that takes longer than
    both still arrives."""
    render = server.runtime.metrics.render

    def slow_render() -> bytes:
        time.sleep(BOUND + 0.5)
        return render()

    monkeypatch.setattr(server.runtime.metrics, "render", slow_render)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/metrics").status_code == 200
        # and a body sent at once is read whatever its size
        big = {"profile": {"name": "Big", "description": "d" * 900}}
        response = client.post("/api/v1/groups", json=big)
        assert response.status_code == 401  # read in full, then refused: no token


def test_an_idle_kept_alive_connection_is_closed(sqlite_runtime: Runtime) -> None:
    sqlite_runtime.settings.header_timeout_seconds = 30  # only the keep-alive setting acts
    sqlite_runtime.settings.keep_alive_seconds = 1
    with LiveServer(sqlite_runtime) as live, _connect(live) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: headwater\r\n\r\n")
        assert _read_response(idle).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        readable, _, _ = select.select([idle], [], [], 1 + SLACK + 2)
        assert readable and idle.recv(65536) == b"", "the idle connection was kept"
        assert time.monotonic() - start <= 1 + SLACK
