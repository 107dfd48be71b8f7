"""The outbound policy: which addresses a request to a downstream app may reach.

Every connection Headwater opens to a downstream (SCIM calls and OAuth token requests alike)
goes through :class:`OutboundTransport`. Its network backend resolves the host name itself,
checks **every** address the name resolves to against the policy, and connects to a checked
address; TLS still verifies the certificate of the original host name, and the ``Host``
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from headwater.config import OutboundRule, ends_in_number, outbound_rules

__all__ = [
    "ALWAYS_DENIED",
    "DENIED_BY_DEFAULT",
    "OutboundDenied",
    "OutboundPolicy",
    "OutboundTransport",
    "PolicyNetworkBackend",
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


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy in front of every TCP connect.

    The name is resolved here, every address checked, and the connection made to a checked
    address (the first that answers). httpcore then starts TLS with the original host name as
    SNI and for certificate verification, because it takes those from the request's origin.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver: Resolver = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        problem = host_spelling_problem(host)
        if problem is not None:
            self._refuse(host, f"host {problem}")
        try:
            async with asyncio.timeout(timeout):
                addresses = list(await self.resolver(host, port))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        reason = self.policy.refusal(host, addresses)
        if reason is not None:
            self._refuse(host, reason)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    @staticmethod
    def _refuse(host: str, reason: str) -> None:
        log.warning("outbound request to %s refused: %s", host, reason)
        raise OutboundDenied(host, reason)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundDenied(path, "Unix sockets are not downstream apps")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


#: httpcore's exceptions as httpx's, most specific first (what httpx's own transport does).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            with _httpx_errors():
                await self._stream.aclose()


class OutboundTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every connection obeys an :class:`OutboundPolicy`.

    It is httpx's own HTTP/1.1 connection pool (httpcore) with :class:`PolicyNetworkBackend`
    as its network backend; no proxy from the environment is used, since the policy judges the
    address actually connected to. ``verify`` is httpx's: certificates are checked (against
    the system's or ``SSL_CERT_FILE``'s authorities) unless given another context.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.backend = PolicyNetworkBackend(policy, resolver)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._pool.aclose()
