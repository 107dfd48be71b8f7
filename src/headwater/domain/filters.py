"""Okta's SCIM-like filter expressions (``status eq "ACTIVE" and lastUpdated gt "..."``).

Parsing is pure and bounded (length, nesting, number of comparisons) so a hostile filter costs
a 400, never a deep recursion or a giant query. Turning the tree into SQL is the caller's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from headwater.errors import InvalidRequest

__all__ = [
    "OPERATORS",
    "And",
    "Comparison",
    "Expression",
    "Not",
    "Or",
    "Value",
    "invalid_filter",
    "parse",
]

OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "sw", "ew", "co", "pr"})
MAX_LENGTH = 4096
MAX_DEPTH = 16
MAX_COMPARISONS = 50

Value: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class Comparison:
    attribute: str
    operator: str
    value: Value = None


@dataclass(frozen=True)
class And:
    items: tuple[Expression, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expression, ...]


@dataclass(frozen=True)
class Not:
    item: Expression


Expression: TypeAlias = Comparison | And | Or | Not

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<paren>[()])
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z0-9_.]))
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")


def invalid_filter(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid search criteria: {reason}", [f"filter: {reason}"])


@dataclass
class _Token:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise invalid_filter(f"unexpected text at position {position}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.comparisons = 0

    def peek_word(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position].kind == "word":
            return self.tokens[self.position].text.lower()
        return None

    def take(self) -> _Token:
        if self.position >= len(self.tokens):
            raise invalid_filter("unexpected end of expression")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self, depth: int) -> Expression:
        items = [self.conjunction(depth)]
        while self.peek_word() == "or":
            self.take()
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, depth: int) -> Expression:
        items = [self.factor(depth)]
        while self.peek_word() == "and":
            self.take()
            items.append(self.factor(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self, depth: int) -> Expression:
        if depth > MAX_DEPTH:
            raise invalid_filter("expression is nested too deeply")
        if self.peek_word() == "not":
            self.take()
            return Not(self.factor(depth + 1))
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.expression(depth + 1)
            closing = self.take()
            if closing.text != ")":
                raise invalid_filter("missing closing parenthesis")
            return inner
        if token.kind != "word":
            raise invalid_filter(f"expected an attribute, found {token.text!r}")
        return self.comparison(token.text)

    def comparison(self, attribute: str) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise invalid_filter("too many comparisons")
        operator = self.take().text.lower()
        if operator not in OPERATORS:
            raise invalid_filter(f"unknown operator {operator!r}")
        if operator == "pr":
            return Comparison(attribute, operator)
        return Comparison(attribute, operator, _value(self.take()))


def _value(token: _Token) -> Value:
    if token.kind == "string":
        return _ESCAPE.sub(r"\1", token.text[1:-1])
    if token.kind == "number":
        return float(token.text) if "." in token.text else int(token.text)
    literal = token.text.lower()
    if token.kind == "word" and literal in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[literal]
    raise invalid_filter(f"expected a value, found {token.text!r}")


def parse(text: str) -> Expression:
    """Parse a filter; raises InvalidRequest (400) naming what is wrong."""
    if len(text) > MAX_LENGTH:
        raise invalid_filter("expression is too long")
    if "\x00" in text:
        raise invalid_filter("expression contains a NUL character")
    parser = _Parser(_tokenize(text))
    if not parser.tokens:
        raise invalid_filter("expression is empty")
    tree = parser.expression(0)
    if parser.position != len(parser.tokens):
        raise invalid_filter(f"unexpected {parser.tokens[parser.position].text!r}")
    return tree
