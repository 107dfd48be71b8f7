"""Directory profile + app profile → the attributes sent downstream (pure).

The username comes from the app's template (Okta's ``${source.login}`` syntax with a few of its
functions); everything else maps to SCIM core and enterprise attributes. App-profile values
from the assignment override the directory's, and unknown app-profile keys travel as extras.
"""

from __future__ import annotations

import re
from typing import Any

from headwater.domain.downstream import AccountAttributes
from headwater.errors import InvalidRequest

__all__ = ["MappingError", "account_attributes", "check_user_name_template", "render_user_name"]


class MappingError(ValueError):
    """The app's mapping cannot be evaluated for this user (a permanent error)."""


_TEMPLATE = re.compile(r"\$\{([^}]*)\}")
_SOURCE = re.compile(r"^source\.([A-Za-z_][A-Za-z0-9_]*)$")
_FUNCTION = re.compile(r'^fn:(\w+)\(\s*source\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:,\s*"([^"]*)"\s*)?\)$')

_CORE_KEYS = {
    "givenName": "given_name",
    "familyName": "family_name",
    "displayName": "display_name",
    "email": "email",
    "title": "title",
    "department": "department",
    "employeeNumber": "employee_number",
}


def _source_value(profile: dict[str, Any], name: str) -> str:
    value = profile.get(name)
    if value is None or value == "":
        raise MappingError(f"username template needs source.{name}, which is empty")
    return str(value)


def _evaluate(expression: str, profile: dict[str, Any]) -> str:
    expression = expression.strip()
    if match := _SOURCE.match(expression):
        return _source_value(profile, match.group(1))
    if match := _FUNCTION.match(expression):
        function, name, argument = match.groups()
        value = _source_value(profile, name)
        if function == "toLowerCase":
            return value.lower()
        if function == "toUpperCase":
            return value.upper()
        if function == "substringBefore" and argument is not None:
            return value.split(argument, 1)[0]
        if function == "substringAfter" and argument is not None:
            return value.split(argument, 1)[1] if argument in value else ""
    raise MappingError(f"unsupported username template expression: ${{{expression}}}")


def render_user_name(template: str, profile: dict[str, Any]) -> str:
    """Evaluate a username template such as ``${fn:substringBefore(source.login,"@")}``."""
    result = _TEMPLATE.sub(lambda m: _evaluate(m.group(1), profile), template)
    if not result or len(result) > 100:
        raise MappingError("username must be 1 to 100 characters")
    return result


def account_attributes(
    user_id: str,
    profile: dict[str, Any],
    app_profile: dict[str, Any],
    *,
    user_name_template: str,
    user_name_override: str | None = None,
    active: bool = True,
    manager_id: str | None = None,
) -> AccountAttributes:
    """The full attribute set for one account."""
    user_name = user_name_override or render_user_name(user_name_template, profile)
    first, last = profile.get("firstName"), profile.get("lastName")
    display = profile.get("displayName") or " ".join(str(p) for p in (first, last) if p) or None
    values: dict[str, Any] = {
        "given_name": _text(first),
        "family_name": _text(last),
        "display_name": _text(display),
        "email": _text(profile.get("email")),
        "title": _text(profile.get("title")),
        "department": _text(profile.get("department")),
        "employee_number": _text(profile.get("employeeNumber")),
    }
    extra: dict[str, Any] = {}
    for key, value in app_profile.items():
        if key in _CORE_KEYS:
            values[_CORE_KEYS[key]] = _text(value)
        elif key not in ("userName", "externalId", "active", "manager"):
            extra[key] = value
    return AccountAttributes(
        user_name=user_name,
        external_id=user_id,
        active=active,
        manager_id=manager_id,
        extra=extra,
        **values,
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


class _AnySource(dict[str, Any]):
    """A profile where every attribute has a value, to check a template's syntax alone."""

    def get(self, key: str, default: Any = None) -> Any:
        return "sample"


def check_user_name_template(template: str, where: str) -> None:
    """Refuse (Okta's 400 naming ``where``) a template that cannot render for any user."""

    def refuse(problem: str) -> InvalidRequest:
        return InvalidRequest("Api validation failed: " + where, [f"{where}: {problem}"])

    if not template.strip() or len(template) > 1024:
        raise refuse("must be 1 to 1024 characters")
    try:
        rendered = render_user_name(template, _AnySource())
    except MappingError as exc:
        raise refuse(str(exc)) from exc
    if "${" in rendered:
        raise refuse("unterminated expression")
