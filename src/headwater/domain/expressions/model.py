"""Types, values, limits, the compile-time context and the run-time facts."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "EMPTY",
    "Context",
    "Facts",
    "Limits",
    "Scalar",
    "Type",
    "Value",
    "type_of",
]

Scalar: TypeAlias = str | int | float | bool
#: A value an expression can produce. Arrays are tuples of scalars.
Value: TypeAlias = str | int | float | bool | tuple[Scalar, ...] | None


class Type(enum.Enum):
    """The static type of an expression or of an attribute in a schema."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    NULL = "null"
    ARRAY = "array"
    #: Not known before evaluation (an attribute without a schema, a mixed ``+``).
    ANY = "any"

    def __str__(self) -> str:
        return self.value

    @property
    def article(self) -> str:
        """``a string``, ``an array``: for messages."""
        if self is Type.NULL:
            return "null"
        name = str(self.value)
        return ("an " if name[0] in "aeiou" else "a ") + name


def type_of(value: object) -> Type:
    """The type of a run-time value (``ANY`` for anything an expression cannot hold)."""
    if value is None:
        return Type.NULL
    if isinstance(value, bool):
        return Type.BOOLEAN
    if isinstance(value, str):
        return Type.STRING
    if isinstance(value, int | float):
        return Type.NUMBER
    if isinstance(value, tuple | list):
        return Type.ARRAY
    return Type.ANY


@dataclass(frozen=True)
class Limits:
    """Bounds of the sandbox. Parse-time bounds refuse an expression when it is saved; run-time
    bounds stop one evaluation with an ``EvaluationError``."""

    #: Characters of expression (or template) text.
    max_length: int = 4096
    #: Nesting of the syntax tree (a chain ``a + b + c`` counts once).
    max_depth: int = 32
    #: Nodes of the syntax tree. The language has no loops, so an evaluation visits each node at
    #: most once: this is also the bound on the steps of one evaluation.
    max_steps: int = 2000
    #: Characters of any string an evaluation produces, intermediate ones included.
    max_string: int = 16_384
    #: Items of any array an evaluation produces or receives.
    max_items: int = 1000
    #: Characters of a regular expression (``String.replace``, ``String.replaceFirst``).
    max_pattern: int = 256
    #: Steps of the regular-expression machine for one function call.
    max_regex_steps: int = 200_000


DEFAULT_LIMITS = Limits()
EMPTY: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class Context:
    """Where an expression is used: which references and functions it may use, what is known
    about the attributes, and the limits.

    ``purpose`` names the use in messages (``a group rule``). ``user`` and ``appuser`` are
    schemas ``{attribute: Type}``; ``None`` means unknown (any
    attribute may be referenced, with type ``ANY``). ``roots`` names the references allowed
    (``user``, ``appuser``, ``source``); ``source`` is Okta's alias of ``user`` in username
    templates. ``functions`` is the set of function names allowed (``None``: all)."""

    purpose: str = "an expression"
    roots: frozenset[str] = frozenset({"user", "appuser"})
    functions: frozenset[str] | None = None
    user: Mapping[str, Type] | None = None
    appuser: Mapping[str, Type] | None = None
    limits: Limits = field(default=DEFAULT_LIMITS)

    @classmethod
    def group_rule(
        cls, user: Mapping[str, Type] | None = None, *, limits: Limits = DEFAULT_LIMITS
    ) -> Context:
        """A group rule: the directory profile only, every function but ``Convert.*``."""
        from headwater.domain.expressions.functions import RULE_FUNCTIONS

        return cls("a group rule", frozenset({"user"}), RULE_FUNCTIONS, user, None, limits)

    @classmethod
    def mapping(
        cls,
        user: Mapping[str, Type] | None = None,
        appuser: Mapping[str, Type] | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Context:
        """An attribute mapping: directory and app-user profiles, every function."""
        return cls("a mapping", frozenset({"user", "appuser"}), None, user, appuser, limits)

    @classmethod
    def username(
        cls, user: Mapping[str, Type] | None = None, *, limits: Limits = DEFAULT_LIMITS
    ) -> Context:
        """An app's username template: ``source`` (the directory profile), string functions."""
        from headwater.domain.expressions.functions import TEMPLATE_FUNCTIONS

        return cls(
            "a username template", frozenset({"source"}), TEMPLATE_FUNCTIONS, user, None, limits
        )


@dataclass(frozen=True, slots=True)
class Facts:
    """What an evaluation may read about one user.

    ``user``: the directory profile; ``internal``: ``id``, ``status``, ``created``,
    ``lastUpdated`` (strings); ``appuser``: the app assignment's profile; ``group_ids`` and
    ``group_names``: the groups the user is a member of."""

    user: Mapping[str, object] = field(default_factory=dict)
    internal: Mapping[str, object] = field(default_factory=dict)
    appuser: Mapping[str, object] = field(default_factory=dict)
    group_ids: Set[str] = EMPTY
    group_names: Set[str] = EMPTY


#: A compiled node: reads the facts, returns a value.
Closure: TypeAlias = Callable[[Facts], Value]
