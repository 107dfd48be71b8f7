"""What an app announces it can do (its ``/ServiceProviderConfig``, RFC 7643 §5).

Read when the connection is tested, stored with the app, shown to admins, and used by the
connector (PUT when PATCH is unsupported, page sizes within ``filter.maxResults``). An
announcement can be wrong, so an admin setting (``patchSupport``) overrides it, and a 501
answer to a PATCH is remembered as "PATCH unsupported" whatever was announced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "BulkLimits",
    "BulkSupport",
    "Capabilities",
    "PatchSupport",
    "bulk_limits",
    "parse_service_provider_config",
]

#: Largest number kept from an announcement (a server may announce anything).
MAX_ANNOUNCED = 1_000_000_000
#: Most operations Headwater puts in one Bulk request, whatever the app allows: a failed
#: request is retried whole, and its answer is held in memory.
MAX_BULK_OPERATIONS = 1000
#: Used when an admin turns Bulk on for an app that announced no limits.
DEFAULT_BULK_OPERATIONS = 100
DEFAULT_BULK_PAYLOAD = 1_048_576
#: Smallest ``maxPayloadSize`` worth a Bulk request (below it, one operation may not fit).
MIN_BULK_PAYLOAD = 4096


class PatchSupport(StrEnum):
    """Admin override of the app's ``patch.supported``."""

    ANNOUNCED = "announced"
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


class BulkSupport(StrEnum):
    """Admin override of the app's ``bulk.supported``."""

    ANNOUNCED = "announced"
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Capabilities:
    """Each value is ``None`` when the app has not said (or was not asked)."""

    patch: bool | None = None
    bulk: bool | None = None
    bulk_max_operations: int | None = None
    bulk_max_payload_size: int | None = None
    filter: bool | None = None
    filter_max_results: int | None = None
    change_password: bool | None = None
    sort: bool | None = None
    etag: bool | None = None
    #: When the app answered "501 Not Implemented" to a PATCH (PATCH is then unsupported).
    patch_refused_at: str | None = None
    #: When the app refused (400) a look-up of several userNames joined by ``or``.
    or_filter_refused_at: str | None = None
    #: When the app refused a Bulk request (501, 404 or 405 to ``POST /Bulk``).
    bulk_refused_at: str | None = None
    #: When ``/ServiceProviderConfig`` was last read.
    read_at: str | None = None

    @property
    def known(self) -> bool:
        return self.read_at is not None or self.patch_refused_at is not None

    def patch_refused(self, when: datetime) -> Capabilities:
        return replace(self, patch=False, patch_refused_at=when.isoformat())

    def or_filter_refused(self, when: datetime) -> Capabilities:
        return replace(self, or_filter_refused_at=when.isoformat())

    def bulk_refused(self, when: datetime) -> Capabilities:
        return replace(self, bulk_refused_at=when.isoformat())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Capabilities:
        """Stored JSON back; anything of the wrong type reads as "not said"."""
        if not isinstance(data, Mapping):
            return cls()
        flags = ("patch", "bulk", "filter", "change_password", "sort", "etag")
        numbers = ("bulk_max_operations", "bulk_max_payload_size", "filter_max_results")
        texts = ("patch_refused_at", "or_filter_refused_at", "bulk_refused_at", "read_at")
        values: dict[str, Any] = {}
        for name in flags:
            value = data.get(name)
            values[name] = value if isinstance(value, bool) else None
        for name in numbers:
            values[name] = _count(data.get(name))
        for name in texts:
            value = data.get(name)
            values[name] = value[:64] if isinstance(value, str) else None
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The API's and console's view (camelCase, RFC 7643's names)."""
        return {
            "patch": {"supported": self.patch, "refusedAt": self.patch_refused_at},
            "bulk": {
                "supported": self.bulk,
                "maxOperations": self.bulk_max_operations,
                "maxPayloadSize": self.bulk_max_payload_size,
                "refusedAt": self.bulk_refused_at,
            },
            "filter": {
                "supported": self.filter,
                "maxResults": self.filter_max_results,
                "orRefusedAt": self.or_filter_refused_at,
            },
            "changePassword": {"supported": self.change_password},
            "sort": {"supported": self.sort},
            "etag": {"supported": self.etag},
            "readAt": self.read_at,
        }


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return min(value, MAX_ANNOUNCED)


def _section(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    folded = name.casefold()
    for key, value in payload.items():
        if isinstance(key, str) and key.casefold() == folded and isinstance(value, Mapping):
            return value
    return {}


def _get(section: Mapping[str, Any], name: str) -> Any:
    folded = name.casefold()
    for key, value in section.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _flag(section: Mapping[str, Any]) -> bool | None:
    value = _get(section, "supported")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _number(section: Mapping[str, Any], name: str) -> int | None:
    value = _get(section, name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return _count(value)


def parse_service_provider_config(payload: Any, when: datetime) -> Capabilities:
    """Read the capabilities out of a ``ServiceProviderConfig`` document, leniently: attribute
    names in any case, booleans as strings, missing sections as "not said"."""
    if not isinstance(payload, Mapping):
        return Capabilities(read_at=when.isoformat())
    bulk = _section(payload, "bulk")
    filters = _section(payload, "filter")
    return Capabilities(
        patch=_flag(_section(payload, "patch")),
        bulk=_flag(bulk),
        bulk_max_operations=_number(bulk, "maxOperations"),
        bulk_max_payload_size=_number(bulk, "maxPayloadSize"),
        filter=_flag(filters),
        filter_max_results=_number(filters, "maxResults"),
        change_password=_flag(_section(payload, "changePassword")),
        sort=_flag(_section(payload, "sort")),
        etag=_flag(_section(payload, "etag")),
        read_at=when.isoformat(),
    )


@dataclass(frozen=True)
class BulkLimits:
    """How much one Bulk request may carry."""

    operations: int
    payload: int


def bulk_limits(capabilities: Capabilities, support: BulkSupport) -> BulkLimits | None:
    """Whether writes go in Bulk requests, and within what: the app's announcement (and no
    refusal seen since), unless an admin says otherwise; None means one request each."""
    if support is BulkSupport.UNSUPPORTED:
        return None
    if support is BulkSupport.ANNOUNCED and (
        capabilities.bulk is not True or capabilities.bulk_refused_at is not None
    ):
        return None
    operations = capabilities.bulk_max_operations
    payload = capabilities.bulk_max_payload_size
    if support is BulkSupport.SUPPORTED:
        operations = operations or DEFAULT_BULK_OPERATIONS
        payload = payload or DEFAULT_BULK_PAYLOAD
    if not operations or operations < 2 or not payload or payload < MIN_BULK_PAYLOAD:
        # Announced without room for two operations: nothing is gained.
        return None
    return BulkLimits(min(operations, MAX_BULK_OPERATIONS), payload)
