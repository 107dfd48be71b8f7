"""Wire formats the API reads and writes beyond Okta's JSON bodies: the apps ``filter`` and the
provisioning settings document (every setting under its public camelCase name)."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from headwater.domain.settings import ProvisioningSettings, check_changes, public_name
from headwater.errors import InvalidRequest

__all__ = ["parse_app_filter", "parse_settings_changes", "settings_json"]


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
