"""Text → syntax tree, with a lark LALR grammar; templates ``text ${expression} text``.

The grammar is LALR(1): the parser is a table-driven loop, and the tree is built by callbacks
while parsing, so neither step recurses with the input. Bounds (length, nesting, size) are
checked here, before anything is compiled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from headwater.domain.expressions.errors import ExpressionError, Position
from headwater.domain.expressions.model import Limits
from headwater.domain.expressions.syntax import (
    Arithmetic,
    ArrayLiteral,
    Call,
    Compare,
    Conditional,
    Literal,
    Logical,
    Negate,
    Node,
    Not,
    Reference,
)

__all__ = ["TemplatePart", "parse_expression", "parse_template"]

GRAMMAR = r"""
?start: ternary

?ternary: disjunction
        | disjunction QMARK ternary ":" ternary         -> conditional

?disjunction: conjunction (OR conjunction)*             -> logical
?conjunction: comparison (AND comparison)*              -> logical
?comparison: sum
           | sum COMPARE sum                            -> compare
?sum: unary ((PLUS | MINUS) unary)*                     -> arithmetic
?unary: primary
      | BANG unary                                      -> not_
      | MINUS unary                                     -> negate
?primary: STRING                                        -> string
        | NUMBER                                        -> number
        | name                                          -> reference
        | name "(" [arguments] ")"                      -> call
        | LBRACE [arguments] "}"                        -> array
        | "(" ternary ")"

arguments: ternary ("," ternary)*
name: NAME ("." NAME)*
    | FN NAME

FN.2: "fn:"
OR: "||" | /(?i:or)(?![A-Za-z0-9_])/
AND: "&&" | /(?i:and)(?![A-Za-z0-9_])/
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
BANG: "!"
QMARK: "?"
LBRACE: "{"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
STRING: /"(?:[^"]|"")*"/ | /'(?:[^']|'')*'/
%ignore /[ \t\r\n]+/
"""

#: Okta's keywords for constants, in any case (``NULL`` appears in Okta's own examples).
_CONSTANTS: dict[str, bool | None] = {"true": True, "false": False, "null": None}
_ROOTS = frozenset({"user", "appuser", "source"})
#: The largest integer a literal may hold (Okta's numbers are doubles).
_MAX_INTEGER = 2**53

# What a terminal looks like, for "expected ..." in messages.
_DESCRIBE = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "QMARK": "'?'",
    "DOT": "'.'",
    "BANG": "'!'",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "FN": "'fn:'",
    "OR": "'||'",
    "AND": "'&&'",
    "COMPARE": "a comparison",
    "$END": "the end",
}
_OPERAND = frozenset({"NAME", "STRING", "NUMBER", "LPAR", "LBRACE", "BANG", "MINUS", "FN"})


def _at(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


@dataclass(frozen=True)
class _Name:
    parts: tuple[str, ...]
    at: Position


class _Builder(Transformer[Token, Node]):
    """Builds nodes as the parser reduces (stateless: one instance serves every parse)."""

    # -- leaves --------------------------------------------------------------------------------

    def string(self, items: list[Token]) -> Node:
        token = items[0]
        quote = token[0]
        return Literal(token[1:-1].replace(quote * 2, quote), _at(token))

    def number(self, items: list[Token]) -> Node:
        token = items[0]
        value: int | float
        if any(c in token for c in ".eE"):
            value = float(token)
            if not math.isfinite(value) or abs(value) > _MAX_INTEGER:
                raise ExpressionError(_at(token), f"the number {token} is too large")
        else:
            value = int(token)
            if value > _MAX_INTEGER:
                raise ExpressionError(_at(token), f"the number {token} is too large")
        return Literal(value, _at(token))

    def name(self, items: list[Token]) -> _Name:
        if items[0].type == "FN":
            return _Name(("fn:" + items[1],), _at(items[0]))
        return _Name(tuple(str(item) for item in items), _at(items[0]))

    def reference(self, items: list[_Name]) -> Node:
        name = items[0]
        parts = name.parts
        if len(parts) == 1 and parts[0].lower() in _CONSTANTS:
            return Literal(_CONSTANTS[parts[0].lower()], name.at)
        if len(parts) == 2 and parts[0] in _ROOTS:
            return Reference(parts[0], parts[1], name.at)
        if len(parts) > 2 and parts[0] in _ROOTS:
            raise ExpressionError(
                name.at,
                f"{'.'.join(parts)} is not an attribute: attributes have no properties",
                f"write {parts[0]}.{parts[1]}",
            )
        raise ExpressionError(
            name.at,
            f"unknown name {'.'.join(parts)}",
            "attributes are written user.name, appuser.name or source.name",
        )

    def call(self, items: list[Any]) -> Node:
        name: _Name = items[0]
        args: tuple[Node, ...] = items[1] or ()
        return Call(".".join(name.parts), args, name.at)

    def arguments(self, items: list[Node]) -> tuple[Node, ...]:
        return tuple(items)

    def array(self, items: list[Any]) -> Node:
        brace: Token = items[0]
        elements: tuple[Node, ...] = items[1] or ()
        return ArrayLiteral(elements, _at(brace))

    # -- operators -----------------------------------------------------------------------------

    def not_(self, items: list[Any]) -> Node:
        return Not(items[1], _at(items[0]))

    def negate(self, items: list[Any]) -> Node:
        return Negate(items[1], _at(items[0]))

    def arithmetic(self, items: list[Any]) -> Node:
        if len(items) == 1:
            return items[0]  # type: ignore[no-any-return]
        operators: list[Token] = items[1::2]
        operands: list[Node] = items[2::2]
        node = Arithmetic(
            items[0],
            tuple((str(op), operand) for op, operand in zip(operators, operands, strict=True)),
            tuple(_at(op) for op in operators),
        )
        return node

    def compare(self, items: list[Any]) -> Node:
        left, op, right = items
        return Compare(str(op), left, right, _at(op))

    def logical(self, items: list[Any]) -> Node:
        if len(items) == 1:
            return items[0]  # type: ignore[no-any-return]
        operators: list[Token] = items[1::2]
        operands = tuple(items[0::2])
        op = "&&" if operators[0].type == "AND" else "||"
        return Logical(op, operands, _at(operators[0]))

    def conditional(self, items: list[Any]) -> Node:
        test, mark, then, otherwise = items
        return Conditional(test, then, otherwise, _at(mark))


_LARK: list[Lark] = []


def _lark() -> Lark:
    """The parser, built once per process; the builder runs inside it, as rules are reduced."""
    if not _LARK:
        _LARK.append(
            Lark(
                GRAMMAR,
                parser="lalr",
                lexer="contextual",
                transformer=_Builder(),
                maybe_placeholders=True,
            )
        )
    return _LARK[0]


def _end_of(text: str) -> Position:
    return Position(text.count("\n") + 1, len(text) - text.rfind("\n"))


def _expected(names: set[str] | frozenset[str]) -> str:
    if _OPERAND & set(names) and "RPAR" not in names and "RBRACE" not in names:
        return "expected a value"
    described = sorted({_DESCRIBE.get(name, name) for name in names if name in _DESCRIBE})
    if not described:
        return ""
    if len(described) > 4:
        described = [*described[:4], "..."]
    return "expected " + " or ".join(described)


def _syntax_error(error: UnexpectedInput, text: str) -> ExpressionError:
    if isinstance(error, UnexpectedCharacters):
        position = Position(error.line, error.column)
        char = text[error.pos_in_stream or 0]
        if char in "\"'":
            return ExpressionError(position, "unterminated string", f"close it with {char}")
        hints = {"=": "compare with ==", "&": "write && or AND", "|": "write || or OR"}
        return ExpressionError(position, f"unexpected character {char!r}", hints.get(char))
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = _expected(error.expected)
        if token.type == "$END":
            if not text.strip():
                return ExpressionError(Position(), "the expression is empty")
            return ExpressionError(_end_of(text), "the expression ends too early", expected)
        hint = expected
        if token.type == "COMPARE":
            hint = "comparisons cannot be chained; join them with &&"
        elif token.type in ("NAME", "STRING", "NUMBER") and "QMARK" in error.expected:
            hint = "an operator is missing between two values"
        return ExpressionError(_at(token), f"unexpected {str(token)!r}", hint or None)
    if isinstance(error, UnexpectedEOF):
        return ExpressionError(_end_of(text), "the expression ends too early", None)
    return ExpressionError(None, "the expression cannot be parsed")  # pragma: no cover


def _check_bounds(root: Node, limits: Limits) -> int:
    """Refuse a tree deeper or larger than the limits; return its number of nodes."""
    count = 0
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        position = node.at[0] if isinstance(node, Arithmetic) else node.at
        if depth > limits.max_depth:
            raise ExpressionError(
                position,
                f"the expression is nested too deeply (more than {limits.max_depth} levels)",
            )
        if count > limits.max_steps:
            raise ExpressionError(
                position, f"the expression is too large (more than {limits.max_steps} parts)"
            )
        stack.extend((child, depth + 1) for child in children(node))
    return count


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node."""
    match node:
        case ArrayLiteral(items=items):
            return items
        case Call(args=args):
            return args
        case Not(operand=operand) | Negate(operand=operand):
            return (operand,)
        case Arithmetic(first=first, rest=rest):
            return (first, *(operand for _, operand in rest))
        case Compare(left=left, right=right):
            return (left, right)
        case Logical(operands=operands):
            return operands
        case Conditional(test=test, then=then, otherwise=otherwise):
            return (test, then, otherwise)
    return ()


def _parse(text: str, limits: Limits) -> tuple[Node, int]:
    try:
        node = cast(Node, _lark().parse(text))
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return node, _check_bounds(node, limits)


def _check_length(text: str, limits: Limits) -> None:
    if len(text) > limits.max_length:
        raise ExpressionError(
            None,
            f"the expression is too long ({len(text)} characters, at most {limits.max_length})",
        )


def parse_expression(text: str, limits: Limits) -> tuple[Node, int]:
    """The tree of ``text`` and its number of nodes, or ExpressionError."""
    _check_length(text, limits)
    return _parse(text, limits)


@dataclass(frozen=True)
class TemplatePart:
    """Literal text, or an embedded ``${expression}`` (``source`` is its text, without
    ``${}``)."""

    text: str = ""
    node: Node | None = None
    source: str = ""


def _closing_brace(text: str, start: int) -> int:
    """The index of the ``}`` that closes the ``${`` whose body starts at ``start`` (-1: none),
    skipping strings and ``{...}`` arrays."""
    depth, index, end = 0, start, len(text)
    while index < end:
        char = text[index]
        if char in "\"'":
            index += 1
            while index < end:
                if text[index] == char:
                    if text[index + 1 : index + 2] != char:
                        break
                    index += 1
                index += 1
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return -1


def _blank(text: str) -> str:
    """``text`` with everything but line breaks turned into spaces (keeps positions)."""
    return "".join(char if char == "\n" else " " for char in text)


def parse_template(text: str, limits: Limits) -> tuple[tuple[TemplatePart, ...], int]:
    """Text with embedded ``${expression}`` parts, and the total number of nodes."""
    _check_length(text, limits)
    parts: list[TemplatePart] = []
    total, index = 0, 0
    while index < len(text):
        opening = text.find("${", index)
        if opening < 0:
            parts.append(TemplatePart(text[index:]))
            break
        if opening > index:
            parts.append(TemplatePart(text[index:opening]))
        closing = _closing_brace(text, opening + 2)
        prefix = text[: opening + 2]
        if closing < 0:
            raise ExpressionError(_end_of(text[:opening]), "unterminated ${", "close it with }")
        body = text[opening + 2 : closing]
        if not body.strip():
            raise ExpressionError(_end_of(text[:opening]), "empty ${}")
        node, count = _parse(_blank(prefix) + body, limits)
        total += count
        if total > limits.max_steps:
            raise ExpressionError(
                _end_of(text[:opening]),
                f"the template is too large (more than {limits.max_steps} parts)",
            )
        parts.append(TemplatePart(node=node, source=body))
        index = closing + 1
    return tuple(parts), total
