"""Slow clients are cut off: a client that sends its request's headers (slowloris) or its body
a byte at a time has its connection closed once ``HEADWATER_HEADER_TIMEOUT_SECONDS`` or
``HEADWATER_BODY_TIMEOUT_SECONDS`` have passed, while other clients are served as usual and a
slow *answer* (the application's own time) is never cut. The server runs as ``headwater serve``
configures uvicorn (``headwater.serving``), over each of its two HTTP protocols: httptools (with
uvloop; skipped where they are not installed) and h11."""

from __future__ import annotations

import logging
import re
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.serving import MAX_HEAD_BYTES, fast_protocol
from headwater.testing.toolkit import LiveServer, api_token, count_rows

BOUND = 1.0  # seconds, both deadlines
SLACK = 1.0
DRIBBLE = 0.2  # seconds between two bytes


@pytest.fixture(
    params=[
        pytest.param(
            True,
            id="httptools",
            marks=pytest.mark.skipif(not fast_protocol(), reason="httptools or uvloop missing"),
        ),
        pytest.param(False, id="h11"),
    ]
)
def fast(request: pytest.FixtureRequest) -> bool:
    """Which of ``headwater serve``'s two HTTP protocols the server runs."""
    value: bool = request.param
    return value


@pytest.fixture
def server(sqlite_runtime: Runtime, fast: bool) -> Iterator[LiveServer]:
    sqlite_runtime.settings.header_timeout_seconds = BOUND
    sqlite_runtime.settings.body_timeout_seconds = BOUND
    with LiveServer(sqlite_runtime, fast=fast) as live:
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


def test_an_idle_kept_alive_connection_is_closed(sqlite_runtime: Runtime, fast: bool) -> None:
    sqlite_runtime.settings.header_timeout_seconds = 30  # only the keep-alive setting acts
    sqlite_runtime.settings.keep_alive_seconds = 1
    with LiveServer(sqlite_runtime, fast=fast) as live, _connect(live) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: headwater\r\n\r\n")
        assert _read_response(idle).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        readable, _, _ = select.select([idle], [], [], 1 + SLACK + 2)
        assert readable and idle.recv(65536) == b"", "the idle connection was kept"
        assert time.monotonic() - start <= 1 + SLACK


def test_headers_without_end_are_refused(server: LiveServer) -> None:
    """Headers sent fast but without end are answered 400 once past ``MAX_HEAD_BYTES`` (h11's
    own bound), well before the header deadline: the server never holds more of them."""
    with _connect(server) as greedy:
        greedy.sendall(b"GET /health HTTP/1.1\r\nHost: headwater\r\n")
        filler = b"X-Filler: " + b"f" * 1000 + b"\r\n"
        start = time.monotonic()
        answer = b""
        try:
            for _ in range(4 * MAX_HEAD_BYTES // len(filler)):
                greedy.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        greedy.settimeout(BOUND / 2)
        try:
            while chunk := greedy.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert time.monotonic() - start < BOUND
    assert answer.startswith(b"HTTP/1.1 400"), answer
    _served_meanwhile(server)


def test_a_pipelined_request_is_answered_in_order(server: LiveServer) -> None:
    """Two requests in one write: both answered, in order, on the same connection (the
    deadlines follow the one being answered, not the one waiting behind it)."""
    with _connect(server) as client:
        client.sendall(
            b"GET /health HTTP/1.1\r\nHost: headwater\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: headwater\r\n\r\n"
        )
        answers = b""
        while answers.count(b"HTTP/1.1 ") < 2 or not answers.endswith(b"}"):
            chunk = client.recv(65536)
            assert chunk, f"closed after {answers!r}"
            answers += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3})", answers) == [b"200", b"404"]


def test_serve_uses_httptools_and_uvloop_when_installed(sqlite_runtime: Runtime) -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from headwater.serving import DeadlineProtocol, uvicorn_config

    config = uvicorn_config(object(), sqlite_runtime.settings, host="127.0.0.1", port=1)
    if fast_protocol():
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        assert issubclass(config.http, HttpToolsProtocol)
        assert config.loop == "uvloop"
    else:
        assert issubclass(config.http, DeadlineProtocol)
        assert issubclass(config.http, H11Protocol)
        assert config.loop == "asyncio"
    assert config.http.header_seconds == sqlite_runtime.settings.header_timeout_seconds
