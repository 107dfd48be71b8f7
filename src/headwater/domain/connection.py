"""How to reach an app: the connection as stored (secret sealed) and as prepared for a test."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.domain.settings import ProvisioningSettings

__all__ = ["ConnectionInfo", "PreparedConnection"]


@dataclass(frozen=True)
class ConnectionInfo:
    """How to reach an app: its base URL, auth scheme and sealed secret (never in clear here)."""

    app_id: str
    base_url: str
    auth_scheme: str
    secret_encrypted: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PreparedConnection:
    """A validated connection, sealed, not yet stored (it may be tested first)."""

    info: ConnectionInfo
    settings: ProvisioningSettings
    #: Plain secret values, only to scrub them from any message a downstream sends back.
    hidden: tuple[str, ...] = field(repr=False)
