"""The outbound policy: which addresses a request to a downstream app may reach.

Every connection Headwater opens to a downstream (SCIM calls and OAuth token requests alike)
goes through :class:`OutboundTransport`. Its resolver looks the host name up itself, checks
**every** address the name resolves to against the policy, and lets the pool connect only to a
checked address; TLS still verifies the certificate of the original host name, and the ``Host``
header is the URL's. Because the check is made when a connection is opened, a name that
resolved to a public address when the connection was saved and to an internal one later (DNS
rebinding) is refused all the same.

The verdict for a host and its addresses, in order:

1. a host spelled as a number that is not a canonical dotted quad (``2130706433``,
   ``0x7f000001``, ``0177.0.0.1``, ``127.1``) is refused;
2. a host matching a denied host pattern is refused;
3. an address in a link-local or cloud metadata range (:data:`ALWAYS_DENIED`, which no allow
   entry lifts) or in a denied network is refused;
4. a host matching an allowed host pattern is allowed;
5. an address in an allowed network is allowed; one in :data:`DENIED_BY_DEFAULT` (loopback,
   private, shared, unspecified, multicast, reserved) is refused; any other (public) address
   is allowed.

An IPv4 address written as IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::7f00:1``) is judged
as the IPv4 address it stands for, too.

Transports handed to the ``ConnectorFactory`` for in-process apps (tests) open no socket and
are not subject to the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

import aiohttp
import aiohttp.abc
import httpx
from yarl import URL

from headwater.config import OutboundRule, ends_in_number, outbound_rules

__all__ = [
    "ALWAYS_DENIED",
    "DENIED_BY_DEFAULT",
    "OutboundDenied",
    "OutboundPolicy",
    "OutboundTransport",
    "Resolver",
    "host_spelling_problem",
    "system_resolver",
]

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolve(host, port)`` → the addresses ``host`` stands for, as strings.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

#: Link-local and cloud metadata endpoints: refused whatever the allow list says.
ALWAYS_DENIED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
#: Refused unless an allow entry names them.
DENIED_BY_DEFAULT: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",  # loopback
        "::1/128",
        "10.0.0.0/8",  # private
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fec0::/10",  # deprecated site-local
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "0.0.0.0/8",  # unspecified, "this network"
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: The most of a response body read from a downstream (a bigger one is a protocol error).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: The longest status line or header field a downstream may send.
MAX_HEADER_BYTES = 16 * 1024
#: httpx sets these itself; aiohttp must not add its own.
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type", "Host")

#: What a refused request says (the reason goes to the operational log only).
DENIED_MESSAGE = "address not allowed by the outbound policy"


class OutboundDenied(httpx.TransportError):
    """The outbound policy refused the connection; nothing was sent."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(DENIED_MESSAGE)
        self.host = host
        self.reason = reason


def host_spelling_problem(host: str) -> str | None:
    """Why a URL's host may not be used as spelled, or None.

    Numbers other than a canonical dotted quad (``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
    ``127.1``) mean an IPv4 address to some parsers and a name to others; IPv6 zone ids name an
    interface of this machine.
    """
    name = host.strip("[]")
    if ":" in name:
        if "%" in name:
            return "must not carry an IPv6 zone id"
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    if ends_in_number(name):
        try:
            canonical = str(ipaddress.IPv4Address(name))
        except ValueError:
            canonical = ""
        if canonical != name:
            return "must spell an IPv4 address as four decimal numbers (like 192.0.2.10)"
    return None


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _embedded(address: Address) -> Iterator[Address]:
    """The address, and the IPv4 address an IPv6 one stands for (mapped or NAT64)."""
    yield address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
        elif address in _NAT64:
            yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


@dataclass(frozen=True)
class OutboundPolicy:
    """Allowed and denied networks and host patterns (see the module docstring)."""

    allow: tuple[OutboundRule, ...] = ()
    deny: tuple[OutboundRule, ...] = ()

    @classmethod
    def from_text(cls, allow: str = "", deny: str = "") -> OutboundPolicy:
        """From ``HEADWATER_OUTBOUND_ALLOW`` / ``_DENY`` (comma-separated)."""
        return cls(outbound_rules(allow), outbound_rules(deny))

    @staticmethod
    def _networks(rules: Iterable[OutboundRule]) -> list[Network]:
        return [rule for rule in rules if not isinstance(rule, str)]

    @staticmethod
    def _hosts(rules: Iterable[OutboundRule]) -> list[str]:
        return [rule for rule in rules if isinstance(rule, str)]

    def refusal(self, host: str, addresses: Sequence[str]) -> str | None:
        """Why a connection to ``host`` at ``addresses`` is refused, or None when every
        address may be reached."""
        problem = host_spelling_problem(host.strip("[]"))
        name = host.strip("[]").lower().removesuffix(".")
        if problem is not None:
            return f"host {problem}"
        if any(_matches(name, pattern) for pattern in self._hosts(self.deny)):
            return "host is denied"
        if not addresses:
            return "host resolves to no address"
        host_allowed = any(_matches(name, pattern) for pattern in self._hosts(self.allow))
        denied = (*ALWAYS_DENIED, *self._networks(self.deny))
        allowed = self._networks(self.allow)
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                return f"{text!r} is not an address"
            candidates = list(_embedded(address))
            if any(a in net for a in candidates for net in denied if a.version == net.version):
                return f"{address} is denied"
            if host_allowed:
                continue
            if all(self._allowed(a, allowed) for a in candidates):
                continue
            return f"{address} is not allowed"
        return None

    @staticmethod
    def _allowed(address: Address, allowed: Sequence[Network]) -> bool:
        if any(address in net for net in allowed if address.version == net.version):
            return True
        return not any(
            address in net for net in DENIED_BY_DEFAULT if address.version == net.version
        )


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (``getaddrinfo``), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class _PolicyResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver with the policy in front: every address a name stands for is checked
    before any of them is connected to. aiohttp then connects to a checked address and starts
    TLS with the URL's host name as SNI and for certificate verification."""

    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        addresses = list(await self.resolver(host, port))
        reason = self.policy.refusal(host, addresses)
        if reason is not None:
            _refuse(host, reason)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _refuse(host: str, reason: str) -> NoReturn:
    log.warning("outbound request to %s refused: %s", host, reason)
    raise OutboundDenied(host, reason)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


#: aiohttp's failures as httpx's, most specific first (the connector classifies httpx's).
_EXCEPTIONS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientSSLError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.NetworkError),
    (ValueError, httpx.LocalProtocolError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__, request=request) from exc
        raise


async def _read_capped(answer: aiohttp.ClientResponse, request: httpx.Request) -> bytes:
    """The whole body, or a protocol error once it passes :data:`MAX_RESPONSE_BYTES`."""
    limit = MAX_RESPONSE_BYTES
    parts: list[bytes] = []
    size = answer.content_length or 0
    if size <= limit:
        size = 0
        while part := await answer.content.read(limit + 1 - size):
            parts.append(part)
            size += len(part)
            if size > limit:
                break
    if size > limit:
        raise httpx.RemoteProtocolError(f"response body over {limit} bytes", request=request)
    return b"".join(parts)


class OutboundTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every connection obeys an :class:`OutboundPolicy`.

    Requests are sent by aiohttp's HTTP/1.1 connection pool (a sixth of httpx's own client
    CPU per request; decision 50) with :class:`_PolicyResolver` in front of every new
    connection; a host spelled as an address is judged here, since aiohttp does not resolve
    one. httpx above it still builds requests, runs auth flows and decodes bodies; no proxy
    from the environment is used, no cookie is kept at this level, and a response body is
    read whole, up to :data:`MAX_RESPONSE_BYTES`. ``verify`` is httpx's: certificates are
    checked (against the system's or ``SSL_CERT_FILE``'s authorities) unless given another
    context.

    aiohttp's pool belongs to the event loop that made it: a request from another loop (a new
    ``asyncio.run``) starts a new pool; the old one's sockets went with their loop.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.policy = policy
        self.resolver: Resolver = resolver or system_resolver
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._ssl = httpx.create_ssl_context(verify=verify)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 0,
                resolver=_PolicyResolver(self.policy, self.resolver),
                use_dns_cache=False,  # every new connection is judged on a fresh look-up
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, by the response's headers
                skip_auto_headers=_AUTO_HEADERS,
                trust_env=False,
                max_line_size=MAX_HEADER_BYTES,
                max_field_size=MAX_HEADER_BYTES,
            )
            # aiohttp resends an idempotent request once, unseen, after a reset; the engine's
            # own retries (with backoff, each failure logged) do that here.
            self._session._retry_connection = False
            self._loop = loop
        return self._session

    def _judge(self, host: str) -> None:
        """Refuse a host spelled oddly, or an address outside the policy (names are judged by
        the resolver, address by address; ``refusal`` judges the spelling first)."""
        if _is_address(host) or host_spelling_problem(host) is not None:
            reason = self.policy.refusal(host, [host])
            if reason is not None:
                _refuse(host, reason)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._judge(request.url.host)
        body = await request.aread()
        limits = request.extensions.get("timeout", {})
        connect, read, pool = limits.get("connect"), limits.get("read"), limits.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        ]
        with _httpx_errors(request):
            async with self._session_here().request(
                request.method,
                URL(str(request.url), encoded=True),  # as httpx built it, not requoted
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                content = await _read_capped(answer, request)
                return httpx.Response(
                    status_code=answer.status,
                    headers=list(answer.raw_headers),
                    stream=httpx.ByteStream(content),
                    request=request,
                )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()
