"""Every function, from a table: normal values, null, and the edges (indexes out of range,
missing separators, CSV input, rounding, regular expressions)."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.domain.expressions import (
    FUNCTIONS,
    Context,
    EvaluationError,
    Facts,
    Value,
    compile_expression,
)

MAPPING = Context.mapping()
FACTS = Facts(
    user={
        "login": "Ada.Lovelace@example.com",
        "first": "Ada",
        "blank": "",
        "tags": ["red", "green"],
        "numbers": [10, 20, 30],
        "count": 3,
        "ratio": 2.5,
        "admin": True,
    }
)


def run(text: str) -> Value:
    return compile_expression(text, context=MAPPING).evaluate(FACTS)


CASES: list[tuple[str, Any]] = [
    # String.toLowerCase / toUpperCase
    ('String.toLowerCase("ThiS")', "this"),
    ('String.toUpperCase("This")', "THIS"),
    ("String.toLowerCase(user.login)", "ada.lovelace@example.com"),
    ("String.toLowerCase(user.missing)", None),
    ("String.toUpperCase(null)", None),
    ('String.toUpperCase("")', ""),
    # String.substring: Python slicing, clamped; negative indexes count from the end
    ('String.substring("This is a test", 2, 9)', "is is a"),
    ('String.substring("Alexander", 1, 4)', "lex"),
    ('String.substring("abc", 0, 10)', "abc"),
    ('String.substring("abc", 5, 10)', ""),
    ('String.substring("abc", 2, 1)', ""),
    ('String.substring("abcdef", -3, 6)', "def"),
    ('String.substring("abc", String.len("abc") - 20, String.len("abc"))', "abc"),
    ("String.substring(user.missing, 0, 1)", None),
    ('String.substring("abc", 1.0, 2)', "b"),
    # String.substringBefore / substringAfter
    ('String.substringBefore("abc@okta.com", "@")', "abc"),
    ('String.substringBefore("abc", "@")', "abc"),
    ('String.substringBefore("a@b@c", "@")', "a"),
    ('String.substringBefore("abc", "")', ""),
    ('String.substringBefore("abc", null)', "abc"),
    ('String.substringBefore(null, "@")', None),
    ('String.substringAfter("abc@okta.com", "@")', "okta.com"),
    ('String.substringAfter("abc", "@")', ""),
    ('String.substringAfter("a@b@c", "@")', "b@c"),
    ('String.substringAfter("abc", "")', "abc"),
    ('String.substringAfter("abc", null)', ""),
    ('String.substringAfter(null, "@")', None),
    # String.stringContains / startsWith / endsWith
    ('String.stringContains("This is a test", "test")', True),
    ('String.stringContains("This is a test", "doesn\'tExist")', False),
    ('String.stringContains(null, "x")', False),
    ('String.stringContains("x", null)', False),
    ('String.stringContains("abc", "")', True),
    ('String.startsWith("Kiss", "K")', True),
    ('String.startsWith("Kiss", "k")', False),
    ('String.startsWith(null, "K")', False),
    ('String.endsWith("Kiss", "ss")', True),
    ('String.endsWith("Kiss", "K")', False),
    ('String.endsWith("Kiss", null)', False),
    # String.len
    ('String.len("This")', 4),
    ('String.len("")', 0),
    ("String.len(user.missing)", 0),
    # String.join: null arguments are left out, arrays spread
    ('String.join(",", "This", "is", "a", "test")', "This,is,a,test"),
    ('String.join("", "This", "is", "a", "test")', "Thisisatest"),
    ('String.join(" ", user.first, user.missing, "L")', "Ada L"),
    ('String.join("-", user.tags)', "red-green"),
    ('String.join(null, "a", "b")', "ab"),
    ('String.join("/", user.numbers)', "10/20/30"),
    # String.append
    ('String.append("This is", " a test")', "This is a test"),
    ('String.append(null, "x")', "x"),
    ('String.append("x", null)', "x"),
    # String.removeSpaces: every whitespace character
    ('String.removeSpaces("This is a test")', "Thisisatest"),
    ('String.removeSpaces(" a\tb ")', "ab"),
    ("String.removeSpaces(null)", None),
    # String.replace / replaceFirst: Java regular expressions
    ('String.replace("This is a test", "is", "at")', "That at a test"),
    ('String.replaceFirst("This is a test", "is", "at")', "That is a test"),
    ('String.replace("a.b.c", ".", "-")', "-----"),
    ('String.replace("a.b.c", "\\.", "-")', "a-b-c"),
    ('String.replace("a  b   c", "\\s+", " ")', "a b c"),
    ('String.replace("joe@example.com", "(\\w+)@(\\w+)\\.com", "$2/$1")', "example/joe"),
    ('String.replace("price", "p", "\\$")', "$rice"),
    ('String.replace("abc", "", "-")', "-a-b-c-"),
    ('String.replace("SSO-Admins", "SSO-", "")', "Admins"),
    ('String.replaceFirst("aaa", "a+?", "b")', "baa"),
    ('String.replace(null, "a", "b")', None),
    ('String.replace("abc", null, "b")', "abc"),
    ('String.replace("abc", "b", null)', "ac"),
    # String.stringSwitch: the first key contained in the input wins
    ('String.stringSwitch("This is a test", "default", "key1", "value1")', "default"),
    ('String.stringSwitch("This is a test", "default", "test", "value1")', "value1"),
    (
        'String.stringSwitch("First match wins", "default", "absent", "value1", "wins",'
        ' "value2", "match", "value3")',
        "value2",
    ),
    ('String.stringSwitch("Substrings count", "default", "ring", "value1")', "value1"),
    ('String.stringSwitch(null, "default", "a", "b")', "default"),
    ('String.stringSwitch("abc", "default", null, "x", "b", "y")', "y"),
    # Deprecated names and the fn: form
    ('toUpperCase("Alexander")', "ALEXANDER"),
    ('toLowerCase("AlexANDER")', "alexander"),
    ('substringBefore("alex@okta.com", "@")', "alex"),
    ('substringAfter("alex@okta.com", "@")', "okta.com"),
    ('substring("Alexander", 1, 4)', "lex"),
    ('fn:substringBefore("alex@okta.com", "@")', "alex"),
    # Arrays: arrays, CSV strings, null
    ("Arrays.contains({10, 20, 30}, 10)", True),
    ("Arrays.contains({10, 20, 30}, 50)", False),
    ('Arrays.contains(user.tags, "red")', True),
    ('Arrays.contains(user.tags, "Red")', False),
    ('Arrays.contains("red, green", "green")', True),
    ('Arrays.contains({"10"}, 10)', False),
    ("Arrays.contains({1}, 1.0)", True),
    ('Arrays.contains(null, "x")', False),
    ("Arrays.size({10, 20, 30})", 3),
    ("Arrays.size(NULL)", 0),
    ('Arrays.size("a,b,c")', 3),
    ('Arrays.size("")', 0),
    ("Arrays.size(user.tags)", 2),
    ("Arrays.isEmpty({10, 20})", False),
    ("Arrays.isEmpty(NULL)", True),
    ("Arrays.isEmpty({})", True),
    ('Arrays.isEmpty("")', True),
    ("Arrays.flatten(10, {20, 30}, 40)", (10, 20, 30, 40)),
    ('Arrays.flatten("10, 20, 30, 40")', ("10", "20", "30", "40")),
    ("Arrays.flatten(user.tags, null, user.numbers)", ("red", "green", 10, 20, 30)),
    ('Arrays.toCsvString({"This", "is", " a ", "test"})', "This,is, a ,test"),
    ("Arrays.toCsvString(user.numbers)", "10,20,30"),
    ("Arrays.toCsvString(null)", ""),
    ("Arrays.toCsvString({true, 1.5})", "true,1.5"),
    # Convert.toInt: Java's Math.round for numbers
    ('Convert.toInt("1234")', 1234),
    ('Convert.toInt(" -12 ")', -12),
    ("Convert.toInt(123.4)", 123),
    ("Convert.toInt(123.6)", 124),
    ("Convert.toInt(2.5)", 3),
    ("Convert.toInt(-2.5)", -2),
    ('Convert.toInt("7.5")', 8),
    ("Convert.toInt(user.missing)", None),
    ("Convert.toInt(user.count)", 3),
]


def test_every_function_is_in_the_table() -> None:
    tested = {text.split("(")[0] for text, _ in CASES}
    missing = {name for name, function in FUNCTIONS.items() if function.kind == "plain"} - tested
    assert not missing


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_function(text: str, expected: Any) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


RUN_TIME_ERRORS = [
    ('String.substring("abc", 1.5, 2)', "String.substring: argument 2 must be a whole number"),
    ("String.substring(user.login, user.missing, 2)", "argument 2 must be a number, not null"),
    ("String.toLowerCase(user.count)", "String.toLowerCase: argument 1 must be a string"),
    ('String.join(",", user.count)', "argument 2 must be a string, not a number"),
    ("Arrays.size(user.count)", "argument 1 must be an array, not a number"),
    ('Convert.toInt("twelve")', "'twelve' is not a number"),
    ('Convert.toInt("99999999999")', "does not fit in an integer"),
    ("Convert.toInt(user.admin)", "must be a string or a number, not a boolean"),
    ("Convert.toInt(user.tags)", "must be a string or a number, not an array"),
    ('String.replace("a", user.first + "(", "b")', "missing ')'"),
    ('String.replace("a", user.first + "\\1", "b")', "the escape \\1 is not supported"),
]


@pytest.mark.parametrize(("text", "message"), RUN_TIME_ERRORS)
def test_wrong_values_at_run_time_are_evaluation_errors(text: str, message: str) -> None:
    compiled = compile_expression(text, context=MAPPING)
    with pytest.raises(EvaluationError, match=None) as caught:
        compiled.evaluate(FACTS)
    assert message in str(caught.value)
    assert "column" in str(caught.value)


def test_membership_functions_read_the_facts() -> None:
    facts = Facts(group_ids=frozenset({"00g1", "00g2"}), group_names=frozenset({"San Francisco"}))
    cases = {
        'isMemberOfGroup("00g1")': True,
        'isMemberOfGroup("00g9")': False,
        'isMemberOfAnyGroup("00g8", "00g2")': True,
        'isMemberOfAnyGroup("00g8", "00g9")': False,
        'isMemberOfGroupName("San Francisco")': True,
        'isMemberOfGroupName("san francisco")': False,
        'isMemberOfGroupNameStartsWith("San Fr")': True,
        'isMemberOfGroupNameStartsWith("Fr")': False,
        'isMemberOfGroupNameContains("Franc")': True,
        'isMemberOfGroupNameContains("Paris")': False,
    }
    for text, expected in cases.items():
        assert compile_expression(text, context=MAPPING).evaluate(facts) is expected, text
        assert compile_expression(text, context=MAPPING).evaluate(Facts()) is False, text


def test_internal_properties() -> None:
    facts = Facts(internal={"id": "00u1", "status": "ACTIVE", "created": "2024-01-02T03:04:05Z"})
    assert run_with('user.getInternalProperty("status")', facts) == "ACTIVE"
    assert run_with("user.getInternalProperty('id')", facts) == "00u1"
    assert run_with('user.getInternalProperty("created")', facts) == "2024-01-02T03:04:05Z"
    assert run_with('user.getInternalProperty("lastUpdated")', facts) is None
    assert run_with('user.getInternalProperty("status") == "ACTIVE"', facts) is True


def run_with(text: str, facts: Facts) -> Value:
    return compile_expression(text, context=MAPPING).evaluate(facts)
