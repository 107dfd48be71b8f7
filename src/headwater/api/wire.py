"""Wire formats the API reads and writes beyond Okta's JSON bodies: the apps ``filter`` and the
provisioning settings document (every setting under its public camelCase name)."""

from __future__ import annotations

import re
from dataclasses import fields
from enum import StrEnum
from typing import Any, get_type_hints

from headwater.domain.settings import (
    BOUNDS,
    MAX_TEXT,
    ProvisioningSettings,
    check_changes,
    public_name,
)
from headwater.errors import InvalidRequest

__all__ = ["parse_app_filter", "parse_settings_changes", "settings_body_schema", "settings_json"]


_FILTER_TERM = re.compile(r'^\s*(status|name)\s+eq\s+"([^"]*)"\s*$', re.IGNORECASE)


def parse_app_filter(text: str | None) -> dict[str, str]:
    """Okta's ``filter`` for apps: ``status eq "ACTIVE"`` and/or ``name eq "x"``."""
    if not text or not text.strip():
        return {}
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER_TERM.match(part)
        if match is None:
            raise InvalidRequest(
                "Invalid filter", [f"filter: unsupported expression {part.strip()!r}"]
            )
        terms[match.group(1).lower()] = match.group(2)
    return terms


def settings_json(settings: ProvisioningSettings) -> dict[str, Any]:
    """Every setting under its public name."""
    return {public_name(key): value for key, value in settings.to_json().items()}


def parse_settings_changes(data: Any) -> dict[str, Any]:
    """The settings body (public names, any subset) as validated changes by field name."""
    if not isinstance(data, dict):
        raise InvalidRequest("Api validation failed: body", ["body: must be a JSON object"])
    by_public_name = {public_name(f.name): f.name for f in fields(ProvisioningSettings)}
    unknown = sorted(set(data) - set(by_public_name))
    if unknown:
        cause = f"{', '.join(unknown)}: unknown setting"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    return check_changes({by_public_name[key]: value for key, value in data.items()})


def settings_body_schema() -> dict[str, Any]:
    """``openapi_extra`` for the settings body, made from the settings themselves (types,
    values, bounds), so the schema, and every client and fuzz that reads it, knows each one."""
    properties: dict[str, Any] = {}
    for name, kind in get_type_hints(ProvisioningSettings).items():
        if kind is bool:
            schema: dict[str, Any] = {"type": "boolean"}
        elif isinstance(kind, type) and issubclass(kind, StrEnum):
            schema = {"type": "string", "enum": [member.value for member in kind]}
        elif kind is str:
            schema = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
        else:
            low, high = BOUNDS[name]
            schema = {"type": "integer" if kind is int else "number"}
            schema |= {"minimum": low, "maximum": high}
        properties[public_name(name)] = schema
    body = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": body}}}}
