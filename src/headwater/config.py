"""Runtime settings, read once from the environment and passed down (no import-time globals)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OutboundRule", "Settings", "ends_in_number", "outbound_rules"]

#: An entry of ``HEADWATER_OUTBOUND_ALLOW`` / ``_DENY``: a network, or a host name pattern
#: (``scim.example.com``, or ``*.corp.example`` for every name under ``corp.example``).
OutboundRule = ipaddress.IPv4Network | ipaddress.IPv6Network | str

#: Most entries one outbound list may hold, and the longest list accepted.
MAX_OUTBOUND_RULES = 256
MAX_OUTBOUND_TEXT = 16_384
_HOST_PATTERN = re.compile(
    r"(\*\.)?([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
)
_NUMBER = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def ends_in_number(host: str) -> bool:
    """Whether a URL parser (WHATWG) would read ``host`` as an IPv4 address: its last label
    (after one trailing dot) is a decimal, octal or hexadecimal number."""
    labels = host.removesuffix(".").split(".")
    return bool(labels) and _NUMBER.fullmatch(labels[-1]) is not None


def outbound_rules(text: str) -> tuple[OutboundRule, ...]:
    """Parse a comma-separated outbound list; ValueError names the first bad entry."""
    if len(text) > MAX_OUTBOUND_TEXT:
        raise ValueError(f"must be at most {MAX_OUTBOUND_TEXT} characters")
    rules: list[OutboundRule] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            rules.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = entry.removesuffix(".")
        if len(name) > 253 or not _HOST_PATTERN.fullmatch(name) or ends_in_number(name):
            raise ValueError(
                f"{raw.strip()!r} is neither a network (10.0.0.0/8, ::1) nor a host name "
                "pattern (scim.example.com, *.corp.example)"
            )
        rules.append(name)
    if len(rules) > MAX_OUTBOUND_RULES:
        raise ValueError(f"must hold at most {MAX_OUTBOUND_RULES} entries")
    return tuple(rules)


class Settings(BaseSettings):
    """Headwater's settings; every field can be set as ``HEADWATER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_", extra="ignore")

    #: Folder for the default SQLite database and the generated secret key file.
    data_dir: Path = Path("data")
    #: SQLAlchemy URL; defaults to ``sqlite:///<data_dir>/headwater.db``.
    database_url: str | None = None
    #: Key that encrypts downstream credentials at rest (Fernet, urlsafe base64, 32 bytes).
    #: When unset, a key file is created in ``data_dir`` with mode 0600 on first start.
    secret_key: str | None = Field(default=None, repr=False)
    #: Largest request body the API accepts, in bytes.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    #: Run the reconcile worker inside ``headwater serve``.
    embedded_worker: bool = True
    #: Keys claimed per worker batch.
    worker_batch_size: int = Field(default=200, ge=1, le=5000)
    #: Seconds a claimed key stays leased before another worker may take it over.
    lease_seconds: int = Field(default=120, ge=10, le=3600)
    #: First retry delay in seconds for transient downstream failures (doubles up to a cap).
    retry_base_seconds: float = Field(default=1.0, ge=0.01, le=60)
    #: Seconds an idle worker waits between polls when no notification arrives.
    idle_poll_seconds: float = Field(default=1.0, ge=0.01, le=60)
    #: Apps one worker reconciles at once (each in its own lane).
    worker_lanes: int = Field(default=32, ge=1, le=256)
    #: A worker loop that has not gone round for this many seconds is reported stuck.
    worker_stuck_seconds: float = Field(default=120.0, ge=1, le=3600)
    #: Public base URL used in ``_links`` (defaults to the request's own base URL).
    public_url: str | None = None
    #: ``text`` for people, ``json`` for a log pipeline (every field of engine records).
    log_format: Literal["text", "json"] = "text"
    #: Lowest level logged (DEBUG, INFO, WARNING, ERROR).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: A console session ends after this many minutes without a request (1 to 1440).
    console_idle_minutes: int = Field(default=30, ge=1, le=1440)
    #: ... and at the latest this many hours after sign-in, however active (1 to 168).
    console_session_hours: int = Field(default=8, ge=1, le=168)
    #: Networks and host names downstream requests may reach although the outbound policy
    #: denies them by default (loopback, private, ...), comma-separated: ``10.20.0.0/16,
    #: scim.corp.example, *.corp.example``. Link-local and cloud metadata addresses stay denied.
    outbound_allow: str = ""
    #: Networks and host names downstream requests may never reach, comma-separated (wins over
    #: ``outbound_allow``).
    outbound_deny: str = ""

    @field_validator("outbound_allow", "outbound_deny")
    @classmethod
    def _outbound_list(cls, value: str) -> str:
        outbound_rules(value)
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'headwater.db').resolve()}"


def normalize_database_url(url: str) -> str:
    """Accept the common spellings and pick the psycopg 3 driver for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
