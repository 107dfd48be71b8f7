"""The sandbox's bounds: hostile expressions are refused when saved, or stopped at run time
with an EvaluationError, fast."""

from __future__ import annotations

import time

import pytest

from headwater.domain.expressions import (
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    Limits,
    compile_expression,
    compile_template,
)

MAPPING = Context.mapping()
FACTS = Facts(user={"login": "ada@example.com", "a": "a" * 1024})
#: Every hostile case must be refused or stopped well under this.
FAST = 0.5


def doubling(levels: int) -> str:
    """``String.replace(...)`` nested ``levels`` deep, each level doubling every character."""
    text = "user.login"
    for _ in range(levels):
        text = f'String.replace({text}, ".", "$0$0")'
    return text


def test_doubling_64_times_is_refused_when_saved() -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError, match=r"nested too deeply"):
        compile_expression(doubling(64), context=MAPPING)
    assert time.perf_counter() - started < FAST


def test_doubling_within_the_nesting_bound_is_stopped_at_run_time() -> None:
    compiled = compile_expression(doubling(30), context=MAPPING)
    started = time.perf_counter()
    with pytest.raises(EvaluationError, match=r"longer than 16384 characters"):
        compiled.evaluate(FACTS)
    assert time.perf_counter() - started < FAST


def test_concatenation_doubling_is_stopped_by_the_string_bound() -> None:
    # Each level doubles the previous through String.join of the same text twice.
    text = "user.a"
    for _ in range(8):
        text = f'String.join("", {text}, {text})'
    limits = Limits(max_length=100_000, max_steps=10_000)
    compiled = compile_expression(text, context=Context.mapping(limits=limits))
    started = time.perf_counter()
    with pytest.raises(EvaluationError, match=r"longer than 16384 characters"):
        compiled.evaluate(FACTS)
    assert time.perf_counter() - started < FAST


def test_plus_checks_the_string_bound() -> None:
    limits = Limits(max_string=10)
    compiled = compile_expression('user.login + "!"', context=Context.mapping(limits=limits))
    with pytest.raises(EvaluationError, match=r"longer than 10 characters at column 12"):
        compiled.evaluate(FACTS)


def test_replace_with_an_empty_pattern_checks_the_bound_before_building() -> None:
    compiled = compile_expression('String.replace(user.a, "", user.a)', context=MAPPING)
    started = time.perf_counter()
    with pytest.raises(EvaluationError, match=r"longer than 16384"):
        compiled.evaluate(FACTS)
    assert time.perf_counter() - started < FAST


@pytest.mark.parametrize(
    "pattern", ["a*a*a*b", ".*.*.*x", "(a|aa)+b", "(a*)*b", "(a+)+$", "(.*a){12}"]
)
def test_backtracking_patterns_run_in_linear_time(pattern: str) -> None:
    compiled = compile_expression(f'String.replace(user.a, "{pattern}", "x")', context=MAPPING)
    started = time.perf_counter()
    try:
        compiled.evaluate(FACTS)
    except EvaluationError as error:
        assert "steps" in str(error)
    assert time.perf_counter() - started < FAST


def test_regex_steps_are_bounded() -> None:
    limits = Limits(max_regex_steps=1000)
    compiled = compile_expression(
        'String.replace(user.a, "(a|b)*c", "x")', context=Context.mapping(limits=limits)
    )
    with pytest.raises(EvaluationError, match=r"more than 1000 steps"):
        compiled.evaluate(FACTS)


def test_long_patterns_are_refused() -> None:
    pattern = "a" * 300 + "("
    with pytest.raises(ExpressionError, match=r"longer than 256 characters"):
        compile_expression(f'String.replace(user.a, "{pattern}", "x")', context=MAPPING)
    compiled = compile_expression('String.replace(user.a, user.a, "x")', context=MAPPING)
    with pytest.raises(EvaluationError, match=r"longer than 256 characters"):
        compiled.evaluate(Facts(user={"a": "(" * 300}))


def test_expression_length_is_bounded() -> None:
    with pytest.raises(ExpressionError, match=r"too long .4097 characters, at most 4096"):
        compile_expression('"' + "x" * 4095 + '"', context=MAPPING)
    with pytest.raises(ExpressionError, match=r"too long"):
        compile_template("x" * 5000, context=Context.username())


@pytest.mark.parametrize(
    "deep",
    [
        "!" * 40 + "true",
        "-" * 40 + "1",
        "true ? " * 40 + "1" + " : 2" * 40,
        "String.len(" * 40 + '"x"' + ")" * 40,
        "1 + (" * 40 + "1" + ")" * 40,
    ],
)
def test_nesting_is_bounded_for_every_construct(deep: str) -> None:
    with pytest.raises(ExpressionError, match=r"nested too deeply .more than 32 levels"):
        compile_expression(deep, context=MAPPING)


def test_parentheses_alone_add_no_nesting() -> None:
    assert compile_expression("(" * 200 + "1" + ")" * 200, context=MAPPING).evaluate(FACTS) == 1


def test_long_chains_count_once_towards_nesting() -> None:
    chain = " + ".join(["user.login"] * 300)
    compiled = compile_expression(chain, context=MAPPING)
    assert compiled.evaluate(FACTS) == "ada@example.com" * 300


def test_size_is_bounded() -> None:
    limits = Limits(max_steps=50)
    with pytest.raises(ExpressionError, match=r"too large .more than 50 parts"):
        compile_expression(" + ".join(["1"] * 60), context=Context.mapping(limits=limits))
    with pytest.raises(ExpressionError, match=r"too large"):
        compile_template("${1}" * 60, context=Context.username(limits=limits))


def test_collections_are_bounded() -> None:
    limits = Limits(max_items=3)
    mapping = Context.mapping(limits=limits)
    with pytest.raises(ExpressionError, match=r"more than 3 items"):
        compile_expression("{1, 2, 3, 4}", context=mapping)
    flatten = compile_expression("Arrays.flatten(user.x, user.x)", context=mapping)
    with pytest.raises(EvaluationError, match=r"more than 3 items"):
        flatten.evaluate(Facts(user={"x": [1, 2]}))
    with pytest.raises(EvaluationError, match=r"user.x has more than 3 items"):
        compile_expression("user.x", context=mapping).evaluate(Facts(user={"x": [1, 2, 3, 4]}))
    csv = compile_expression('Arrays.size("a,b,c,d")', context=mapping)
    with pytest.raises(EvaluationError, match=r"more than 3 items"):
        csv.evaluate(Facts())


def test_unexpected_failures_become_evaluation_errors() -> None:
    class Hostile(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            raise ZeroDivisionError

    compiled = compile_expression("user.login", context=MAPPING)
    with pytest.raises(EvaluationError, match=r"the expression failed .ZeroDivisionError."):
        compiled.evaluate(Facts(user=Hostile()))
