"""Profile rules for users and groups: Okta's default schema plus typed custom attributes.

Everything stored must load back into the official SDK's models (which are strict about
standard attributes) and into both databases (no NUL, no lone surrogates, finite numbers), so
the rules are checked here, once, whatever the entry point. Text and number rules are
``storable``'s, shared with every other stored value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headwater.domain.storable import MAX_SAFE_INTEGER, check_text
from headwater.errors import InvalidRequest

__all__ = [
    "EMAIL_PATTERN",
    "GROUP_TEXT",
    "MAX_ATTRIBUTES",
    "USER_STANDARD",
    "TextRule",
    "check_text",
    "json_schema",
    "merge",
    "validate_group_profile",
    "validate_user_profile",
]

EMAIL_PATTERN = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
_EMAIL = re.compile(EMAIL_PATTERN)
CUSTOM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
_CUSTOM_NAME = re.compile(CUSTOM_NAME_PATTERN)
MAX_CUSTOM_TEXT = 4096
MAX_ARRAY_ITEMS = 200
#: Attributes of one profile, standard ones included.
MAX_ATTRIBUTES = 500


@dataclass(frozen=True)
class TextRule:
    """A standard string attribute of Okta's default profile."""

    min_length: int = 0
    max_length: int = 1024
    required: bool = False
    email: bool = False


USER_STANDARD: Mapping[str, TextRule] = {
    "login": TextRule(5, 100, required=True),
    "email": TextRule(5, 100, required=True, email=True),
    "firstName": TextRule(1, 50, required=True),
    "lastName": TextRule(1, 50, required=True),
    "secondEmail": TextRule(0, 100, email=True),
    "city": TextRule(0, 128),
    "state": TextRule(0, 128),
    "countryCode": TextRule(0, 2),
    "zipCode": TextRule(0, 50),
    "streetAddress": TextRule(0, 1024),
    "postalAddress": TextRule(0, 4096),
    "mobilePhone": TextRule(0, 100),
    "primaryPhone": TextRule(0, 100),
    **{
        name: TextRule()
        for name in (
            "middleName",
            "honorificPrefix",
            "honorificSuffix",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "department",
            "division",
            "organization",
            "costCenter",
            "employeeNumber",
            "manager",
            "managerId",
            "userType",
            "locale",
            "preferredLanguage",
            "timezone",
        )
    },
}

GROUP_TEXT: Mapping[str, TextRule] = {
    "name": TextRule(1, 255, required=True),
    "description": TextRule(0, 1024),
}


def merge(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A partial update: given attributes replace, ``null`` removes, the rest is kept."""
    merged = {**current, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def validate_user_profile(profile: Any) -> dict[str, Any]:
    """The profile without null attributes, or InvalidRequest naming every bad attribute."""
    return _validate(profile, USER_STANDARD)


def validate_group_profile(profile: Any) -> dict[str, Any]:
    return _validate(profile, GROUP_TEXT)


def _validate(profile: Any, standard: Mapping[str, TextRule]) -> dict[str, Any]:
    if not isinstance(profile, Mapping):
        raise InvalidRequest("Api validation failed: profile", ["profile: must be an object"])
    if len(profile) > MAX_ATTRIBUTES:
        cause = f"profile: must have at most {MAX_ATTRIBUTES} attributes"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    cleaned = {str(k): v for k, v in profile.items() if v is not None}
    causes = [
        f"{name}: The field cannot be left blank"
        for name, rule in standard.items()
        if rule.required and name not in cleaned
    ]
    for name, value in cleaned.items():
        rule = standard.get(name)
        problem = _standard_problem(value, rule) if rule else _custom_problem(name, value)
        if problem:
            causes.append(f"{name}: {problem}")
    if causes:
        raise InvalidRequest("Api validation failed: " + causes[0], causes)
    return cleaned


def _standard_problem(value: Any, rule: TextRule) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) < rule.min_length:
        return "The field cannot be left blank" if rule.required else "is too short"
    if len(value) > rule.max_length:
        return f"must be at most {rule.max_length} characters"
    if rule.email and value and not _EMAIL.match(value):
        return "Does not match required pattern (an email address)"
    return check_text(value)


def _custom_problem(name: str, value: Any) -> str | None:
    if not _CUSTOM_NAME.match(name):
        return "is not a valid attribute name (letters, digits and underscores, max 100)"
    if isinstance(value, list):
        if len(value) > MAX_ARRAY_ITEMS:
            return f"must have at most {MAX_ARRAY_ITEMS} items"
        problems = [p for p in (_scalar_problem(item) for item in value) if p]
        return f"array items {problems[0]}" if problems else None
    return _scalar_problem(value)


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else "is too large a number"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, str):
        if len(value) > MAX_CUSTOM_TEXT:
            return f"must be at most {MAX_CUSTOM_TEXT} characters"
        return check_text(value)
    return "must be a string, number, boolean or an array of those"


def json_schema(standard: Mapping[str, TextRule], *, complete: bool) -> dict[str, Any]:
    """The rules as JSON Schema, for the OpenAPI document (``complete`` adds ``required``)."""
    scalar: list[dict[str, Any]] = [
        {"type": "string", "maxLength": MAX_CUSTOM_TEXT},
        {"type": "number"},
        {"type": "boolean"},
    ]
    custom = {"anyOf": [*scalar, {"type": "array", "items": {"anyOf": scalar}}, {"type": "null"}]}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _rule_schema(rule) for name, rule in standard.items()},
        "additionalProperties": custom,
        "propertyNames": {"pattern": CUSTOM_NAME_PATTERN},
        "maxProperties": MAX_ATTRIBUTES,
    }
    if complete:
        schema["required"] = [name for name, rule in standard.items() if rule.required]
    return schema


def _rule_schema(rule: TextRule) -> dict[str, Any]:
    text: dict[str, Any] = {
        "type": "string",
        "minLength": rule.min_length,
        "maxLength": rule.max_length,
    }
    if rule.email:
        text["pattern"] = EMAIL_PATTERN
    return text if rule.required else {"anyOf": [text, {"type": "null"}]}
