"""Regular expressions that cannot backtrack: ``String.replace`` and ``String.replaceFirst``.

Okta's ``String.replace`` is Java's ``replaceAll``: the match is a regular expression and the
replacement may name groups (``$1``). Python's ``re`` backtracks, and a short pattern such as
``a*a*a*b`` already takes tens of seconds on a kilobyte of text, whatever caps are put on
lengths. So patterns run on a small Thompson-NFA machine (Pike's VM): every step advances all
alternatives together over the text, which costs at most (pattern size x text length) steps,
and the steps of one call are counted against a budget.

The dialect is the common core of Java's: literals, ``.``, classes ``[a-z]``/``[^...]``,
``\\d \\w \\s`` and their negations (ASCII, as Java's defaults), ``^``/``$`` (start and end of
the text), groups ``(...)``/``(?:...)``, ``|``, and the quantifiers ``* + ? {n} {n,} {n,m}``,
greedy or lazy (``*?``). Anything else Java has (back references, look-around, flags, ``\\b``,
possessive quantifiers, class intersections) is refused with a message rather than read
differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["Pattern", "RegexBudgetExceeded", "RegexError", "compile_pattern", "is_literal"]

#: Characters that make a pattern more than a literal string.
_SPECIAL = frozenset("\\.[]{}()*+?^$|")
_MAX_PROGRAM = 4000
_MAX_REPEAT = 100
_MAX_GROUP_NESTING = 16


class RegexError(ValueError):
    """The pattern or the replacement is not in the supported dialect."""


class RegexBudgetExceeded(RuntimeError):
    """One call took more machine steps than its budget."""


def is_literal(pattern: str) -> bool:
    return not (_SPECIAL & set(pattern))


# --- Parsing the pattern ---------------------------------------------------------------------

Test = Callable[[str], bool]

_DIGIT = frozenset("0123456789")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789")
_SPACE = frozenset(" \t\n\x0b\f\r")
_CLASSES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CONTROL = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "e": "\x1b", "a": "\x07"}


@dataclass
class _Char:
    test: Test


@dataclass
class _Concat:
    items: list[_Node]


@dataclass
class _Alternation:
    options: list[_Node]


@dataclass
class _Group:
    index: int | None
    body: _Node


@dataclass
class _Repeat:
    body: _Node
    low: int
    high: int | None
    greedy: bool


@dataclass
class _Anchor:
    start: bool


_Node = _Char | _Concat | _Alternation | _Group | _Repeat | _Anchor


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.index = 0
        self.groups = 0
        self.nesting = 0

    def peek(self) -> str:
        return self.pattern[self.index] if self.index < len(self.pattern) else ""

    def take(self) -> str:
        char = self.peek()
        self.index += 1
        return char

    def fail(self, problem: str) -> RegexError:
        return RegexError(f"{problem} at position {self.index + 1} of the pattern")

    def alternation(self) -> _Node:
        options = [self.concatenation()]
        while self.peek() == "|":
            self.take()
            options.append(self.concatenation())
        return options[0] if len(options) == 1 else _Alternation(options)

    def concatenation(self) -> _Node:
        items: list[_Node] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return _Concat(items)

    def atom(self) -> _Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return _Char(self.character_class())
        if char == "\\":
            return _Char(self.escape(in_class=False))
        if char == ".":
            return _Char(lambda c: c not in "\n\r")
        if char == "^":
            return _Anchor(start=True)
        if char == "$":
            return _Anchor(start=False)
        if char in "*+?":
            raise self.fail(f"nothing to repeat before {char!r}")
        if char == "{" and self.counted() is not None:
            raise self.fail("nothing to repeat before '{'")
        return _Char(_equals(char))

    def group(self) -> _Node:
        index: int | None
        if self.peek() == "?":
            self.take()
            if self.take() != ":":
                raise self.fail(
                    "only (?:...) groups are supported (no look-around, flags or names)"
                )
            index = None
        else:
            self.groups += 1
            index = self.groups
        self.nesting += 1
        if self.nesting > _MAX_GROUP_NESTING:
            raise self.fail(f"groups are nested more than {_MAX_GROUP_NESTING} deep")
        body = self.alternation()
        self.nesting -= 1
        if self.take() != ")":
            raise self.fail("missing ')'")
        return _Group(index, body)

    def counted(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` just read past ``{`` (None, unread, when it is not)."""
        start = self.index
        text = self.pattern[start:]
        close = text.find("}")
        if close < 0:
            return None
        low, comma, high = text[:close].partition(",")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        self.index = start + close + 1
        bounds = (int(low), (int(high) if high else None) if comma else int(low))
        if bounds[0] > _MAX_REPEAT or (bounds[1] or 0) > _MAX_REPEAT:
            raise self.fail(f"repeat counts are limited to {_MAX_REPEAT}")
        if bounds[1] is not None and bounds[1] < bounds[0]:
            raise self.fail("the repeat range is backwards")
        return bounds

    def quantified(self, atom: _Node) -> _Node:
        char = self.peek()
        bounds: tuple[int, int | None] | None = None
        if char in ("*", "+", "?") and char:
            self.take()
            bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{":
            self.take()
            bounds = self.counted()
            if bounds is None:
                self.index -= 1
                return atom
        if bounds is None:
            return atom
        if isinstance(atom, _Anchor):
            raise self.fail("an anchor cannot be repeated")
        greedy = True
        if self.peek() == "?":
            self.take()
            greedy = False
        elif self.peek() == "+":
            raise self.fail("possessive quantifiers are not supported")
        if self.peek() in ("*", "+", "?") and self.peek():
            raise self.fail("a quantifier cannot follow a quantifier")
        return _Repeat(atom, bounds[0], bounds[1], greedy)

    def escape(self, *, in_class: bool) -> Test:
        char = self.take()
        if not char:
            raise self.fail("the pattern ends with a lone backslash")
        if char.lower() in _CLASSES:
            members = _CLASSES[char.lower()]
            if char.islower():
                return lambda c: c in members
            return lambda c: c not in members
        if char in _CONTROL:
            return _equals(_CONTROL[char])
        if char.isalnum():
            raise self.fail(f"the escape \\{char} is not supported")
        return _equals(char)

    def character_class(self) -> Test:
        negated = self.peek() == "^"
        if negated:
            self.take()
        tests: list[Test] = []
        chars: set[str] = set()
        first = True
        while True:
            char = self.take()
            if not char:
                raise self.fail("missing ']'")
            if char == "]" and not first:
                break
            first = False
            if char == "[":
                raise self.fail("nested classes are not supported; escape '[' as \\[")
            if char == "&" and self.peek() == "&":
                raise self.fail("class intersections (&&) are not supported")
            if char == "\\":
                test = self.escape(in_class=True)
                tests.append(test)
                continue
            if self.peek() == "-" and self.pattern[self.index + 1 : self.index + 2] not in (
                "]",
                "",
            ):
                self.take()
                end = self.take()
                if end == "\\":
                    raise self.fail("a range cannot end with an escape")
                if end < char:
                    raise self.fail(f"the range {char}-{end} is backwards")
                low, high = char, end
                tests.append(_between(low, high))
                continue
            chars.add(char)
        members = frozenset(chars)

        def matches(c: str) -> bool:
            return c in members or any(test(c) for test in tests)

        if negated:
            return lambda c: not matches(c)
        return matches


def _equals(expected: str) -> Test:
    return lambda c: c == expected


def _between(low: str, high: str) -> Test:
    return lambda c: low <= c <= high


# --- The program -----------------------------------------------------------------------------

_CHAR, _SPLIT, _JUMP, _SAVE, _START, _END, _MATCH = range(7)
# An instruction: (opcode, a, b); for _CHAR, a is the test; for _SPLIT, a is preferred.
_Instruction = tuple[int, Any, int]


class _Emitter:
    def __init__(self) -> None:
        self.code: list[list[object]] = []

    def emit(self, op: int, a: object = 0, b: int = 0) -> int:
        if len(self.code) >= _MAX_PROGRAM:
            raise RegexError(f"the pattern is too complex (more than {_MAX_PROGRAM} steps)")
        self.code.append([op, a, b])
        return len(self.code) - 1

    def node(self, node: _Node) -> None:
        if isinstance(node, _Char):
            self.emit(_CHAR, node.test)
        elif isinstance(node, _Concat):
            for item in node.items:
                self.node(item)
        elif isinstance(node, _Anchor):
            self.emit(_START if node.start else _END)
        elif isinstance(node, _Group):
            if node.index is None:
                self.node(node.body)
            else:
                self.emit(_SAVE, 2 * node.index)
                self.node(node.body)
                self.emit(_SAVE, 2 * node.index + 1)
        elif isinstance(node, _Alternation):
            jumps = []
            for option in node.options[:-1]:
                split = self.emit(_SPLIT)
                self.code[split][1] = split + 1
                self.node(option)
                jumps.append(self.emit(_JUMP))
                self.code[split][2] = len(self.code)
            self.node(node.options[-1])
            for jump in jumps:
                self.code[jump][1] = len(self.code)
        else:
            self.repeat(node)

    def optional(self, body: _Node, greedy: bool) -> None:
        split = self.emit(_SPLIT)
        self.node(body)
        self._branch(split, split + 1, len(self.code), greedy)

    def _branch(self, at: int, into: int, past: int, greedy: bool) -> None:
        self.code[at][1], self.code[at][2] = (into, past) if greedy else (past, into)

    def repeat(self, node: _Repeat) -> None:
        for _ in range(node.low):
            self.node(node.body)
        if node.high is None:
            loop = self.emit(_SPLIT)
            self.node(node.body)
            self.emit(_JUMP, loop)
            self._branch(loop, loop + 1, len(self.code), node.greedy)
        else:
            for _ in range(node.high - node.low):
                self.optional(node.body, node.greedy)


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: ``replace`` runs it over a text."""

    source: str
    groups: int
    program: tuple[_Instruction, ...]

    def search(self, text: str, start: int, budget: list[int]) -> list[int | None] | None:
        """The leftmost match at or after ``start`` (Java's choice among alternatives) as
        group slots ``[start0, end0, start1, end1, ...]``, or None. ``budget[0]`` counts down
        the machine steps; RegexBudgetExceeded when it runs out."""
        return _Machine(self, text, budget).search(start)

    def replace(
        self, text: str, replacement: str, *, first_only: bool, max_length: int, budget: int
    ) -> str:
        """Java's ``replaceAll``/``replaceFirst``. RegexError for a bad replacement,
        RegexBudgetExceeded past ``budget`` steps, OverflowError past ``max_length``."""
        parts = parse_replacement(replacement, self.groups)
        machine = _Machine(self, text, [budget])
        out: list[str] = []
        length = 0
        at = 0
        while at <= len(text):
            found = machine.search(at)
            if found is None:
                break
            begin, finish = found[0], found[1]
            assert begin is not None and finish is not None
            pieces = [text[at:begin]]
            for part in parts:
                if isinstance(part, str):
                    pieces.append(part)
                else:
                    low, high = found[2 * part], found[2 * part + 1]
                    if low is not None and high is not None:
                        pieces.append(text[low:high])
            for piece in pieces:
                length += len(piece)
                out.append(piece)
            if length > max_length:
                raise OverflowError
            if finish == begin:
                if begin < len(text):
                    out.append(text[begin])
                    length += 1
                at = begin + 1
            else:
                at = finish
            if first_only:
                break
        out.append(text[at:])
        result = "".join(out)
        if len(result) > max_length:
            raise OverflowError
        return result


class _Machine:
    """Pike's VM over one text; successive searches share its bookkeeping."""

    def __init__(self, pattern: Pattern, text: str, budget: list[int]) -> None:
        self.program = pattern.program
        self.text = text
        self.end = len(text)
        self.budget = budget
        self.seen = [-1] * len(pattern.program)
        self.generation = 0
        self.blank: list[int | None] = [None] * (2 * pattern.groups + 2)

    def add(
        self, into: list[tuple[int, list[int | None]]], pc: int, slots: list[int | None], at: int
    ) -> None:
        """Follow the jumps from ``pc`` at text position ``at``; keep the threads that wait for a
        character or have matched, in priority order."""
        program, seen, generation = self.program, self.seen, self.generation
        stack = [(pc, slots)]
        steps = 0
        while stack:
            pc, slots = stack.pop()
            if seen[pc] == generation:
                continue
            seen[pc] = generation
            steps += 1
            op, a, b = program[pc]
            if op == _JUMP:
                stack.append((a, slots))
            elif op == _SPLIT:
                stack.append((b, slots))
                stack.append((a, slots))
            elif op == _SAVE:
                copy = slots.copy()
                copy[a] = at
                stack.append((pc + 1, copy))
            elif op == _START:
                if at == 0:
                    stack.append((pc + 1, slots))
            elif op == _END:
                if at == self.end:
                    stack.append((pc + 1, slots))
            else:
                into.append((pc, slots))
        self.budget[0] -= steps

    def search(self, start: int) -> list[int | None] | None:
        program, text, end, budget = self.program, self.text, self.end, self.budget
        current: list[tuple[int, list[int | None]]] = []
        matched: list[int | None] | None = None
        at = start
        self.generation += 1
        while True:
            if matched is None:
                self.add(current, 0, self.blank, at)
            if budget[0] < 0:
                raise RegexBudgetExceeded
            if not current:
                if matched is not None or at >= end:
                    break
                at += 1
                self.generation += 1
                continue
            following: list[tuple[int, list[int | None]]] = []
            char = text[at] if at < end else ""
            self.generation += 1
            for pc, slots in current:
                op, test, _ = program[pc]
                if op == _MATCH:
                    matched = slots
                    break
                if char and test(char):
                    self.add(following, pc + 1, slots, at + 1)
            current = following
            if at >= end:
                break
            at += 1
        return matched


def parse_replacement(replacement: str, groups: int) -> list[str | int]:
    """Java's replacement syntax: ``$n`` inserts group n, ``\\x`` is a literal x."""
    parts: list[str | int] = []
    literal: list[str] = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        if char == "\\":
            if index + 1 >= len(replacement):
                raise RegexError("the replacement ends with a lone backslash")
            literal.append(replacement[index + 1])
            index += 2
            continue
        if char == "$":
            digits = index + 1
            while digits < len(replacement) and replacement[digits].isdigit():
                digits += 1
            if digits == index + 1:
                raise RegexError(
                    "$ in a replacement must be followed by a group number (write \\$)"
                )
            number = int(replacement[index + 1 : digits])
            # Java takes as many digits as still name an existing group.
            while number > groups and digits > index + 2:
                digits -= 1
                number = int(replacement[index + 1 : digits])
            if number > groups:
                raise RegexError(f"the replacement refers to group {number}, which does not exist")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(number)
            index = digits
            continue
        literal.append(char)
        index += 1
    if literal:
        parts.append("".join(literal))
    return parts


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Pattern:
    """RegexError when the pattern is outside the dialect."""
    reader = _Reader(pattern)
    tree = reader.alternation()
    if reader.index < len(pattern):
        raise reader.fail("unbalanced ')'")
    emitter = _Emitter()
    emitter.emit(_SAVE, 0)
    emitter.node(tree)
    emitter.emit(_SAVE, 1)
    emitter.emit(_MATCH)
    program = tuple((int(op), a, int(b)) for op, a, b in emitter.code)  # type: ignore[call-overload]
    return Pattern(pattern, reader.groups, program)
