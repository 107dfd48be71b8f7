"""Runtime settings, read once from the environment and passed down (no import-time globals)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


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
    max_body_bytes: int = 1_048_576
    #: Run the reconcile worker inside ``headwater serve``.
    embedded_worker: bool = True
    #: Keys claimed per worker batch.
    worker_batch_size: int = 200
    #: Seconds a claimed key stays leased before another worker may take it over.
    lease_seconds: int = 120
    #: First retry delay in seconds for transient downstream failures (doubles up to a cap).
    retry_base_seconds: float = 1.0
    #: Seconds an idle worker waits between polls when no notification arrives.
    idle_poll_seconds: float = 1.0
    #: Apps one worker reconciles at once (each in its own lane).
    worker_lanes: int = 32
    #: A worker loop that has not gone round for this many seconds is reported stuck.
    worker_stuck_seconds: float = 120.0
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
