"""Builds a connector for an app from its stored connection (decrypting the secret in memory).

Every connector that opens sockets does so through an ``OutboundTransport``: the outbound
policy is checked on the resolved address of every connection it opens. Transports registered
in ``transports`` (in-process apps, for tests) open no socket and bypass it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from headwater.connectors.auth import build_auth
from headwater.connectors.ldap import LdapConnector
from headwater.connectors.outbound import OutboundPolicy, OutboundTransport, Resolver
from headwater.connectors.scim import ScimConnector
from headwater.connectors.scrub import Scrubber
from headwater.crypto import SecretBox
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import ConnectionInfo
from headwater.domain.ldap import LDAP_SCHEME, parse_profile
from headwater.domain.settings import ProvisioningSettings
from headwater.engine.limits import AppLimits, GatedTransport
from headwater.engine.ports import Connector

__all__ = ["ConnectorFactory", "RequestHook"]

RequestHook = Callable[[str, str, str, int | None, float], None]
"""Called after every downstream request: (app_id, method, path, status, seconds)."""


class ConnectorFactory:
    """Makes SCIM and LDAP connectors; tests hand in transports that route a SCIM base URL
    in-process."""

    def __init__(
        self,
        secrets: SecretBox,
        *,
        policy: OutboundPolicy | None = None,
        resolver: Resolver | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        self._secrets = secrets
        #: Where downstream requests may go (``HEADWATER_OUTBOUND_ALLOW`` / ``_DENY``).
        self.policy = policy or OutboundPolicy()
        #: How host names are resolved (the system's ``getaddrinfo`` when None).
        self.resolver = resolver
        self.transports = dict(transports or {})
        self.hooks: list[RequestHook] = [on_request] if on_request else []

    def _transport_for(self, base_url: str) -> httpx.AsyncBaseTransport | None:
        for prefix, transport in self.transports.items():
            # A prefix names an origin or a path: it matches only at a "/" boundary, so
            # http://scim.test never routes http://scim.test2.
            root = prefix.rstrip("/")
            if base_url == root or base_url.startswith(root + "/"):
                return transport
        return None

    def build(
        self,
        connection: ConnectionInfo,
        settings: ProvisioningSettings,
        limits: AppLimits | None = None,
        capabilities: Capabilities | None = None,
        group_locks: dict[str, asyncio.Lock] | None = None,
    ) -> Connector:
        """A connector for the app; ``group_locks`` (SCIM: a group's read-then-PUT) are shared
        by every connector built for the app with the same dict."""
        secret = (
            self._secrets.open(connection.secret_encrypted) if connection.secret_encrypted else {}
        )
        plain = {k: str(v) for k, v in secret.items()}
        scrubber = Scrubber.for_secret(plain)
        app_id = connection.app_id

        def on_request(method: str, path: str, status: int | None, seconds: float) -> None:
            for hook in self.hooks:
                hook(app_id, method, path, status, seconds)

        if connection.auth_scheme == LDAP_SCHEME:
            return LdapConnector(
                connection.base_url,
                password=plain.get("password", ""),
                profile=parse_profile(plain),
                settings=settings,
                policy=self.policy,
                resolver=self.resolver,
                scrubber=scrubber,
                gate=limits.slot if limits is not None else None,
                observe=limits.observe if limits is not None else None,
                on_request=on_request,
            )
        auth = build_auth(connection.auth_scheme, plain, scrubber=scrubber)

        transport = self._transport_for(connection.base_url) or OutboundTransport(
            self.policy,
            resolver=self.resolver,
            limits=httpx.Limits(max_connections=max(settings.max_concurrency, 1) * 2),
        )
        if limits is not None:
            transport = GatedTransport(transport, limits)
        return ScimConnector(
            connection.base_url,
            auth=auth,
            settings=settings,
            transport=transport,
            on_request=on_request,
            scrubber=scrubber,
            capabilities=capabilities,
            group_locks=group_locks,
        )
