"""Runtime settings, read once from the environment and passed down (no import-time globals)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "OutboundRule",
    "Settings",
    "SettingsError",
    "ends_in_number",
    "mask_database_url",
    "outbound_rules",
]


class SettingsError(ValueError):
    """A setting Headwater cannot start with. The message is one line for the operator, names
    the setting and never repeats a secret."""


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
    #: Batches of one app a worker keeps in flight at once: the next is claimed, planned and
    #: sending while the last one's slowest requests finish and it is recorded. They share the
    #: app's connector and its limits, so the requests in flight to the app do not grow with it.
    worker_batches_per_app: int = Field(default=2, ge=1, le=8)
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
    #: Bearer token a scraper must send to read ``/metrics``; when unset, ``/metrics`` answers
    #: only clients on loopback. At least 16 visible ASCII characters, at most 256.
    metrics_token: str | None = Field(default=None, repr=False)
    #: Serve the API's reference (``/docs``) and its OpenAPI schema (``/openapi.json``).
    api_docs: bool = True
    #: A client must send a request's line and headers within this many seconds of connecting
    #: (or of the previous response), or its connection is closed.
    header_timeout_seconds: float = Field(default=10.0, ge=1, le=300)
    #: ... and a request's whole body within this many seconds of its headers.
    body_timeout_seconds: float = Field(default=30.0, ge=1, le=3600)
    #: An idle keep-alive connection is closed after this many seconds.
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    #: Threads that run the API's and the console's handlers at once. Unset: 4 on SQLite,
    #: 40 on PostgreSQL (decision 55).
    api_threads: int | None = Field(default=None, ge=1, le=256)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """The settings from the environment (and ``overrides``); SettingsError (one line)
        when one is wrong."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty variable is no token
        if not 16 <= len(value) <= 256 or not all("!" <= c <= "~" for c in value):
            raise ValueError("must be 16 to 256 visible ASCII characters (no spaces)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            Fernet(value)
        except (ValueError, TypeError):
            raise ValueError(
                "must be a Fernet key: 32 bytes in URL-safe base64 (44 characters); "
                "make one with Fernet.generate_key()"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            url = make_url(normalize_database_url(value))
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(
                f"scheme {url.drivername!r} is not supported; use sqlite:///path/headwater.db "
                "or postgresql://user@host/db"
            )
        return value

    @field_validator("outbound_allow", "outbound_deny")
    @classmethod
    def _outbound_list(cls, value: str) -> str:
        outbound_rules(value)
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        make_data_dir(self.data_dir)
        return f"sqlite:///{(self.data_dir / 'headwater.db').resolve()}"


def make_data_dir(path: Path) -> None:
    """Create the data folder readable by its owner only (0700): it holds the SQLite file and
    the key file. An existing folder keeps its mode (the operator chose it)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"HEADWATER_DATA_DIR: cannot create the folder {str(path)!r}: {exc.strerror}"
        ) from None


def describe(exc: ValidationError) -> str:
    """A settings error as one line: each wrong setting's variable and why, never its value."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        name = "HEADWATER_" + "_".join(str(part) for part in error["loc"][:1]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return "; ".join(parts) or "the settings are not valid"


def mask_database_url(url: str) -> str:
    """A database URL with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def normalize_database_url(url: str) -> str:
    """Accept the common spellings and pick the psycopg 3 driver for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
