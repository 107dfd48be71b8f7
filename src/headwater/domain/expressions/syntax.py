"""The syntax tree, and a printer whose output parses back to the same tree.

Nodes are immutable; positions do not take part in equality, so a tree parsed from printed text
equals the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from headwater.domain.expressions.errors import Position

__all__ = [
    "Arithmetic",
    "ArrayLiteral",
    "Call",
    "Compare",
    "Conditional",
    "Literal",
    "Logical",
    "Negate",
    "Node",
    "Not",
    "Reference",
    "to_source",
]

_HERE = Position()


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class ArrayLiteral:
    items: tuple[Node, ...]
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """``user.x``, ``appuser.x`` or ``source.x``."""

    root: str
    name: str
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; ``name`` as written (``String.len``, ``fn:toLowerCase``)."""

    name: str
    args: tuple[Node, ...]
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``first (op operand)...`` with ``+`` and ``-``, folded from the left."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    at: tuple[Position, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Logical:
    """``a && b && ...`` (op ``&&``) or ``a || b || ...`` (op ``||``)."""

    op: str
    operands: tuple[Node, ...]
    at: Position = field(default=_HERE, compare=False)


@dataclass(frozen=True, slots=True)
class Conditional:
    test: Node
    then: Node
    otherwise: Node
    at: Position = field(default=_HERE, compare=False)


Node: TypeAlias = (
    Literal
    | ArrayLiteral
    | Reference
    | Call
    | Not
    | Negate
    | Arithmetic
    | Compare
    | Logical
    | Conditional
)

# Binding strength, loosest first, as in the grammar.
_TERNARY, _OR, _AND, _COMPARE, _SUM, _UNARY, _PRIMARY = range(1, 8)


def _level(node: Node) -> int:
    if isinstance(node, Conditional):
        return _TERNARY
    if isinstance(node, Logical):
        return _OR if node.op == "||" else _AND
    if isinstance(node, Compare):
        return _COMPARE
    if isinstance(node, Arithmetic):
        return _SUM
    if isinstance(node, Not | Negate):
        return _UNARY
    return _PRIMARY


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def to_source(node: Node) -> str:
    """The expression as text (parenthesised only where the grammar needs it)."""

    def at_least(child: Node, level: int) -> str:
        text = to_source(child)
        return text if _level(child) >= level else f"({text})"

    match node:
        case Literal(value=None):
            return "null"
        case Literal(value=bool() as flag):
            return "true" if flag else "false"
        case Literal(value=str() as text):
            return _quote(text)
        case Literal(value=int() | float() as number):
            return _number(number)
        case ArrayLiteral(items=items):
            return "{" + ", ".join(to_source(item) for item in items) + "}"
        case Reference(root=root, name=name):
            return f"{root}.{name}"
        case Call(name=name, args=args):
            return f"{name}(" + ", ".join(to_source(arg) for arg in args) + ")"
        case Not(operand=operand):
            return "!" + at_least(operand, _UNARY)
        case Negate(operand=operand):
            return "-" + at_least(operand, _UNARY)
        case Arithmetic(first=first, rest=rest):
            parts = [at_least(first, _UNARY)]
            parts += [f"{op} {at_least(operand, _UNARY)}" for op, operand in rest]
            return " ".join(parts)
        case Compare(op=op, left=left, right=right):
            return f"{at_least(left, _SUM)} {op} {at_least(right, _SUM)}"
        case Logical(op=op, operands=operands):
            level = _OR if op == "||" else _AND
            return f" {op} ".join(at_least(operand, level + 1) for operand in operands)
        case Conditional(test=test, then=then, otherwise=otherwise):
            return f"{at_least(test, _OR)} ? {to_source(then)} : {to_source(otherwise)}"
    raise TypeError(f"not a syntax node: {node!r}")
