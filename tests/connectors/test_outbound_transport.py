"""The outbound transport as an HTTP client: what it sends, what it refuses to read, and how a
broken connection surfaces, against a raw asyncio server on loopback that records every
request it gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from headwater.connectors import outbound
from headwater.connectors.outbound import OutboundPolicy, OutboundTransport
from headwater.testing.toolkit import LOOPBACK_ALLOW

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    port: int
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[Server]:
    """HTTP/1.1 on 127.0.0.1; ``answer(head, writer)`` writes the response and says whether
    the connection stays open."""
    server = Server(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                server.heads.append(head)
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                if length:
                    await reader.readexactly(length)
                if not await answer(head, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def _transport() -> OutboundTransport:
    return OutboundTransport(OutboundPolicy.from_text(LOOPBACK_ALLOW))


async def _ok(head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    return True


async def test_the_request_carries_httpxs_headers_once_and_no_client_of_its_own() -> None:
    async with (
        raw_server(_ok) as server,
        httpx.AsyncClient(
            transport=_transport(), headers={"User-Agent": "Headwater test"}
        ) as client,
    ):
        response = await client.post(f"http://127.0.0.1:{server.port}/v2/Users", content=b'{"a":1}')
    assert response.status_code == 200
    assert response.json() == {}
    lines = [line.lower() for line in server.heads[0].split(b"\r\n")]
    assert lines[0] == b"post /v2/users http/1.1"
    for name in (b"user-agent", b"host", b"accept", b"accept-encoding", b"content-length"):
        assert sum(line.startswith(name + b":") for line in lines) == 1, name
    assert b"user-agent: headwater test" in lines
    assert b"content-length: 7" in lines
    assert not any(b"aiohttp" in line for line in lines)


async def test_connections_are_kept_alive_and_reused() -> None:
    async with raw_server(_ok) as server, httpx.AsyncClient(transport=_transport()) as client:
        for _ in range(5):
            response = await client.get(f"http://127.0.0.1:{server.port}/v2/Users")
            assert response.status_code == 200
    assert len(server.heads) == 5
    assert server.connections == 1


async def test_a_connection_dropped_before_the_answer_is_an_error_not_a_silent_resend() -> None:
    """The engine's retry (with backoff and a logged failure) resends; the pool must not."""

    async def drop(head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async with raw_server(drop) as server, httpx.AsyncClient(transport=_transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{server.port}/v2/Users")
    assert len(server.heads) == 1


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr(outbound, "MAX_RESPONSE_BYTES", 1000)
    body = b"x" * 5000

    async def big(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 500):
                writer.write(b"1f4\r\n" + body[start : start + 500] + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body)
        return True

    async with raw_server(big) as server, httpx.AsyncClient(transport=_transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="response body over 1000 bytes"):
            await client.get(f"http://127.0.0.1:{server.port}/v2/Users")


async def test_a_body_within_the_limit_is_read_whole_and_decoded() -> None:
    import gzip

    payload = b'{"Resources": []}' * 100
    packed = gzip.compress(payload)

    async def zipped(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(packed):x}\r\n".encode()
            + packed
            + b"\r\n0\r\n\r\n"
        )
        return True

    async with raw_server(zipped) as server, httpx.AsyncClient(transport=_transport()) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/v2/Users")
    assert response.content == payload


async def test_a_server_that_never_answers_times_out_as_a_read_timeout() -> None:
    async def silent(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    client = httpx.AsyncClient(transport=_transport(), timeout=0.3)
    async with raw_server(silent) as server, client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"http://127.0.0.1:{server.port}/v2/Users")


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with raw_server(_ok) as server:
        port = server.port
    async with httpx.AsyncClient(transport=_transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/v2/Users")


def test_one_transport_serves_one_event_loop_after_another() -> None:
    """Each ``asyncio.run`` gets a pool of its own (aiohttp's belongs to one loop), as a
    connector closed in one loop and used again in the next does."""
    transport = _transport()

    async def once() -> int:
        async with raw_server(_ok) as server, httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/v2/Users")
            return response.status_code

    assert asyncio.run(once()) == 200
    assert asyncio.run(once()) == 200


async def test_the_target_is_sent_as_httpx_built_it() -> None:
    """A filter's escapes reach the server byte for byte (no requoting on the way)."""
    async with raw_server(_ok) as server, httpx.AsyncClient(transport=_transport()) as client:
        url = f"http://127.0.0.1:{server.port}/v2/Users?filter=userName%20eq%20%22a%2Bb%40x.com%22"
        await client.get(url)
    assert server.heads[0].split(b"\r\n")[0] == (
        b"GET /v2/Users?filter=userName%20eq%20%22a%2Bb%40x.com%22 HTTP/1.1"
    )
