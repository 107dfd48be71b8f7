"""The outbound policy: verdicts from tables, then enforcement on real loopback sockets.

Verdicts on public, private and metadata addresses are checked as data (``refusal``), without
connecting anywhere. Enforcement is checked only with loopback addresses outside the allow
list (allow ``127.0.0.1/32``, try ``127.0.0.2``) and with a stubbed resolver: a listener on the
refused address proves that not even a TCP connection reached it. No test here sends a packet
to a non-loopback address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from headwater.config import Settings
from headwater.connectors.errors import AppUnavailableError
from headwater.connectors.outbound import (
    OutboundPolicy,
    OutboundTransport,
    host_spelling_problem,
)
from headwater.connectors.scim import ScimConnector
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import LOOPBACK_ALLOW, Listener, StubResolver

DENIED = "address not allowed by the outbound policy"
FAST = ProvisioningSettings(connect_timeout=2, request_timeout=5)


# --- Verdicts, as data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 for 10.0.0.1
    ],
)
def test_internal_addresses_are_denied_by_default(address: str) -> None:
    assert OutboundPolicy().refusal("scim.example.com", [address]) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "172.32.0.1", "8.8.8.8"]
)
def test_public_addresses_are_allowed_by_default(address: str) -> None:
    assert OutboundPolicy().refusal("scim.example.com", [address]) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 for 169.254.169.254
    ],
)
def test_metadata_and_link_local_stay_denied_whatever_the_allow_list(address: str) -> None:
    everything = OutboundPolicy.from_text(
        "0.0.0.0/0, ::/0, 169.254.0.0/16, fe80::/10, 100.64.0.0/10, *.example.com"
    )
    assert everything.refusal("scim.example.com", [address]) is not None


def test_allow_list_lifts_the_default_denial_of_exactly_what_it_names() -> None:
    policy = OutboundPolicy.from_text(LOOPBACK_ALLOW)
    assert policy.refusal("localhost", ["127.0.0.1"]) is None
    assert policy.refusal("localhost", ["127.0.0.2"]) is not None
    assert policy.refusal("localhost", ["::1"]) is not None
    assert policy.refusal("localhost", ["::ffff:127.0.0.1"]) is None
    assert policy.refusal("db.internal", ["10.0.0.1"]) is not None


def test_every_address_of_a_name_must_pass() -> None:
    policy = OutboundPolicy.from_text(LOOPBACK_ALLOW)
    assert policy.refusal("scim.example.com", ["93.184.216.34", "127.0.0.2"]) is not None
    assert policy.refusal("scim.example.com", ["127.0.0.1", "169.254.169.254"]) is not None
    assert policy.refusal("scim.example.com", []) is not None


def test_host_patterns() -> None:
    policy = OutboundPolicy.from_text(
        allow="*.corp.example, scim.partner.example", deny="*.blocked.example, 203.0.113.0/24"
    )
    assert policy.refusal("scim.corp.example", ["10.0.0.5"]) is None
    assert policy.refusal("a.b.corp.example", ["192.168.0.9"]) is None
    assert policy.refusal("corp.example", ["10.0.0.5"]) is not None  # only names under it
    assert policy.refusal("evilcorp.example", ["10.0.0.5"]) is not None
    assert policy.refusal("SCIM.Partner.Example.", ["10.9.9.9"]) is None
    assert policy.refusal("scim.corp.example", ["169.254.169.254"]) is not None
    assert policy.refusal("x.blocked.example", ["93.184.216.34"]) is not None
    assert policy.refusal("scim.example.com", ["203.0.113.7"]) is not None


def test_deny_wins_over_allow() -> None:
    policy = OutboundPolicy.from_text(allow="10.0.0.0/8, *.corp.example", deny="10.1.0.0/16")
    assert policy.refusal("scim.example.com", ["10.2.0.1"]) is None
    assert policy.refusal("scim.example.com", ["10.1.0.1"]) is not None
    assert policy.refusal("scim.corp.example", ["10.1.0.1"]) is not None


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.0.1.", "1.2.3.4.5"],
)
def test_numbers_not_spelled_as_dotted_quads_are_refused(host: str) -> None:
    assert host_spelling_problem(host) is not None
    allow_loopback = OutboundPolicy.from_text("127.0.0.0/8")
    assert allow_loopback.refusal(host, ["127.0.0.1"]) is not None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "scim.example.com", "scim.example.com.", "1password.com", "::1"]
)
def test_plain_hosts_are_fine(host: str) -> None:
    assert host_spelling_problem(host) is None


def test_ipv6_zone_ids_are_refused() -> None:
    assert host_spelling_problem("fe80::1%eth0") is not None


@pytest.mark.parametrize(
    "text", ["10.0.0.0/8, *.corp.example, scim.example.com", "::1, fc00::/7", " , ", ""]
)
def test_settings_accept_networks_and_host_patterns(text: str) -> None:
    assert Settings(outbound_allow=text, outbound_deny=text).outbound_allow == text


@pytest.mark.parametrize(
    "text", ["*", "http://scim.example.com", "10.0.0", "scim example", "*.*.example", "a" * 300]
)
def test_settings_refuse_anything_else(text: str) -> None:
    with pytest.raises(ValidationError, match="outbound_allow"):
        Settings(outbound_allow=text)
    with pytest.raises(ValidationError, match="outbound_deny"):
        Settings(outbound_deny=text)


# --- Enforcement, on loopback --------------------------------------------------------------------


def _loopback_only(resolver: StubResolver | None = None) -> OutboundTransport:
    return OutboundTransport(OutboundPolicy.from_text(LOOPBACK_ALLOW), resolver=resolver)


@pytest.fixture
def forbidden() -> Iterator[Listener]:
    """A listener on 127.0.0.2, which the allow list does not name."""
    with Listener("127.0.0.2") as listener:
        yield listener


async def test_an_address_outside_the_allow_list_is_never_connected_to(
    forbidden: Listener,
) -> None:
    url = f"{forbidden.origin}/v2"
    async with ScimConnector(url, auth=None, settings=FAST, transport=_loopback_only()) as scim:
        with pytest.raises(AppUnavailableError) as caught:
            await scim.test_connection()
        assert caught.value.message == f"GET /ServiceProviderConfig: {DENIED}"
        with pytest.raises(AppUnavailableError, match=DENIED):
            await scim.get_user("x")  # mid-run too, and not a retryable blip
    assert forbidden.accepted == 0


async def test_the_resolved_address_is_checked_not_the_name(forbidden: Listener) -> None:
    resolver = StubResolver({"scim.example.test": ["127.0.0.2"]})
    url = f"http://scim.example.test:{forbidden.port}/v2"
    transport = _loopback_only(resolver)
    async with ScimConnector(url, auth=None, settings=FAST, transport=transport) as scim:
        with pytest.raises(AppUnavailableError, match=DENIED):
            await scim.test_connection()
    assert resolver.calls == ["scim.example.test"]
    assert forbidden.accepted == 0


async def test_one_bad_address_refuses_the_name() -> None:
    with Listener("127.0.0.1") as allowed:
        resolver = StubResolver({"scim.example.test": ["127.0.0.1", "169.254.169.254"]})
        url = f"http://scim.example.test:{allowed.port}/v2"
        transport = _loopback_only(resolver)
        async with ScimConnector(url, auth=None, settings=FAST, transport=transport) as scim:
            with pytest.raises(AppUnavailableError, match=DENIED):
                await scim.test_connection()
        assert allowed.accepted == 0


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.0.0.1", "127.1"])
async def test_numeric_spellings_are_refused_at_connect_time(host: str) -> None:
    """Even with all of loopback allowed: the spelling is refused before any lookup. (httpx
    itself refuses to parse a dotted quad with a leading zero, like ``0177.0.0.1``.)"""
    resolver = StubResolver({})
    transport = OutboundTransport(OutboundPolicy.from_text("127.0.0.0/8"), resolver=resolver)
    with Listener("127.0.0.1") as target:
        url = f"http://{host}:{target.port}/v2"
        async with ScimConnector(url, auth=None, settings=FAST, transport=transport) as scim:
            with pytest.raises(AppUnavailableError, match=DENIED):
                await scim.test_connection()
        assert target.accepted == 0
    assert resolver.calls == []


async def test_a_name_that_turns_internal_is_refused_on_the_next_connection() -> None:
    """DNS rebinding: the check is made when a connection is opened, not when the URL was
    saved, so a name that moves to a refused address is refused from then on."""
    with ScimServerProcess() as server, Listener("127.0.0.2", server.port) as forbidden:
        resolver = StubResolver({"scim.example.test": ["127.0.0.1"]})
        url = f"http://scim.example.test:{server.port}/v2"
        async with ScimConnector(
            url, auth=None, settings=FAST, transport=_loopback_only(resolver)
        ) as scim:
            await scim.test_connection()
        resolver.table["scim.example.test"] = ["127.0.0.2"]
        async with ScimConnector(
            url, auth=None, settings=FAST, transport=_loopback_only(resolver)
        ) as scim:
            with pytest.raises(AppUnavailableError, match=DENIED):
                await scim.test_connection()
        assert forbidden.accepted == 0


async def test_the_default_transport_applies_the_default_policy() -> None:
    """A connector built without a transport refuses loopback (nothing allows it)."""
    with Listener("127.0.0.1") as target:
        async with ScimConnector(f"{target.origin}/v2", auth=None, settings=FAST) as scim:
            with pytest.raises(AppUnavailableError, match=DENIED):
                await scim.test_connection()
        assert target.accepted == 0


# --- TLS: connected to the checked address, verified for the host name -------------------------


@dataclass
class Authority:
    """A throwaway certificate authority and server certificates it signs."""

    folder: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
        now = dt.datetime.now(dt.UTC)
        self.name = name
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cadata=self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        )
        return context

    def server_context(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.folder / f"{host}.pem", self.folder / f"{host}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


@asynccontextmanager
async def tls_server(context: ssl.SSLContext, seen: dict[str, str]) -> AsyncIterator[int]:
    """HTTPS on 127.0.0.1 answering ``{}``; ``seen`` gets the SNI and the Host header."""

    def sni(sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        seen["sni"] = name or ""

    context.sni_callback = sni
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("host:"):
                seen["host"] = line.split(":", 1)[1].strip()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_tls_is_verified_for_the_host_name_while_connecting_to_the_checked_address(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path)
    seen: dict[str, str] = {}
    resolver = StubResolver({"scim.tls.test": ["127.0.0.1"]})
    async with tls_server(authority.server_context("scim.tls.test"), seen) as port:
        transport = OutboundTransport(
            OutboundPolicy.from_text(LOOPBACK_ALLOW),
            resolver=resolver,
            verify=authority.client_context(),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"https://scim.tls.test:{port}/v2/Users")
    assert response.status_code == 200
    assert seen == {"sni": "scim.tls.test", "host": f"scim.tls.test:{port}"}
    assert resolver.calls == ["scim.tls.test"]


async def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    authority = Authority(tmp_path)
    resolver = StubResolver({"scim.tls.test": ["127.0.0.1"]})
    async with tls_server(authority.server_context("other.tls.test"), {}) as port:
        transport = OutboundTransport(
            OutboundPolicy.from_text(LOOPBACK_ALLOW),
            resolver=resolver,
            verify=authority.client_context(),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await client.get(f"https://scim.tls.test:{port}/v2/Users")
