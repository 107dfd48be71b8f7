"""Filter expressions (``domain.filters``) turned into SQL conditions, one attribute kind each.

Each list endpoint names its attributes with a resolver; anything else is a 400. Text compares
case-insensitively (as Okta does for logins and names); ``LIKE`` patterns are escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import JSON, ColumnElement, SQLColumnExpression, and_, func, not_, or_, type_coerce

from headwater import clock
from headwater.domain import filters
from headwater.domain.filters import Value, invalid_filter

__all__ = [
    "Attribute",
    "ExactAttribute",
    "Resolver",
    "TextAttribute",
    "TimeAttribute",
    "json_text",
    "to_condition",
    "where",
]


class Attribute(Protocol):
    def compare(self, operator: str, value: Value) -> ColumnElement[bool]: ...


Resolver = Callable[[str], Attribute | None]


def _text_value(operator: str, value: Value) -> str:
    if not isinstance(value, str):
        raise invalid_filter(f"operator {operator} needs a quoted string value")
    return value


def _ordered(column: Any, operator: str, value: Any) -> ColumnElement[bool]:
    comparisons: dict[str, Callable[[], ColumnElement[bool]]] = {
        "eq": lambda: column == value,
        "ne": lambda: or_(column.is_(None), column != value),
        "gt": lambda: column > value,
        "ge": lambda: column >= value,
        "lt": lambda: column < value,
        "le": lambda: column <= value,
    }
    if operator not in comparisons:
        raise invalid_filter(f"operator {operator} is not supported for this attribute")
    return comparisons[operator]()


def _matching(column: Any, operator: str, value: str) -> ColumnElement[bool]:
    if operator == "sw":
        return column.startswith(value, autoescape=True)  # type: ignore[no-any-return]
    if operator == "ew":
        return column.endswith(value, autoescape=True)  # type: ignore[no-any-return]
    if operator == "co":
        return column.contains(value, autoescape=True)  # type: ignore[no-any-return]
    return _ordered(column, operator, value)


@dataclass(frozen=True)
class TextAttribute:
    """A string compared case-insensitively; ``lowered`` when the column already is."""

    column: SQLColumnExpression[Any]
    lowered: bool = False

    def compare(self, operator: str, value: Value) -> ColumnElement[bool]:
        if operator == "pr":
            return self.column.is_not(None)
        text = _text_value(operator, value).lower()
        column = self.column if self.lowered else func.lower(self.column)
        return _matching(column, operator, text)


@dataclass(frozen=True)
class ExactAttribute:
    """Ids and enums: compared as written (``upper`` for enums such as status)."""

    column: SQLColumnExpression[Any]
    upper: bool = False

    def compare(self, operator: str, value: Value) -> ColumnElement[bool]:
        if operator == "pr":
            return self.column.is_not(None)
        text = _text_value(operator, value)
        return _matching(self.column, operator, text.upper() if self.upper else text)


@dataclass(frozen=True)
class TimeAttribute:
    column: SQLColumnExpression[Any]

    def compare(self, operator: str, value: Value) -> ColumnElement[bool]:
        if operator == "pr":
            return self.column.is_not(None)
        text = _text_value(operator, value)
        try:
            moment = clock.parse_okta(text)
        except ValueError as exc:
            raise invalid_filter(f"{text!r} is not a timestamp") from exc
        return _ordered(self.column, operator, moment)


def json_text(column: SQLColumnExpression[Any], key: str) -> ColumnElement[Any]:
    """One attribute of a JSON document, as text (``->>`` / ``json_extract``)."""
    text: ColumnElement[Any] = type_coerce(column, JSON)[key].as_string()
    return text


def to_condition(expression: filters.Expression, resolve: Resolver) -> ColumnElement[bool]:
    if isinstance(expression, filters.And):
        return and_(*(to_condition(item, resolve) for item in expression.items))
    if isinstance(expression, filters.Or):
        return or_(*(to_condition(item, resolve) for item in expression.items))
    if isinstance(expression, filters.Not):
        return not_(to_condition(expression.item, resolve))
    attribute = resolve(expression.attribute)
    if attribute is None:
        raise invalid_filter(f"attribute {expression.attribute} is not filterable")
    return attribute.compare(expression.operator, expression.value)


def where(text: str | None, resolve: Resolver) -> ColumnElement[bool] | None:
    """The SQL condition for a filter parameter, or None when there is none."""
    if text is None or not text.strip():
        return None
    return to_condition(filters.parse(text), resolve)
