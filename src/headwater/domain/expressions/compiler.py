"""Type-check a syntax tree and compile it to Python closures.

One pass over the tree does both: each node yields its static type and a closure ``facts ->
value``; the closures of the children are captured by the parent's. Nothing is evaluated from
text at run time (no ``eval``): compiling once and calling the closure per user is what keeps
group rules fast over a whole directory.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal as TypingLiteral
from typing import cast

from headwater.domain.expressions.errors import EvaluationError, ExpressionError, Position
from headwater.domain.expressions.functions import (
    ALIASES,
    FUNCTIONS,
    INTERNAL_PROPERTIES,
    ArgumentError,
    Function,
    canonical_name,
    equal,
    to_text,
)
from headwater.domain.expressions.model import Closure, Context, Facts, Limits, Type, Value, type_of
from headwater.domain.expressions.parser import TemplatePart, parse_expression, parse_template
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

__all__ = ["Compiled", "GroupReference", "compile_expression", "compile_node", "compile_template"]

GroupKind = TypingLiteral["id", "name", "name_prefix", "name_contains"]
_MEMBERSHIP_KIND: dict[str, GroupKind] = {
    "isMemberOfGroup": "id",
    "isMemberOfAnyGroup": "id",
    "isMemberOfGroupName": "name",
    "isMemberOfGroupNameStartsWith": "name_prefix",
    "isMemberOfGroupNameContains": "name_contains",
}
_NUMBERS = (int, float)
_MAX_NUMBER = 2.0**53


@dataclass(frozen=True)
class GroupReference:
    """A group an expression asks about: by id, exact name, name prefix or name part."""

    kind: GroupKind
    value: str

    def matches(self, group_id: str, group_name: str) -> bool:
        """Whether a membership change of this group can change the expression's result."""
        if self.kind == "id":
            return group_id == self.value
        if self.kind == "name":
            return group_name == self.value
        if self.kind == "name_prefix":
            return group_name.startswith(self.value)
        return self.value in group_name


@dataclass(frozen=True, eq=False)
class Compiled:
    """A checked, compiled expression (or template): evaluate it once per user.

    ``attributes_referenced``: ``(root, name)`` pairs read from the facts, with root ``user``
    (``source`` counts as ``user``), ``appuser`` or ``internal``. ``groups_referenced``: the
    groups whose membership the result depends on."""

    source: str
    result_type: Type
    attributes_referenced: frozenset[tuple[str, str]]
    groups_referenced: frozenset[GroupReference]
    run: Closure = field(repr=False)

    def evaluate(self, facts: Facts) -> Value:
        """The value for these facts; EvaluationError (only) when it cannot be computed."""
        try:
            return self.run(facts)
        except EvaluationError:
            raise
        except RecursionError:
            raise EvaluationError("the expression is too complex to evaluate") from None
        except Exception as error:  # a bug must not escape as anything but our error
            raise EvaluationError(f"the expression failed ({type(error).__name__})") from None

    def test(self, facts: Facts) -> bool:
        """For rules: the boolean result, null counting as false; EvaluationError otherwise."""
        value = self.evaluate(facts)
        if value is True:
            return True
        if value is False or value is None:
            return False
        raise EvaluationError(f"the rule gives {type_of(value).article}, not a boolean")


# --- Public entry points -----------------------------------------------------------------------


def _expected_types(expect: Type | Collection[Type] | None) -> frozenset[Type] | None:
    if expect is None:
        return None
    return frozenset({expect} if isinstance(expect, Type) else expect)


def _check_result(result: Type, expect: frozenset[Type] | None, context: Context) -> None:
    if expect is None or result in expect or result in (Type.ANY, Type.NULL):
        return
    wanted = " or ".join(sorted(kind.article for kind in expect))
    raise ExpressionError(
        Position(), f"{context.purpose} must give {wanted}, this one gives {result.article}"
    )


def compile_expression(
    text: str, *, context: Context, expect: Type | Collection[Type] | None = None
) -> Compiled:
    """Parse, check and compile ``text``; ExpressionError names the position and the problem.

    ``expect``: the type(s) the result must have (``Type.BOOLEAN`` for a group rule). A result
    whose type is only known at run time (``ANY``) passes; ``Compiled.test`` checks it then."""
    if not isinstance(text, str):
        raise ExpressionError(None, "the expression must be a string")
    node, _ = parse_expression(text, context.limits)
    compiled = compile_node(node, context=context, source=text)
    _check_result(compiled.result_type, _expected_types(expect), context)
    return compiled


def compile_node(node: Node, *, context: Context, source: str = "") -> Compiled:
    """Check and compile a tree (from ``parse_expression``, or built by hand)."""
    compiler = _Compiler(context)
    kind, run = compiler.compile(node)
    return Compiled(
        source,
        kind,
        frozenset(compiler.attributes),
        frozenset(compiler.groups),
        run,
    )


def compile_template(text: str, *, context: Context, allow_empty_parts: bool = True) -> Compiled:
    """Okta's template form: text with embedded ``${expression}`` parts, giving a string.

    A part's value is written as text (null as nothing). With ``allow_empty_parts=False`` a
    part that gives null or an empty string fails the evaluation, naming the part (usernames
    are not built from missing attributes)."""
    if not isinstance(text, str):
        raise ExpressionError(None, "the template must be a string")
    parts, _ = parse_template(text, context.limits)
    compiler = _Compiler(context)
    pieces: list[str | tuple[Closure, TemplatePart, Position]] = []
    for part in parts:
        if part.node is None:
            pieces.append(part.text)
            continue
        kind, run = compiler.compile(part.node)
        if kind is Type.ARRAY and not allow_empty_parts:
            raise ExpressionError(_position(part.node), "a template part cannot be an array")
        pieces.append((run, part, _position(part.node)))
    run = _template(pieces, allow_empty_parts, context.limits)
    return Compiled(
        text,
        Type.STRING,
        frozenset(compiler.attributes),
        frozenset(compiler.groups),
        run,
    )


def _template(
    pieces: Sequence[str | tuple[Closure, TemplatePart, Position]],
    allow_empty: bool,
    limits: Limits,
) -> Closure:
    steps = tuple(pieces)

    def render(facts: Facts) -> Value:
        out: list[str] = []
        for piece in steps:
            if isinstance(piece, str):
                out.append(piece)
                continue
            run, part, position = piece
            value = run(facts)
            if not allow_empty and (value is None or value == ""):
                raise EvaluationError(f"${{{part.source.strip()}}} is empty", position)
            out.append(to_text(value))
        result = "".join(out)
        if len(result) > limits.max_string:
            raise EvaluationError(f"the result is longer than {limits.max_string} characters")
        return result

    return render


# --- The compiler ------------------------------------------------------------------------------


def _position(node: Node) -> Position:
    if isinstance(node, Arithmetic):
        return _position(node.first)
    return node.at


def _suggest(word: str, candidates: Collection[str]) -> str | None:
    close = _closest(word, candidates)
    return f"did you mean {close}?" if close else None


def _fits(kind: Type, accepted: frozenset[Type]) -> bool:
    return kind in accepted or kind in (Type.ANY, Type.NULL)


class _Compiler:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.limits = context.limits
        self.attributes: set[tuple[str, str]] = set()
        self.groups: set[GroupReference] = set()

    def compile(self, node: Node) -> tuple[Type, Closure]:
        match node:
            case Literal():
                return self.literal(node)
            case Reference():
                return self.reference(node)
            case ArrayLiteral():
                return self.array(node)
            case Call():
                return self.call(node)
            case Not():
                return self.not_(node)
            case Negate():
                return self.negate(node)
            case Arithmetic():
                return self.arithmetic(node)
            case Compare():
                return self.compare(node)
            case Logical():
                return self.logical(node)
            case Conditional():
                return self.conditional(node)
        raise TypeError(f"not a syntax node: {node!r}")  # pragma: no cover

    # -- leaves ----------------------------------------------------------------------------------

    def literal(self, node: Literal) -> tuple[Type, Closure]:
        value = node.value
        if isinstance(value, str) and len(value) > self.limits.max_string:
            raise ExpressionError(node.at, "the string is too long")
        return type_of(value), lambda facts: value

    def reference(self, node: Reference) -> tuple[Type, Closure]:
        context, root, name = self.context, node.root, node.name
        if root not in context.roots:
            allowed = sorted(context.roots)
            hint = f"write {allowed[0]}.{name}" if len(allowed) == 1 else None
            if root == "user" and "source" in context.roots:
                hint = f"write source.{name}"
            raise ExpressionError(
                node.at, f"{root} attributes are not available in {context.purpose}", hint
            )
        schema = context.appuser if root == "appuser" else context.user
        kind = Type.ANY
        if schema is not None:
            if name not in schema:
                close = _closest(name, schema)
                hint = f"did you mean {root}.{close}?" if close else None
                raise ExpressionError(node.at, f"unknown attribute {root}.{name}", hint)
            kind = schema[name]
        self.attributes.add(("appuser" if root == "appuser" else "user", name))
        max_items = self.limits.max_items
        position = node.at

        def read(values: Mapping[str, object]) -> Value:
            value = values.get(name)
            cls = value.__class__
            if cls is str or value is None or cls is bool or cls is int or cls is float:
                return value  # type: ignore[return-value]
            if isinstance(value, list | tuple):
                if len(value) > max_items:
                    raise EvaluationError(
                        f"{root}.{name} has more than {max_items} items", position
                    )
                return tuple(value)
            if isinstance(value, str | int | float):  # subclasses of the plain types
                return value
            raise EvaluationError(f"{root}.{name} holds a value of an unsupported type", position)

        if root == "appuser":
            return kind, lambda facts: read(facts.appuser)
        return kind, lambda facts: read(facts.user)

    def array(self, node: ArrayLiteral) -> tuple[Type, Closure]:
        if len(node.items) > self.limits.max_items:
            raise ExpressionError(node.at, f"the array has more than {self.limits.max_items} items")
        runs: list[Closure] = []
        for item in node.items:
            kind, run = self.compile(item)
            if kind in (Type.ARRAY, Type.NULL):
                raise ExpressionError(
                    _position(item),
                    f"array items must be strings, numbers or booleans, not {kind.article}",
                )
            runs.append(run)
        items = tuple(runs)

        def build(facts: Facts) -> Value:
            values = []
            for run in items:
                value = run(facts)
                if value is None:
                    continue  # a missing attribute adds nothing
                if isinstance(value, tuple):
                    raise EvaluationError("an array cannot hold an array", node.at)
                values.append(value)
            return tuple(values)

        return Type.ARRAY, build

    # -- functions -------------------------------------------------------------------------------

    def call(self, node: Call) -> tuple[Type, Closure]:
        name = canonical_name(node.name)
        allowed = self.context.functions
        function = FUNCTIONS.get(name)
        if function is None:
            names = set(FUNCTIONS if allowed is None else allowed)
            names |= {alias for alias, target in ALIASES.items() if target in names}
            raise ExpressionError(
                node.at,
                f"unknown function {node.name}",
                _suggest(node.name.removeprefix("fn:"), names),
            )
        if allowed is not None and name not in allowed:
            raise ExpressionError(node.at, f"{name} is not allowed in {self.context.purpose}")
        self.check_arity(function, node)
        if function.kind != "plain":
            return self.fact_call(function, node)
        runs: list[Closure] = []
        for index, arg in enumerate(node.args, start=1):
            kind, run = self.compile(arg)
            accepted = (
                function.params[index - 1] if index <= len(function.params) else function.rest
            )
            assert accepted is not None
            if not _fits(kind, accepted):
                wanted = " or ".join(sorted(k.article for k in accepted))
                raise ExpressionError(
                    _position(arg),
                    f"{name} expects {wanted} as argument {index}, not {kind.article}",
                )
            runs.append(run)
        assert function.make is not None
        implementation = function.make(self.limits)
        self.check_literal_arguments(name, node, implementation)
        return function.returns, _apply(name, node.at, implementation, tuple(runs))

    def check_arity(self, function: Function, node: Call) -> None:
        count, fixed = len(node.args), len(function.params)
        if function.rest is None:
            wrong = count != fixed
        else:
            wrong = count < fixed + function.min_rest
            if function.pairs and (count - fixed) % 2:
                raise ExpressionError(
                    node.at, f"{function.name} takes its values in pairs (key, value)"
                )
        if wrong:
            raise ExpressionError(
                node.at,
                f"{function.name} takes {function.describe_arity()}, not {count}",
            )

    def check_literal_arguments(
        self, name: str, node: Call, implementation: Callable[..., Value]
    ) -> None:
        """A regular expression written as a literal is checked when the expression is saved."""
        if name not in ("String.replace", "String.replaceFirst"):
            return
        pattern = node.args[1]
        replacement = node.args[2]
        if isinstance(pattern, Literal) and isinstance(pattern.value, str):
            probe = replacement.value if isinstance(replacement, Literal) else ""
            try:
                implementation("", pattern.value, probe if isinstance(probe, str) else "")
            except ArgumentError as error:
                raise ExpressionError(_position(pattern), f"{name}: {error}") from None

    def fact_call(self, function: Function, node: Call) -> tuple[Type, Closure]:
        values: list[str] = []
        for index, arg in enumerate(node.args, start=1):
            if not (isinstance(arg, Literal) and isinstance(arg.value, str)):
                raise ExpressionError(
                    _position(arg),
                    f"{function.name} needs a quoted string as argument {index}",
                    "membership and internal properties are checked when the expression is saved",
                )
            values.append(arg.value)
        if function.kind == "internal":
            return self.internal(values[0], node)
        kind = _MEMBERSHIP_KIND[function.name]
        self.groups.update(GroupReference(kind, value) for value in values)
        return Type.BOOLEAN, _membership(kind, tuple(values))

    def internal(self, name: str, node: Call) -> tuple[Type, Closure]:
        if name not in INTERNAL_PROPERTIES:
            raise ExpressionError(
                _position(node.args[0]),
                f"unknown internal property {name!r}",
                _suggest(name, INTERNAL_PROPERTIES)
                or "use " + ", ".join(repr(p) for p in INTERNAL_PROPERTIES),
            )
        self.attributes.add(("internal", name))

        def read(facts: Facts) -> Value:
            value = facts.internal.get(name)
            return value if value is None or isinstance(value, str) else str(value)

        return Type.STRING, read

    # -- operators -------------------------------------------------------------------------------

    def operand(self, node: Node, accepted: frozenset[Type], what: str) -> Closure:
        kind, run = self.compile(node)
        if not _fits(kind, accepted):
            raise ExpressionError(_position(node), f"{what}, not {kind.article}")
        return run

    def not_(self, node: Not) -> tuple[Type, Closure]:
        run = self.operand(node.operand, frozenset({Type.BOOLEAN}), "! needs a boolean")
        position = node.at

        def negation(facts: Facts) -> Value:
            value = run(facts)
            if value is True:
                return False
            if value is False or value is None:
                return True
            raise EvaluationError(f"! needs a boolean, not {type_of(value).article}", position)

        return Type.BOOLEAN, negation

    def negate(self, node: Negate) -> tuple[Type, Closure]:
        run = self.operand(node.operand, frozenset({Type.NUMBER}), "- needs a number")
        position = node.at

        def minus(facts: Facts) -> Value:
            value = run(facts)
            if value is None:
                return None
            if value.__class__ in _NUMBERS:
                return -cast(float, value)
            raise EvaluationError(f"- needs a number, not {type_of(value).article}", position)

        return Type.NUMBER, minus

    def arithmetic(self, node: Arithmetic) -> tuple[Type, Closure]:
        kind, run = self.compile(node.first)
        steps: list[tuple[Callable[[Value, Value], Value], Closure]] = []
        positions = node.at if len(node.at) == len(node.rest) else (Position(),) * len(node.rest)
        for (op, operand), position in zip(node.rest, positions, strict=True):
            right_kind, right = self.compile(operand)
            kind = _sum_type(op, kind, right_kind, position)
            steps.append(
                (_adder(position, self.limits) if op == "+" else _subtracter(position), right)
            )
        first, chain = run, tuple(steps)
        if len(chain) == 1:
            apply, second = chain[0]
            return kind, lambda facts: apply(first(facts), second(facts))

        def fold(facts: Facts) -> Value:
            value = first(facts)
            for apply, right in chain:
                value = apply(value, right(facts))
            return value

        return kind, fold

    def compare(self, node: Compare) -> tuple[Type, Closure]:
        left_kind, left = self.compile(node.left)
        right_kind, right = self.compile(node.right)
        op, position = node.op, node.at
        known = {left_kind, right_kind} - {Type.ANY, Type.NULL}
        if op in ("==", "!="):
            if len(known) > 1:
                a, b = left_kind, right_kind
                raise ExpressionError(position, f"cannot compare {a.article} with {b.article}")
            if isinstance(node.right, Literal) and isinstance(node.right.value, str):
                text = node.right.value
                if op == "==":
                    return Type.BOOLEAN, lambda facts: left(facts) == text
                return Type.BOOLEAN, lambda facts: left(facts) != text
            if op == "==":
                return Type.BOOLEAN, lambda facts: equal(left(facts), right(facts))
            return Type.BOOLEAN, lambda facts: not equal(left(facts), right(facts))
        if known - {Type.STRING, Type.NUMBER}:
            bad = next(iter(known - {Type.STRING, Type.NUMBER}))
            raise ExpressionError(position, f"{op} compares numbers or strings, not {bad.value}s")
        if len(known) > 1:
            raise ExpressionError(
                position, f"cannot compare {left_kind.article} with {right_kind.article}"
            )
        return Type.BOOLEAN, _ordering(op, left, right, position)

    def logical(self, node: Logical) -> tuple[Type, Closure]:
        op = node.op
        runs = tuple(
            self.operand(operand, frozenset({Type.BOOLEAN}), f"{op} needs booleans")
            for operand in node.operands
        )
        return Type.BOOLEAN, _logical(op == "&&", runs, node.at)

    def conditional(self, node: Conditional) -> tuple[Type, Closure]:
        test = self.operand(
            node.test, frozenset({Type.BOOLEAN}), "the condition before ? must be a boolean"
        )
        then_kind, then = self.compile(node.then)
        else_kind, otherwise = self.compile(node.otherwise)
        kinds = {then_kind, else_kind} - {Type.NULL}
        if Type.ANY in kinds:
            kind = Type.ANY
        elif len(kinds) > 1:
            raise ExpressionError(
                node.at,
                f"the two results of ?: differ: {then_kind.article} and {else_kind.article}",
            )
        else:
            kind = kinds.pop() if kinds else Type.NULL
        position = node.at

        def choose(facts: Facts) -> Value:
            value = test(facts)
            if value is True:
                return then(facts)
            if value is False or value is None:
                return otherwise(facts)
            raise EvaluationError(
                f"the condition before ? gives {type_of(value).article}, not a boolean", position
            )

        return kind, choose


def _closest(word: str, candidates: Collection[str]) -> str | None:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _apply(
    name: str, position: Position, implementation: Callable[..., Value], runs: tuple[Closure, ...]
) -> Closure:
    def failed(error: ArgumentError) -> EvaluationError:
        return EvaluationError(f"{name}: {error}", position)

    if len(runs) == 1:
        (only,) = runs

        def one(facts: Facts) -> Value:
            try:
                return implementation(only(facts))
            except ArgumentError as error:
                raise failed(error) from None

        return one
    if len(runs) == 2:
        first, second = runs

        def two(facts: Facts) -> Value:
            try:
                return implementation(first(facts), second(facts))
            except ArgumentError as error:
                raise failed(error) from None

        return two

    def many(facts: Facts) -> Value:
        try:
            return implementation(*[run(facts) for run in runs])
        except ArgumentError as error:
            raise failed(error) from None

    return many


def _membership(kind: GroupKind, values: tuple[str, ...]) -> Closure:
    if kind == "id":
        if len(values) == 1:
            (group_id,) = values
            return lambda facts: group_id in facts.group_ids
        return lambda facts: any(value in facts.group_ids for value in values)
    (value,) = values
    if kind == "name":
        return lambda facts: value in facts.group_names
    if kind == "name_prefix":
        return lambda facts: any(name.startswith(value) for name in facts.group_names)
    return lambda facts: any(value in name for name in facts.group_names)


def _sum_type(op: str, left: Type, right: Type, position: Position) -> Type:
    kinds = {left, right}
    if op == "+" and Type.STRING in kinds:
        return Type.STRING
    if kinds <= {Type.NUMBER, Type.NULL}:
        return Type.NULL if kinds == {Type.NULL} else Type.NUMBER
    if kinds <= {Type.NUMBER, Type.NULL, Type.ANY}:
        return Type.ANY if op == "+" else Type.NUMBER
    if op == "+" and Type.ANY in kinds:
        return Type.ANY
    if op == "+":
        raise ExpressionError(position, f"cannot add {left.article} and {right.article}")
    raise ExpressionError(position, f"- needs numbers, not {left.article} and {right.article}")


def _adder(position: Position, limits: Limits) -> Callable[[Value, Value], Value]:
    max_string = limits.max_string

    def add(left: Value, right: Value) -> Value:
        left_class, right_class = left.__class__, right.__class__
        if isinstance(left, str) or isinstance(right, str):
            text = (left if isinstance(left, str) else to_text(left)) + (
                right if isinstance(right, str) else to_text(right)
            )
            if len(text) > max_string:
                raise EvaluationError(
                    f"the string would be longer than {max_string} characters", position
                )
            return text
        if left_class in _NUMBERS and right_class in _NUMBERS:
            return _number(cast(float, left) + cast(float, right), position)
        if (left is None or left_class in _NUMBERS) and (right is None or right_class in _NUMBERS):
            return None
        raise EvaluationError(
            f"cannot add {type_of(left).article} and {type_of(right).article}", position
        )

    return add


def _subtracter(position: Position) -> Callable[[Value, Value], Value]:
    def subtract(left: Value, right: Value) -> Value:
        if left.__class__ in _NUMBERS and right.__class__ in _NUMBERS:
            return _number(cast(float, left) - cast(float, right), position)
        if (left is None or left.__class__ in _NUMBERS) and (
            right is None or right.__class__ in _NUMBERS
        ):
            return None
        raise EvaluationError(
            f"- needs numbers, not {type_of(left).article} and {type_of(right).article}", position
        )

    return subtract


def _number(value: int | float, position: Position) -> int | float:
    if abs(value) > _MAX_NUMBER:
        raise EvaluationError("the number is too large", position)
    return value


def _ordering(op: str, left: Closure, right: Closure, position: Position) -> Closure:
    def order(facts: Facts) -> Value:
        a, b = left(facts), right(facts)
        if a is None or b is None:
            return False
        a_class, b_class = a.__class__, b.__class__
        if not (
            (a_class is str and b_class is str) or (a_class in _NUMBERS and b_class in _NUMBERS)
        ):
            raise EvaluationError(
                f"{op} cannot compare {type_of(a).article} with {type_of(b).article}", position
            )
        if op == "<":
            return a < b  # type: ignore[operator]
        if op == ">":
            return a > b  # type: ignore[operator]
        if op == "<=":
            return a <= b  # type: ignore[operator]
        return a >= b  # type: ignore[operator]

    return order


def _logical(conjunction: bool, runs: tuple[Closure, ...], position: Position) -> Closure:
    """``&&`` or ``||`` with short-circuit; null counts as false."""
    symbol = "&&" if conjunction else "||"

    def wrong(value: Value) -> EvaluationError:
        return EvaluationError(f"{symbol} needs booleans, not {type_of(value).article}", position)

    if len(runs) == 2:
        first, second = runs
        if conjunction:

            def both(facts: Facts) -> Value:
                value = first(facts)
                if value is not True:
                    if value is False or value is None:
                        return False
                    raise wrong(value)
                value = second(facts)
                if value is True:
                    return True
                if value is False or value is None:
                    return False
                raise wrong(value)

            return both

        def either(facts: Facts) -> Value:
            value = first(facts)
            if value is True:
                return True
            if value is not False and value is not None:
                raise wrong(value)
            value = second(facts)
            if value is True:
                return True
            if value is False or value is None:
                return False
            raise wrong(value)

        return either

    def chain(facts: Facts) -> Value:
        for run in runs:
            value = run(facts)
            if value is True:
                if not conjunction:
                    return True
            elif value is False or value is None:
                if conjunction:
                    return False
            else:
                raise wrong(value)
        return conjunction

    return chain
