"""The functions: signatures for the checker, implementations for the evaluator.

An implementation receives evaluated arguments and returns a value; a value of the wrong type
at run time raises ``ArgumentError``, which the evaluator turns into an ``EvaluationError``
naming the function and the position. Membership functions and ``user.getInternalProperty``
read the facts; the compiler builds those itself (``kind`` tells which).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater.domain.expressions.model import Limits, Type, Value, type_of
from headwater.domain.expressions.regex import (
    RegexBudgetExceeded,
    RegexError,
    compile_pattern,
    is_literal,
)

__all__ = [
    "ALIASES",
    "FUNCTIONS",
    "INTERNAL_PROPERTIES",
    "RULE_FUNCTIONS",
    "TEMPLATE_FUNCTIONS",
    "ArgumentError",
    "Function",
    "canonical_name",
    "equal",
    "to_text",
]


class ArgumentError(ValueError):
    """An argument has the wrong value or type at run time."""


#: What a parameter accepts (null and ``ANY`` are always accepted by the checker).
STRING = frozenset({Type.STRING})
NUMBER = frozenset({Type.NUMBER})
#: Arrays functions take an array, or a string of comma-separated values (as Okta's do).
ARRAY = frozenset({Type.ARRAY, Type.STRING})
SCALAR = frozenset({Type.STRING, Type.NUMBER, Type.BOOLEAN})
VALUE = frozenset({Type.STRING, Type.NUMBER, Type.BOOLEAN, Type.ARRAY})
TEXTS = frozenset({Type.STRING, Type.ARRAY})

Implementation = Callable[..., Value]


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[frozenset[Type], ...]
    returns: Type
    #: Builds the implementation for the limits in force.
    make: Callable[[Limits], Implementation] | None = None
    #: Type of the variadic tail (``None``: no tail).
    rest: frozenset[Type] | None = None
    #: Fewest arguments in the tail.
    min_rest: int = 0
    #: ``membership``, ``internal``: the compiler builds it; its arguments must be literals.
    kind: str = "plain"
    #: The tail comes in pairs (``String.stringSwitch``).
    pairs: bool = False

    def describe_arity(self) -> str:
        fixed = len(self.params)
        if self.rest is None:
            return f"{fixed} argument{'s' if fixed != 1 else ''}"
        least = fixed + self.min_rest
        return f"at least {least} argument{'s' if least != 1 else ''}"


# --- Helpers -----------------------------------------------------------------------------------


def to_text(value: Value) -> str:
    """A value as text, for ``+`` and templates: null is empty, booleans are ``true``/``false``,
    arrays are comma-separated."""
    if value is None:
        return ""
    if value.__class__ is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, tuple):
        return ",".join(to_text(item) for item in value)
    return repr(value) if isinstance(value, float) else str(value)


def equal(left: Value, right: Value) -> bool:
    """``==``: same type and value; numbers compare by value (``1 == 1.0``); no conversions."""
    if left is None or right is None:
        return left is right
    if type_of(left) is not type_of(right):
        return False
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(
            equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return left == right


def _string(value: Value, index: int) -> str | None:
    if value is None or value.__class__ is str:
        return value
    raise ArgumentError(f"argument {index} must be a string, not {type_of(value).article}")


def _integer(value: Value, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(f"argument {index} must be a number, not {type_of(value).article}")
    if isinstance(value, float) and not value.is_integer():
        raise ArgumentError(f"argument {index} must be a whole number, not {value!r}")
    return int(value)


def _array(value: Value, index: int, limits: Limits) -> tuple[Any, ...] | None:
    """An array argument: a tuple, or a string of comma-separated values."""
    if value is None:
        return None
    if isinstance(value, tuple):
        items = value
    elif isinstance(value, str):
        items = tuple(part.strip() for part in value.split(",")) if value.strip() else ()
    else:
        raise ArgumentError(f"argument {index} must be an array, not {type_of(value).article}")
    if len(items) > limits.max_items:
        raise ArgumentError(f"the array has more than {limits.max_items} items")
    return items


def _long(text: str, limits: Limits) -> str:
    if len(text) > limits.max_string:
        raise ArgumentError(f"the result is longer than {limits.max_string} characters")
    return text


def _pure(implementation: Implementation) -> Callable[[Limits], Implementation]:
    return lambda limits: implementation


# --- String functions --------------------------------------------------------------------------


def _to_lower(value: Value) -> Value:
    text = _string(value, 1)
    return None if text is None else text.lower()


def _to_upper(value: Value) -> Value:
    text = _string(value, 1)
    return None if text is None else text.upper()


def _substring(value: Value, start: Value, end: Value) -> Value:
    text = _string(value, 1)
    low, high = _integer(start, 2), _integer(end, 3)
    # Out-of-range indexes are clamped; negative ones count from the end.
    return None if text is None else text[low:high]


def _substring_before(value: Value, separator: Value) -> Value:
    text, search = _string(value, 1), _string(separator, 2)
    if text is None or search is None:
        return text
    if search == "":
        return ""
    found = text.find(search)
    return text if found < 0 else text[:found]


def _substring_after(value: Value, separator: Value) -> Value:
    text, search = _string(value, 1), _string(separator, 2)
    if text is None:
        return None
    if search is None:
        return ""
    found = text.find(search)
    return "" if found < 0 else text[found + len(search) :]


def _contains(value: Value, search: Value) -> Value:
    text, part = _string(value, 1), _string(search, 2)
    return text is not None and part is not None and part in text


def _starts_with(value: Value, prefix: Value) -> Value:
    text, start = _string(value, 1), _string(prefix, 2)
    return text is not None and start is not None and text.startswith(start)


def _ends_with(value: Value, suffix: Value) -> Value:
    text, end = _string(value, 1), _string(suffix, 2)
    return text is not None and end is not None and text.endswith(end)


def _length(value: Value) -> Value:
    text = _string(value, 1)
    return 0 if text is None else len(text)


def _remove_spaces(value: Value) -> Value:
    text = _string(value, 1)
    return None if text is None else "".join(text.split())


def _make_append(limits: Limits) -> Implementation:
    def append(value: Value, suffix: Value) -> Value:
        return _long((_string(value, 1) or "") + (_string(suffix, 2) or ""), limits)

    return append


def _make_join(limits: Limits) -> Implementation:
    def join(separator: Value, *values: Value) -> Value:
        glue = _string(separator, 1) or ""
        parts: list[str] = []
        for index, value in enumerate(values, start=2):
            if isinstance(value, tuple):
                parts.extend(to_text(item) for item in value)
            else:
                text = _string(value, index)
                if text is not None:
                    parts.append(text)
        if len(parts) > limits.max_items:
            raise ArgumentError(f"more than {limits.max_items} values to join")
        return _long(glue.join(parts), limits)

    return join


def _switch(value: Value, default: Value, *pairs: Value) -> Value:
    text = _string(value, 1)
    fallback = _string(default, 2)
    if text is None:
        return fallback
    for index in range(0, len(pairs), 2):
        key = _string(pairs[index], index + 3)
        if key is not None and key in text:
            return _string(pairs[index + 1], index + 4)
    return fallback


def _make_replace(limits: Limits, *, first_only: bool) -> Implementation:
    def replace(value: Value, pattern: Value, replacement: Value) -> Value:
        text = _string(value, 1)
        regex = _string(pattern, 2)
        substitute = _string(replacement, 3) or ""
        if text is None or regex is None:
            return text
        if len(regex) > limits.max_pattern:
            raise ArgumentError(f"the pattern is longer than {limits.max_pattern} characters")
        if is_literal(regex) and "$" not in substitute and "\\" not in substitute:
            if regex == "" or first_only:
                count = 1 if first_only else len(text) + 1
            else:
                count = text.count(regex)
            if len(text) + count * (len(substitute) - len(regex)) > limits.max_string:
                raise ArgumentError(f"the result is longer than {limits.max_string} characters")
            return text.replace(regex, substitute, 1 if first_only else -1)
        try:
            compiled = compile_pattern(regex)
            return compiled.replace(
                text,
                substitute,
                first_only=first_only,
                max_length=limits.max_string,
                budget=limits.max_regex_steps,
            )
        except RegexError as error:
            raise ArgumentError(str(error)) from None
        except RegexBudgetExceeded:
            raise ArgumentError(
                f"the pattern needs more than {limits.max_regex_steps} steps on this text"
            ) from None
        except OverflowError:
            raise ArgumentError(
                f"the result is longer than {limits.max_string} characters"
            ) from None

    return replace


# --- Arrays ------------------------------------------------------------------------------------


def _make_contains(limits: Limits) -> Implementation:
    def contains(array: Value, value: Value) -> Value:
        items = _array(array, 1, limits)
        return items is not None and any(equal(item, value) for item in items)

    return contains


def _make_is_empty(limits: Limits) -> Implementation:
    return lambda array: not _array(array, 1, limits)


def _make_size(limits: Limits) -> Implementation:
    return lambda array: len(_array(array, 1, limits) or ())


def _make_flatten(limits: Limits) -> Implementation:
    def flatten(*values: Value) -> Value:
        items: list[Any] = []
        for index, value in enumerate(values, start=1):
            if isinstance(value, tuple | str):
                items.extend(_array(value, index, limits) or ())
            elif value is not None:
                items.append(value)
            if len(items) > limits.max_items:
                raise ArgumentError(f"the array has more than {limits.max_items} items")
        return tuple(items)

    return flatten


def _make_csv(limits: Limits) -> Implementation:
    def csv(array: Value) -> Value:
        items = _array(array, 1, limits)
        return _long(",".join(to_text(item) for item in items or ()), limits)

    return csv


# --- Conversion --------------------------------------------------------------------------------

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _to_int(value: Value) -> Value:
    """Okta's ``Convert.toInt``: a string of digits, or a number rounded half up (Java's
    ``Math.round``); the result must fit Java's ``int``."""
    if value is None:
        return None
    number: int
    if isinstance(value, bool | tuple):
        raise ArgumentError(
            f"argument 1 must be a string or a number, not {type_of(value).article}"
        )
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                raise ArgumentError(f"{value!r} is not a number") from None
            if not math.isfinite(parsed):
                raise ArgumentError(f"{value!r} is not a finite number") from None
            number = math.floor(parsed + 0.5)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError("the number is not finite")
        number = math.floor(value + 0.5)
    else:
        number = value
    if not _INT_MIN <= number <= _INT_MAX:
        raise ArgumentError(f"{value!r} does not fit in an integer")
    return number


# --- The catalogue -----------------------------------------------------------------------------


def _fn(
    name: str,
    params: tuple[frozenset[Type], ...],
    returns: Type,
    make: Callable[[Limits], Implementation] | None = None,
    **options: Any,
) -> tuple[str, Function]:
    return name, Function(name, params, returns, make, **options)


FUNCTIONS: dict[str, Function] = dict(
    [
        _fn("String.append", (STRING, STRING), Type.STRING, _make_append),
        _fn("String.join", (STRING,), Type.STRING, _make_join, rest=TEXTS, min_rest=1),
        _fn("String.len", (STRING,), Type.NUMBER, _pure(_length)),
        _fn("String.removeSpaces", (STRING,), Type.STRING, _pure(_remove_spaces)),
        _fn(
            "String.replace",
            (STRING, STRING, STRING),
            Type.STRING,
            lambda limits: _make_replace(limits, first_only=False),
        ),
        _fn(
            "String.replaceFirst",
            (STRING, STRING, STRING),
            Type.STRING,
            lambda limits: _make_replace(limits, first_only=True),
        ),
        _fn("String.startsWith", (STRING, STRING), Type.BOOLEAN, _pure(_starts_with)),
        _fn("String.endsWith", (STRING, STRING), Type.BOOLEAN, _pure(_ends_with)),
        _fn("String.stringContains", (STRING, STRING), Type.BOOLEAN, _pure(_contains)),
        _fn(
            "String.stringSwitch",
            (STRING, STRING),
            Type.STRING,
            _pure(_switch),
            rest=STRING,
            min_rest=2,
            pairs=True,
        ),
        _fn("String.substring", (STRING, NUMBER, NUMBER), Type.STRING, _pure(_substring)),
        _fn("String.substringAfter", (STRING, STRING), Type.STRING, _pure(_substring_after)),
        _fn("String.substringBefore", (STRING, STRING), Type.STRING, _pure(_substring_before)),
        _fn("String.toLowerCase", (STRING,), Type.STRING, _pure(_to_lower)),
        _fn("String.toUpperCase", (STRING,), Type.STRING, _pure(_to_upper)),
        _fn("Arrays.contains", (ARRAY, VALUE), Type.BOOLEAN, _make_contains),
        _fn("Arrays.isEmpty", (ARRAY,), Type.BOOLEAN, _make_is_empty),
        _fn("Arrays.size", (ARRAY,), Type.NUMBER, _make_size),
        _fn("Arrays.flatten", (), Type.ARRAY, _make_flatten, rest=VALUE, min_rest=1),
        _fn("Arrays.toCsvString", (ARRAY,), Type.STRING, _make_csv),
        _fn("Convert.toInt", (frozenset({Type.STRING, Type.NUMBER}),), Type.NUMBER, _pure(_to_int)),
        _fn("isMemberOfGroup", (STRING,), Type.BOOLEAN, kind="membership"),
        _fn("isMemberOfAnyGroup", (), Type.BOOLEAN, kind="membership", rest=STRING, min_rest=1),
        _fn("isMemberOfGroupName", (STRING,), Type.BOOLEAN, kind="membership"),
        _fn("isMemberOfGroupNameStartsWith", (STRING,), Type.BOOLEAN, kind="membership"),
        _fn("isMemberOfGroupNameContains", (STRING,), Type.BOOLEAN, kind="membership"),
        _fn("user.getInternalProperty", (STRING,), Type.STRING, kind="internal"),
    ]
)

#: Okta's older names, without ``String.`` (also written ``fn:name`` in username templates).
ALIASES = {
    name: f"String.{name}"
    for name in ("toUpperCase", "toLowerCase", "substringBefore", "substringAfter", "substring")
}

INTERNAL_PROPERTIES = ("id", "status", "created", "lastUpdated")

RULE_FUNCTIONS = frozenset(FUNCTIONS) - {"Convert.toInt"}
TEMPLATE_FUNCTIONS = frozenset(
    name for name in FUNCTIONS if name.startswith(("String.", "Arrays."))
)


def canonical_name(written: str) -> str:
    """``fn:toLowerCase`` and ``toLowerCase`` → ``String.toLowerCase``; others unchanged."""
    name = written.removeprefix("fn:")
    return ALIASES.get(name, name)
