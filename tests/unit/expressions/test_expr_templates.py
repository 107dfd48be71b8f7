"""Okta's template form: text with embedded ``${expression}`` parts (username templates)."""

from __future__ import annotations

import pytest

from headwater.domain.expressions import (
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    Type,
    compile_template,
)

USERNAME = Context.username()
FACTS = Facts(user={"login": "Ada.Lovelace@example.com", "firstName": "Ada", "n": 7})

RENDERED = [
    ("${source.login}", "Ada.Lovelace@example.com"),
    ('${fn:substringBefore(source.login,"@")}', "Ada.Lovelace"),
    ('${fn:substringAfter(source.login, "@")}', "example.com"),
    ("${fn:toLowerCase(source.login)}", "ada.lovelace@example.com"),
    ("${fn:toUpperCase(source.firstName)}", "ADA"),
    ('${String.substringBefore(source.login, "@")}@corp.example', "Ada.Lovelace@corp.example"),
    ("plain text", "plain text"),
    ("", ""),
    ("$ and { and } alone", "$ and { and } alone"),
    ("${source.firstName}-${source.n}", "Ada-7"),
    ("${\"}\"}${'{'}", "}{"),
    ('${String.join(",", {"a", "b"})}', "a,b"),
    ("${source.missing}x", "x"),
    ('${source.firstName == "Ada" ? "yes" : "no"}', "yes"),
]


@pytest.mark.parametrize(("template", "expected"), RENDERED)
def test_rendering(template: str, expected: str) -> None:
    compiled = compile_template(template, context=USERNAME)
    assert compiled.result_type is Type.STRING
    assert compiled.evaluate(FACTS) == expected


ERRORS = [
    ("${source.login", "unterminated ${ at column 1; close it with }"),
    ("ab${}", "empty ${} at column 3"),
    ("x ${source.login +}", "the expression ends too early at column 19"),
    ("${x}", "unknown name x at column 3"),
    (
        "${user.login}",
        "user attributes are not available in a username template at column 3; write source.login",
    ),
    ("ab\n  ${source.a ++}", "unexpected '+' at line 2, column 15"),
    (
        "${String.toLower(source.login)}",
        "unknown function String.toLower at column 3; did you mean String.toLowerCase?",
    ),
    ('${isMemberOfGroupName("x")}', "isMemberOfGroupName is not allowed in a username template"),
    ('${"abc}', "unterminated ${"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_errors_name_the_position_in_the_template(template: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(template, context=USERNAME)
    assert message in str(caught.value)


def test_strict_templates_refuse_empty_parts() -> None:
    strict = compile_template(
        "${source.nickName}@${source.login}", context=USERNAME, allow_empty_parts=False
    )
    with pytest.raises(EvaluationError, match=r"\$\{source.nickName\} is empty at column 3"):
        strict.evaluate(FACTS)
    with pytest.raises(EvaluationError, match=r"is empty"):
        strict.evaluate(Facts(user={"login": "a", "nickName": ""}))
    assert strict.evaluate(Facts(user={"login": "a", "nickName": "b"})) == "b@a"
    with pytest.raises(ExpressionError, match=r"a template part cannot be an array"):
        compile_template("${{1}}", context=USERNAME, allow_empty_parts=False)


def test_schema_and_references() -> None:
    context = Context.username({"login": Type.STRING})
    with pytest.raises(ExpressionError, match=r"unknown attribute source.logn at column 3; did"):
        compile_template("${source.logn}", context=context)
    compiled = compile_template("${source.login}", context=context)
    assert compiled.attributes_referenced == {("user", "login")}
    assert compiled.source == "${source.login}"
