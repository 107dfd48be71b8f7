"""Directory profile + app profile → the attributes sent downstream (pure).

The username comes from the app's template (Okta's ``${source.login}`` form, evaluated by
``headwater.domain.expressions``); everything else maps to SCIM core and enterprise attributes.
App-profile values from the assignment override the directory's, and unknown app-profile keys
travel as extras.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from headwater.domain.downstream import AccountAttributes
from headwater.domain.expressions import (
    Compiled,
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    Type,
    compile_template,
)
from headwater.errors import InvalidRequest

__all__ = [
    "MappingError",
    "NamePreview",
    "TemplatePreview",
    "account_attributes",
    "account_fields",
    "base_value",
    "check_user_name_template",
    "preview_user_names",
    "render_user_name",
    "template_reads",
]


class MappingError(ValueError):
    """The app's mapping cannot be evaluated for this user (a permanent error)."""


_CORE_KEYS = {
    "givenName": "given_name",
    "familyName": "family_name",
    "displayName": "display_name",
    "email": "email",
    "title": "title",
    "department": "department",
    "employeeNumber": "employee_number",
}
_USERNAME = Context.username()


@lru_cache(maxsize=256)
def _user_name_template(template: str) -> Compiled:
    """The compiled template (ExpressionError when it cannot be compiled); compiled once."""
    return compile_template(template, context=_USERNAME, allow_empty_parts=False)


def render_user_name(template: str, profile: dict[str, Any]) -> str:
    """Evaluate a username template such as ``${fn:substringBefore(source.login,"@")}``.

    A part that is empty for this user (``${source.nickName}`` without a nickname) is an error,
    not an empty piece of the username."""
    try:
        result = _user_name_template(template).evaluate(Facts(user=profile))
    except (ExpressionError, EvaluationError) as exc:
        raise MappingError(f"username template: {exc}") from exc
    if not isinstance(result, str) or not result or len(result) > 100:
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
    return AccountAttributes(
        **account_fields(
            user_id,
            profile,
            app_profile,
            user_name_template=user_name_template,
            user_name_override=user_name_override,
            active=active,
            manager_id=manager_id,
        )
    )


def account_fields(
    user_id: str,
    profile: dict[str, Any],
    app_profile: dict[str, Any],
    *,
    user_name_template: str,
    user_name_override: str | None = None,
    active: bool = True,
    manager_id: str | None = None,
) -> dict[str, Any]:
    """``account_attributes`` as the keyword arguments of ``AccountAttributes``, for a mapping
    that overrides some of them before building the attributes once."""
    user_name = user_name_override or render_user_name(user_name_template, profile)
    first, last = profile.get("firstName"), profile.get("lastName")
    display = profile.get("displayName") or " ".join(str(p) for p in (first, last) if p) or None
    values: dict[str, Any] = {
        "user_name": user_name,
        "external_id": user_id,
        "active": active,
        "manager_id": manager_id,
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
    values["extra"] = extra
    return values


#: Directory attribute each built-in field reads (``display_name`` also falls back on the name).
_FROM_PROFILE = {
    "given_name": "firstName",
    "family_name": "lastName",
    "email": "email",
    "title": "title",
    "department": "department",
    "employee_number": "employeeNumber",
}
_TO_APP_KEY = {value: key for key, value in _CORE_KEYS.items()}


def base_value(
    field: str, profile: dict[str, Any], app_profile: dict[str, Any], manager_id: str | None
) -> Any:
    """One field of ``account_attributes`` (not ``user_name``), computed alone: comparing two
    mappings needs only the fields they map differently."""
    if field == "manager_id":
        return manager_id
    app_key = _TO_APP_KEY[field]
    if app_key in app_profile:
        return _text(app_profile[app_key])
    if field == "display_name":
        first, last = profile.get("firstName"), profile.get("lastName")
        return _text(
            profile.get("displayName") or " ".join(str(p) for p in (first, last) if p) or None
        )
    return _text(profile.get(_FROM_PROFILE[field]))


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def check_user_name_template(
    template: str, where: str, user: Mapping[str, Type] | None = None
) -> None:
    """Refuse (Okta's 400 naming ``where``) a template that cannot render for any user, or
    (``user``: the user schema's types) that reads an attribute the schema does not know."""

    def refuse(problem: str) -> InvalidRequest:
        return InvalidRequest("Api validation failed: " + where, [f"{where}: {problem}"])

    if not template.strip() or len(template) > 1024:
        raise refuse("must be 1 to 1024 characters")
    try:
        _user_name_template(template)
        if user is not None:
            compile_template(template, context=Context.username(user), allow_empty_parts=False)
    except ExpressionError as exc:
        raise refuse(exc.message) from exc


def template_reads(template: str) -> frozenset[str]:
    """The directory attributes a stored template reads (none when it no longer compiles)."""
    try:
        compiled = _user_name_template(template)
    except ExpressionError:
        return frozenset()
    return frozenset(name for root, name in compiled.attributes_referenced if root == "user")


@dataclass(frozen=True)
class NamePreview:
    """What a template gives one user: the username, or why it gives none."""

    user_id: str
    login: str
    user_name: str | None
    error: str | None


@dataclass(frozen=True)
class TemplatePreview:
    """A template tried before it is saved: refused as a whole (``error``, with its position),
    or the result for each sample user."""

    template: str
    error: ExpressionError | None
    users: tuple[NamePreview, ...] = ()


def preview_user_names(
    template: str,
    samples: Iterable[tuple[str, str, dict[str, Any]]],
    user: Mapping[str, Type] | None = None,
) -> TemplatePreview:
    """Compile ``template`` as saving it would (``user``: the user schema's types) and render it
    for each ``(user id, login, profile)``; nothing is stored."""
    if not isinstance(template, str) or not template.strip() or len(template) > 1024:
        raise InvalidRequest(
            "Api validation failed: template", ["template: must be 1 to 1024 characters"]
        )
    try:
        _user_name_template(template)
        if user is not None:
            compile_template(template, context=Context.username(user), allow_empty_parts=False)
    except ExpressionError as exc:
        return TemplatePreview(template, exc)
    results = []
    for user_id, login, profile in samples:
        try:
            results.append(NamePreview(user_id, login, render_user_name(template, profile), None))
        except MappingError as exc:
            results.append(NamePreview(user_id, login, None, str(exc)))
    return TemplatePreview(template, None, tuple(results))
