"""The directory's user schema (Okta's ``/meta/schemas/user/default``): typed custom attributes
(pure).

Okta's base attributes stay as ``profiles.USER_STANDARD`` has them; an administrator adds
custom ones of type string, integer, number, boolean or array of strings, with a title, a
description, ``required``, length bounds and an ``enum``. The schema does two jobs: profile
writes of the wrong type are refused naming the attribute, and expressions saved while custom
attributes are declared may read only attributes the schema knows, with their types. A schema
that declares nothing keeps the earlier behaviour (any attribute, type known at run time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from headwater.domain.expressions import Type
from headwater.domain.profiles import MAX_ARRAY_ITEMS, MAX_CUSTOM_TEXT, USER_STANDARD, TextRule
from headwater.domain.storable import MAX_SAFE_INTEGER, check_text
from headwater.errors import InvalidRequest

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ENUM",
    "TYPES",
    "CustomProperty",
    "UserSchema",
    "base_json",
]

#: Custom attributes the schema may declare.
MAX_ATTRIBUTES = 100
#: Values of one attribute's ``enum``.
MAX_ENUM = 100
MAX_TITLE = 255
MAX_DESCRIPTION = 1024
#: Okta's names for the types, and the expression type each is read as.
TYPES: Mapping[str, Type] = {
    "string": Type.STRING,
    "integer": Type.NUMBER,
    "number": Type.NUMBER,
    "boolean": Type.BOOLEAN,
    "array": Type.ARRAY,
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_FIELDS = frozenset(
    {
        "title",
        "description",
        "type",
        "items",
        "required",
        "minLength",
        "maxLength",
        "enum",
        "oneOf",
        "permissions",
        "scope",
        "mutability",
        "master",
        "externalName",
        "externalNamespace",
        "unique",
        "format",
        "pattern",
        "union",
        "default",
    }
)
_WHERE = "definitions.custom.properties"


@dataclass(frozen=True)
class CustomProperty:
    """One custom attribute. ``min_length``/``max_length`` bound strings (and array items);
    ``enum`` lists the allowed values of a string or integer attribute."""

    name: str
    type: str
    title: str
    description: str | None = None
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str | int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type, "title": self.title}
        if self.description is not None:
            data["description"] = self.description
        if self.required:
            data["required"] = True
        if self.min_length is not None:
            data["minLength"] = self.min_length
        if self.max_length is not None:
            data["maxLength"] = self.max_length
        if self.enum is not None:
            data["enum"] = list(self.enum)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustomProperty:
        enum = data.get("enum")
        return cls(
            data["name"],
            data["type"],
            data.get("title", data["name"]),
            data.get("description"),
            bool(data.get("required", False)),
            data.get("minLength"),
            data.get("maxLength"),
            tuple(enum) if enum is not None else None,
        )

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (not None) cannot be this attribute's value, or None."""
        if self.type == "array":
            if not isinstance(value, list):
                return "must be an array of strings"
            if len(value) > MAX_ARRAY_ITEMS:
                return f"must have at most {MAX_ARRAY_ITEMS} items"
            for item in value:
                problem = self._string_problem(item)
                if problem:
                    return f"array items {problem}"
            return None
        if self.type == "string":
            problem = self._string_problem(value)
        elif self.type == "boolean":
            problem = None if isinstance(value, bool) else "must be a boolean"
        elif self.type == "integer":
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not whole:
                problem = "must be an integer"
            else:
                problem = None if abs(value) <= MAX_SAFE_INTEGER else "is too large a number"
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                problem = "must be a number"
            elif not math.isfinite(value) or abs(value) > MAX_SAFE_INTEGER:
                problem = "must be a finite number"
            else:
                problem = None
        if problem is None and self.enum is not None and value not in self.enum:
            return "Does not match one of the enumerated values"
        return problem

    def _string_problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if self.min_length is not None and len(value) < self.min_length:
            return f"must be at least {self.min_length} characters"
        limit = self.max_length if self.max_length is not None else MAX_CUSTOM_TEXT
        if len(value) > limit:
            return f"must be at most {limit} characters"
        return check_text(value)

    def json_schema(self) -> dict[str, Any]:
        """Okta's property object."""
        data: dict[str, Any] = {
            "title": self.title,
            "type": self.type,
            "mutability": "READ_WRITE",
            "scope": "NONE",
            "permissions": [{"principal": "SELF", "action": "READ_WRITE"}],
            "master": {"type": "PROFILE_MASTER"},
        }
        if self.description is not None:
            data["description"] = self.description
        if self.required:
            data["required"] = True
        if self.type == "array":
            data["items"] = {"type": "string"}
        if self.min_length is not None:
            data["minLength"] = self.min_length
        if self.max_length is not None:
            data["maxLength"] = self.max_length
        if self.enum is not None:
            data["enum"] = list(self.enum)
        return data


@dataclass(frozen=True)
class UserSchema:
    """The custom attributes of the default user type, sorted by name."""

    custom: tuple[CustomProperty, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> UserSchema:
        return cls(tuple(CustomProperty.from_json(i) for i in (data or {}).get("custom") or []))

    def to_json(self) -> dict[str, Any]:
        return {"custom": [a.to_json() for a in self.custom]}

    @property
    def by_name(self) -> dict[str, CustomProperty]:
        return {a.name: a for a in self.custom}

    def expression_types(self) -> dict[str, Type] | None:
        """``{attribute: Type}`` for expressions checked when saved; None (any attribute) while
        no custom attribute is declared."""
        if not self.custom:
            return None
        types = dict.fromkeys(USER_STANDARD, Type.STRING)
        types.update({a.name: TYPES[a.type] for a in self.custom})
        return types

    def check_profile(
        self, profile: Mapping[str, Any], changed: Collection[str], *, complete: bool
    ) -> None:
        """Refuse (400 naming each attribute) a profile whose changed custom attributes have the
        wrong type or bounds, name an undeclared attribute while the schema declares some, or
        (``complete``: a create or replace) lack a required one; a partial update may not remove
        a required attribute. Values nobody changed are left as they are."""
        if not self.custom:
            return
        declared = self.by_name
        causes: list[str] = []
        for name in sorted(changed):
            if name in USER_STANDARD:
                continue
            attribute = declared.get(name)
            value = profile.get(name)
            if attribute is None:
                if value is not None:
                    causes.append(f"{name}: Property name '{name}' is not defined in profile")
                continue
            if value is None:
                if attribute.required:
                    causes.append(f"{name}: The field cannot be left blank")
                continue
            problem = attribute.problem(value)
            if problem:
                causes.append(f"{name}: {problem}")
        if complete:
            causes += [
                f"{a.name}: The field cannot be left blank"
                for a in self.custom
                if a.required and profile.get(a.name) is None and a.name not in changed
            ]
        if causes:
            raise InvalidRequest("Api validation failed: " + causes[0], causes)

    def updated(self, changes: Any) -> UserSchema:
        """Okta's partial update of ``definitions.custom.properties``: a property given is added
        or replaced, one set to ``null`` removed. A declared attribute keeps its type."""
        if not isinstance(changes, Mapping):
            raise _refuse(_WHERE, "must be an object")
        current = self.by_name
        for name, spec in changes.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise _refuse(_WHERE, "names are 1 to 50 letters, digits and _, from a letter")
            here = f"{_WHERE}.{name}"
            if name in USER_STANDARD:
                raise _refuse(here, "is a base attribute; custom attributes need a new name")
            if spec is None:
                current.pop(name, None)
                continue
            attribute = _parse(name, spec, here)
            old = current.get(name)
            if old is not None and old.type != attribute.type:
                raise _refuse(f"{here}.type", "cannot change; remove the attribute, then add it")
            current[name] = attribute
        if len(current) > MAX_ATTRIBUTES:
            raise _refuse(_WHERE, f"at most {MAX_ATTRIBUTES} custom attributes")
        return UserSchema(tuple(current[n] for n in sorted(current)))


def _parse(name: str, spec: Any, here: str) -> CustomProperty:
    if not isinstance(spec, Mapping):
        raise _refuse(here, "must be an object")
    # Okta's clients send unset fields as null: the same as leaving them out.
    spec = {key: value for key, value in spec.items() if value is not None}
    unknown = sorted(str(key) for key in spec if key not in _FIELDS)
    if unknown:
        raise _refuse(here, f"unknown field {unknown[0][:50]!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise _refuse(f"{here}.type", "must be string, integer, number, boolean or array")
    items = spec.get("items")
    if kind == "array":
        if items is not None and (not isinstance(items, Mapping) or items.get("type") != "string"):
            raise _refuse(f"{here}.items", "arrays hold strings")
    elif items is not None:
        raise _refuse(f"{here}.items", "only an array has items")
    title = spec.get("title", name)
    if not isinstance(title, str) or not 0 < len(title) <= MAX_TITLE or check_text(title):
        raise _refuse(f"{here}.title", f"must be 1 to {MAX_TITLE} characters of text")
    description = spec.get("description")
    if description is not None and (
        not isinstance(description, str)
        or len(description) > MAX_DESCRIPTION
        or check_text(description)
    ):
        raise _refuse(f"{here}.description", f"at most {MAX_DESCRIPTION} characters of text")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise _refuse(f"{here}.required", "must be true or false")
    bounds: list[int | None] = []
    for key in ("minLength", "maxLength"):
        value = spec.get(key)
        if value is not None:
            if kind not in ("string", "array"):
                raise _refuse(f"{here}.{key}", "only strings have a length")
            if isinstance(value, bool) or not isinstance(value, int):
                raise _refuse(f"{here}.{key}", "must be an integer")
            if not 0 <= value <= MAX_CUSTOM_TEXT:
                raise _refuse(f"{here}.{key}", f"must be 0 to {MAX_CUSTOM_TEXT}")
        bounds.append(value)
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise _refuse(f"{here}.minLength", "must not be more than maxLength")
    enum = _enum(spec.get("enum"), kind, f"{here}.enum")
    return CustomProperty(name, kind, title, description, required, low, high, enum)


def _enum(values: Any, kind: str, here: str) -> tuple[str | int, ...] | None:
    if values is None:
        return None
    if kind not in ("string", "integer"):
        raise _refuse(here, "only string and integer attributes take an enum")
    if not isinstance(values, list) or not 0 < len(values) <= MAX_ENUM:
        raise _refuse(here, f"must be a list of 1 to {MAX_ENUM} values")
    checked: list[str | int] = []
    for value in values:
        if kind == "string":
            if not isinstance(value, str) or len(value) > MAX_TITLE or check_text(value):
                raise _refuse(here, f"values must be strings of at most {MAX_TITLE} characters")
        elif isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_SAFE_INTEGER:
            raise _refuse(here, "values must be integers")
        checked.append(value)
    return tuple(dict.fromkeys(checked))


def _base_property(name: str, rule: TextRule) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": name,
        "type": "string",
        "mutability": "READ_WRITE",
        "scope": "NONE",
        "permissions": [{"principal": "SELF", "action": "READ_WRITE"}],
        "master": {"type": "PROFILE_MASTER"},
    }
    if rule.required:
        data["required"] = True
    if rule.min_length:
        data["minLength"] = rule.min_length
    data["maxLength"] = rule.max_length
    if rule.email:
        data["format"] = "email"
    return data


def base_json() -> dict[str, Any]:
    """Okta's ``definitions.base``: the standard attributes and which are required."""
    return {
        "id": "#base",
        "type": "object",
        "properties": {name: _base_property(name, rule) for name, rule in USER_STANDARD.items()},
        "required": [name for name, rule in USER_STANDARD.items() if rule.required],
    }


def _refuse(where: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Api validation failed: {where}", [f"{where}: {problem}"])
