"""Time in one place: UTC everywhere, Okta's timestamp format at the edges."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_okta", "parse_okta", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Databases may hand back naive datetimes (SQLite); they are always UTC here."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_okta(value: datetime | None) -> str | None:
    """``2024-01-01T00:00:00.000Z``, as Okta writes timestamps."""
    if value is None:
        return None
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_okta(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or an offset); raises ValueError on bad input."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return as_utc(value)
