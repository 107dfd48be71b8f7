"""Literals, operators and precedence, null handling, syntax errors with positions, and what
the checker refuses when an expression is saved."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.domain.expressions import (
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    GroupReference,
    Position,
    Type,
    Value,
    compile_expression,
    parse_expression,
    to_source,
)
from headwater.domain.expressions.model import Limits
from headwater.errors import InvalidRequest

MAPPING = Context.mapping()
FACTS = Facts(
    user={
        "department": "Engineering",
        "salary": 1_200_000,
        "isContractor": False,
        "city": "San Francisco",
        "empty": "",
        "score": 2.5,
        "tags": ["a", "b"],
    },
    appuser={"role": "admin"},
)


def run(text: str, facts: Facts = FACTS) -> Value:
    return compile_expression(text, context=MAPPING).evaluate(facts)


EVALUATIONS: list[tuple[str, Any]] = [
    # literals, with SpEL's quote doubling; a backslash is an ordinary character
    ('"Hello world"', "Hello world"),
    ("'Hello world'", "Hello world"),
    ("'it''s'", "it's"),
    ('"say ""hi"""', 'say "hi"'),
    ('"XDOMAIN\\"', "XDOMAIN\\"),
    ("1234", 1234),
    ("3.141", 3.141),
    ("1e3", 1000.0),
    ("true", True),
    ("FALSE", False),
    ("null", None),
    ("NULL", None),
    ('{"a", 1, true}', ("a", 1, True)),
    ("{}", ()),
    # + concatenates as soon as one side is a string, adds numbers, folds from the left
    ('"a" + "b"', "ab"),
    ('"n" + 1', "n1"),
    ('1 + 2 + "x"', "3x"),
    ('"x" + 1 + 2', "x12"),
    ('"x" + (1 + 2)', "x3"),
    ('"v" + true', "vtrue"),
    ('"v" + 2.5', "v2.5"),
    ('"v" + user.tags', "va,b"),
    ("1 + 2", 3),
    ("1 + 2.5", 3.5),
    ("10 - 4 - 3", 3),
    ("-user.salary", -1_200_000),
    ("-(1 + 2)", -3),
    # null-safe: a missing attribute is null; in text it is empty
    ("user.missing", None),
    ('user.missing + "x"', "x"),
    ('"x" + user.missing', "x"),
    ("user.missing + 1", None),
    ("user.missing - 1", None),
    ("-user.missing", None),
    ("user.missing == null", True),
    ("user.empty == null", False),
    ('user.empty == ""', True),
    ("user.missing != null", False),
    ("user.missing > 1", False),
    ("user.missing < 1", False),
    ("!user.missing", True),
    ("user.missing && true", False),
    ("user.missing || true", True),
    ("user.missing ? 1 : 2", 2),
    # comparisons: no conversions between types
    ('user.department == "Engineering"', True),
    ('user.department != "Engineering"', False),
    ('user.department == "engineering"', False),
    ("1 == 1.0", True),
    ('"1" == user.salary', False),
    ("user.isContractor == 0", False),
    ('{"a"} == {"a"}', True),
    ('user.tags == {"a", "b"}', True),
    ("user.salary >= 1000000", True),
    ("user.salary > 1000000 AND !user.isContractor", True),
    ('"abc" < "abd"', True),
    ('"b" > "abc"', True),
    ("2 <= 2", True),
    ("2.5 >= 3", False),
    # logic: && binds tighter than ||, ! tighter than both, AND/OR in any case
    ("true || false && false", True),
    ("(true || false) && false", False),
    ("!true || true", True),
    ("!(true || true)", False),
    ("true and false", False),
    ("false OR true", True),
    ("false || false || true", True),
    ("true && true && false", False),
    ('user.department == "Engineering" && user.city == "San Francisco"', True),
    # comparison binds looser than +, tighter than &&
    ('"a" + "b" == "ab"', True),
    ("1 + 1 == 2 && 2 > 1", True),
    # the ternary is right-associative and the loosest
    ("true ? 1 : 2", 1),
    ("false ? 1 : true ? 2 : 3", 2),
    ("false ? 1 : false ? 2 : 3", 3),
    ('user.salary > 10 ? "high" : "low"', "high"),
    ("1 == 1 ? 2 + 3 : 4", 5),
    ('user.department == "Sales" ? appuser.role : null', None),
    ('appuser.role + "!"', "admin!"),
    ("(true ? false : true) ? 1 : 2", 2),
]


@pytest.mark.parametrize(("text", "expected"), EVALUATIONS)
def test_evaluation(text: str, expected: Any) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


def test_and_or_short_circuit() -> None:
    # The right side would fail at run time; it is never evaluated.
    assert run("false && user.department") is False
    assert run("true || user.department") is True
    with pytest.raises(EvaluationError, match="&& needs booleans, not a string at column 6"):
        run("true && user.department")


SYNTAX_ERRORS = [
    ("", "the expression is empty"),
    ("   ", "the expression is empty"),
    ("user.a ==", "the expression ends too early at column 10; expected a value"),
    ("user.a = 1", "unexpected character '=' at column 8; compare with =="),
    ("user.a & user.b", "unexpected character '&' at column 8; write && or AND"),
    ('"abc', "unterminated string at column 1"),
    ("(user.a", "the expression ends too early at column 8"),
    ("user.a)", "unexpected ')' at column 7"),
    ("user.a == 1 == 2", "unexpected '==' at column 13; comparisons cannot be chained"),
    ('"a" "b"', "unexpected '\"b\"' at column 5; an operator is missing"),
    ("firstName", "unknown name firstName at column 1"),
    ("user.a.b", "user.a.b is not an attribute"),
    ("user.a #", "unexpected character '#' at column 8"),
    ("user.a\n  + ", "the expression ends too early at line 2, column 5"),
    ("1e400", "the number 1e400 is too large"),
    ("99999999999999999999", "is too large"),
    ("user.a ? 1", "the expression ends too early at column 11"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS)
def test_syntax_errors_name_position_and_problem(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, context=MAPPING)
    assert message in str(caught.value)


SCHEMA = {
    "department": Type.STRING,
    "salary": Type.NUMBER,
    "isContractor": Type.BOOLEAN,
    "tags": Type.ARRAY,
    "anything": Type.ANY,
}
RULE = Context.group_rule(SCHEMA)

CHECK_ERRORS = [
    (
        "String.toLowerCase(String.toLower(user.department))",
        "unknown function String.toLower at column 20; did you mean String.toLowerCase?",
    ),
    ("toLower(user.department)", "unknown function toLower at column 1; did you mean toLowerCase?"),
    ("Strings.len(user.department)", "did you mean String.len?"),
    ("nothingLikeIt(1)", "unknown function nothingLikeIt at column 1"),
    (
        "user.departmnt == 1",
        "unknown attribute user.departmnt at column 1; did you mean user.department?",
    ),
    ("user.zzz", "unknown attribute user.zzz at column 1"),
    ("appuser.role", "appuser attributes are not available in a group rule at column 1"),
    ("source.login", "source attributes are not available in a group rule at column 1; write"),
    ('Convert.toInt("1") == user.salary', "Convert.toInt is not allowed in a group rule"),
    ("user.department == 1", "cannot compare a string with a number at column 17"),
    ('user.salary != "x"', "cannot compare a number with a string"),
    ("user.isContractor < true", "< compares numbers or strings, not booleans"),
    ('user.salary < "x"', "cannot compare a number with a string"),
    ("user.department && true", "&& needs booleans, not a string at column 1"),
    ("!user.salary", "! needs a boolean, not a number at column 2"),
    ("-user.department", "- needs a number, not a string"),
    ("user.salary + true", "cannot add a number and a boolean at column 13"),
    ("user.tags + 1", "cannot add an array and a number"),
    ('user.department - "x"', "- needs numbers"),
    ("user.department ? 1 : 2", "the condition before ? must be a boolean, not a string"),
    ('user.isContractor ? 1 : "x"', "the two results of ?: differ: a number and a string"),
    ("String.len()", "String.len takes 1 argument, not 0 at column 1"),
    ('String.substring("a", 1)', "String.substring takes 3 arguments, not 2"),
    ('String.join(",")', "String.join takes at least 2 arguments, not 1"),
    ('String.stringSwitch("a", "b", "c")', "takes its values in pairs"),
    (
        "String.toUpperCase(user.salary)",
        "String.toUpperCase expects a string as argument 1, not a number",
    ),
    ('String.substring(user.department, "1", 2)', "expects a number as argument 2, not a string"),
    (
        "Arrays.size(user.salary)",
        "Arrays.size expects a string or an array as argument 1, not a number",
    ),
    ("isMemberOfGroup(user.department)", "isMemberOfGroup needs a quoted string as argument 1"),
    (
        'user.getInternalProperty("statu")',
        "unknown internal property 'statu' at column 26; did you mean status?",
    ),
    ('String.replace(user.department, "(a", "b")', "String.replace: missing ')'"),
    ('String.replace(user.department, "a", "$2")', "refers to group 2, which does not exist"),
    ('String.replace(user.department, "a", "$")', "must be followed by a group number"),
    ('String.replace(user.department, "a++", "b")', "possessive quantifiers are not supported"),
    ('"1" == 1', "cannot compare a string with a number at column 5"),
    ("true == 1", "cannot compare a boolean with a number at column 6"),
    ("{null}", "array items must be strings, numbers or booleans, not null"),
    ('"x"', "a group rule must give a boolean, this one gives a string"),
    ("1 + 2", "a group rule must give a boolean, this one gives a number"),
]


@pytest.mark.parametrize(("text", "message"), CHECK_ERRORS)
def test_checker_refuses_at_save_time(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, context=RULE, expect=Type.BOOLEAN)
    assert message in str(caught.value)


def test_expression_error_is_an_okta_400() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("String.toLower(user.a)", context=MAPPING)
    error = caught.value
    assert isinstance(error, InvalidRequest)
    assert error.status == 400 and error.code == "E0000001"
    assert error.position == Position(1, 1)
    assert error.problem == "unknown function String.toLower"
    assert error.hint == "did you mean String.toLowerCase?"
    field = error.for_field("conditions.expression.value")
    assert field.summary == "Api validation failed: conditions.expression.value"
    assert field.causes == [f"conditions.expression.value: {error.message}"]


RESULT_TYPES = [
    ('user.department == "x"', Type.BOOLEAN),
    ("user.department", Type.STRING),
    ("user.anything", Type.ANY),
    ("user.department + 1", Type.STRING),
    ("user.salary + 1", Type.NUMBER),
    ("user.anything + 1", Type.ANY),
    ('user.anything + "x"', Type.STRING),
    ("user.salary - user.anything", Type.NUMBER),
    ("String.len(user.department)", Type.NUMBER),
    ('Arrays.flatten(user.tags, "x")', Type.ARRAY),
    ('user.isContractor ? "a" : null', Type.STRING),
    ("user.isContractor ? user.anything : 1", Type.ANY),
    ("null", Type.NULL),
]


@pytest.mark.parametrize(("text", "kind"), RESULT_TYPES)
def test_result_type(text: str, kind: Type) -> None:
    assert compile_expression(text, context=Context.mapping(SCHEMA)).result_type is kind


def test_expect_accepts_any_of_several_types_and_unknowns() -> None:
    mapping = Context.mapping(SCHEMA)
    compile_expression("user.salary", context=mapping, expect={Type.STRING, Type.NUMBER})
    compile_expression("user.anything", context=mapping, expect=Type.BOOLEAN)
    with pytest.raises(ExpressionError, match="a mapping must give a boolean or a number"):
        compile_expression("user.department", context=mapping, expect={Type.NUMBER, Type.BOOLEAN})


def test_without_a_schema_any_attribute_is_accepted() -> None:
    compiled = compile_expression("user.whatever == appuser.other", context=MAPPING)
    assert compiled.attributes_referenced == {("user", "whatever"), ("appuser", "other")}


def test_references_are_exposed() -> None:
    compiled = compile_expression(
        'isMemberOfGroup("00g1") || isMemberOfAnyGroup("00g2", "00g3") && '
        'isMemberOfGroupName("Sales") || isMemberOfGroupNameStartsWith("Eng") || '
        'isMemberOfGroupNameContains("ops") || user.getInternalProperty("status") == "ACTIVE"'
        " || user.city == source.city",
        context=Context("a test", frozenset({"user", "source"})),
    )
    assert compiled.groups_referenced == {
        GroupReference("id", "00g1"),
        GroupReference("id", "00g2"),
        GroupReference("id", "00g3"),
        GroupReference("name", "Sales"),
        GroupReference("name_prefix", "Eng"),
        GroupReference("name_contains", "ops"),
    }
    assert compiled.attributes_referenced == {("internal", "status"), ("user", "city")}
    prefix = GroupReference("name_prefix", "Eng")
    assert prefix.matches("00g9", "Engineering") and not prefix.matches("00g9", "Sales")
    assert GroupReference("id", "00g1").matches("00g1", "anything")
    assert GroupReference("name_contains", "ops").matches("x", "DevOps".lower())


def test_rule_test_counts_null_as_false_and_refuses_other_values() -> None:
    rule = compile_expression("user.flag", context=Context.group_rule(), expect=Type.BOOLEAN)
    assert rule.test(Facts(user={"flag": True})) is True
    assert rule.test(Facts(user={})) is False
    with pytest.raises(EvaluationError, match="the rule gives a string, not a boolean"):
        rule.test(Facts(user={"flag": "yes"}))


RUN_TIME_TYPE_ERRORS = [
    ("user.a + user.b", {"a": True, "b": 1}, "cannot add a boolean and a number at column 8"),
    ("user.a - user.b", {"a": "x", "b": 1}, "- needs numbers, not a string and a number"),
    ("user.a < user.b", {"a": "x", "b": 1}, "< cannot compare a string with a number"),
    ("!user.a", {"a": "x"}, "! needs a boolean, not a string at column 1"),
    ("-user.a", {"a": "x"}, "- needs a number, not a string"),
    ("user.a ? 1 : 2", {"a": 3}, "the condition before ? gives a number, not a boolean"),
    ("user.a || false", {"a": 3}, "|| needs booleans, not a number"),
    ("user.a && true && true", {"a": 3}, "&& needs booleans, not a number"),
    ("user.a + 1", {"a": 2**53}, "the number is too large"),
    ("{user.a}", {"a": ["x"]}, "an array cannot hold an array"),
    ("user.a", {"a": {"nested": 1}}, "user.a holds a value of an unsupported type"),
]


@pytest.mark.parametrize(("text", "profile", "message"), RUN_TIME_TYPE_ERRORS)
def test_run_time_type_errors(text: str, profile: dict[str, Any], message: str) -> None:
    compiled = compile_expression(text, context=MAPPING)
    with pytest.raises(EvaluationError) as caught:
        compiled.evaluate(Facts(user=profile))
    assert message in str(caught.value)


def test_array_literals_skip_nulls() -> None:
    assert run("{user.department, user.missing}") == ("Engineering",)


def test_printer_round_trips_the_examples() -> None:
    for text, _ in EVALUATIONS:
        node, _ = parse_expression(text, Limits())
        printed = to_source(node)
        again, _ = parse_expression(printed, Limits())
        assert again == node, (text, printed)
        assert run(printed) == run(text)
