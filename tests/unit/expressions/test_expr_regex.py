"""The regular-expression machine: same matches as a backtracking engine on the dialect it
accepts (checked against Python's ``re`` on random patterns), refusals outside it, and Java's
replacement syntax."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from headwater.domain.expressions.regex import (
    RegexBudgetExceeded,
    RegexError,
    compile_pattern,
    is_literal,
    parse_replacement,
)

BIG = 10**7


def replace(pattern: str, text: str, replacement: str, *, first_only: bool = False) -> str:
    return compile_pattern(pattern).replace(
        text, replacement, first_only=first_only, max_length=BIG, budget=BIG
    )


def python(pattern: str, text: str, replacement: str, *, first_only: bool = False) -> str:
    template = re.sub(r"\$(\d)", r"\\g<\1>", replacement)
    return re.sub(pattern, template, text, count=1 if first_only else 0)


EXAMPLES = [
    ("is", "This is a test", "at"),
    ("x*", "abxd", "-"),
    ("(a|ab)(c|bcd)(d*)", "abcd", "[$1|$2|$3]"),
    ("[^a-z]", "Hello World 42", "_"),
    ("\\s+", "a  b\tc", "_"),
    ("^a", "aaa", "b"),
    ("a$", "aaa", "b"),
    ("(a+?)", "aaa", "<$1>"),
    ("a{2,3}", "aaaaaaa", "X"),
    ("a{2}", "aaaaa", "X"),
    ("a{2,}", "aaaaa b aa", "X"),
    ("", "abc", "-"),
    ("(?:ab)+", "ababab c ab", "X"),
    ("a|b|", "abc", "-"),
    ("[a-c-]+", "a-b-cd", "X"),
    ("[\\d.]+", "v1.25 and 3", "N"),
    ("\\W", "a.b c", ""),
    ("\\.", "a.b", "\\\\"),
    (".", "a\nb", "x"),
    ("colou?r", "color colour", "hue"),
    ("[]a]", "a]b", "x"),
]


@pytest.mark.parametrize(("pattern", "text", "replacement"), EXAMPLES)
@pytest.mark.parametrize("first_only", [False, True])
def test_same_result_as_a_backtracking_engine(
    pattern: str, text: str, replacement: str, first_only: bool
) -> None:
    mine = replace(pattern, text, replacement, first_only=first_only)
    assert mine == python(pattern, text, replacement, first_only=first_only)


ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "(a)", "(?:ab)", "(a|b)", "x"])
QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "{1,2}", "*?", "+?"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(ATOMS, QUANTIFIERS), min_size=1, max_size=5))
    body = "".join(atom + quantifier for atom, quantifier in parts)
    if draw(st.booleans()):
        body += "|" + draw(ATOMS)
    return body


@settings(max_examples=300, deadline=None)
@given(patterns(), st.text(alphabet="ab1x\n", max_size=12))
def test_random_patterns_agree_with_python(pattern: str, text: str) -> None:
    # After an empty match Java (and this machine) go on one character later, where Python
    # looks for a non-empty match at the same place: compare patterns that cannot match empty.
    assume(re.fullmatch(pattern, "") is None)
    for first_only in (False, True):
        mine = replace(pattern, text, "<$0>", first_only=first_only)
        assert mine == python(pattern, text, "<$0>", first_only=first_only), pattern


REFUSED = [
    ("(a", "missing ')'"),
    ("a)", "unbalanced ')'"),
    ("*a", "nothing to repeat"),
    ("{2}", "nothing to repeat"),
    ("a**", "a quantifier cannot follow a quantifier"),
    ("a*+", "possessive quantifiers are not supported"),
    ("(?=a)", "only (?:...) groups are supported"),
    ("(?i)a", "only (?:...) groups are supported"),
    ("(a)\\1", "the escape \\1 is not supported"),
    ("\\bword", "the escape \\b is not supported"),
    ("\\p{L}", "the escape \\p is not supported"),
    ("[a-z&&[^e]]", "class intersections"),
    ("[[a]]", "nested classes are not supported"),
    ("[abc", "missing ']'"),
    ("[z-a]", "the range z-a is backwards"),
    ("a{3,1}", "the repeat range is backwards"),
    ("a{500}", "repeat counts are limited to 100"),
    ("^*", "an anchor cannot be repeated"),
    ("a\\", "lone backslash"),
    ("(" * 20 + ")" * 20, "nested more than 16 deep"),
    ("(a{100}){100}", "the pattern is too complex"),
]


@pytest.mark.parametrize(("pattern", "message"), REFUSED)
def test_outside_the_dialect_is_refused(pattern: str, message: str) -> None:
    with pytest.raises(RegexError, match=re.escape(message)):
        compile_pattern(pattern)


def test_replacement_syntax() -> None:
    assert parse_replacement("a$1b\\$c", 1) == ["a", 1, "b$c"]
    assert parse_replacement("$12", 1) == [1, "2"]
    assert parse_replacement("$12", 12) == [12]
    with pytest.raises(RegexError, match="group 3"):
        parse_replacement("$3", 2)
    with pytest.raises(RegexError, match="followed by a group number"):
        parse_replacement("cost: $", 0)
    with pytest.raises(RegexError, match="lone backslash"):
        parse_replacement("a\\", 0)


def test_unmatched_groups_insert_nothing() -> None:
    assert replace("(a)|(b)", "ab", "[$1$2]") == "[a][b]"


def test_budget() -> None:
    with pytest.raises(RegexBudgetExceeded):
        compile_pattern("(a|b)*c").replace(
            "ab" * 1000, "x", first_only=False, max_length=BIG, budget=500
        )


def test_literal_detection() -> None:
    assert is_literal("SSO-") and is_literal("@example.com") is False
    assert not is_literal("a.b") and not is_literal("a+")
