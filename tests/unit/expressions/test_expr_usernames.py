"""Username templates through ``domain.mapping``, now on the expression language."""

from __future__ import annotations

import pytest

from headwater.domain.mapping import MappingError, check_user_name_template, render_user_name
from headwater.errors import InvalidRequest

PROFILE = {"login": "Ada.Lovelace@example.com", "email": "ada@example.com", "firstName": "Ada"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${source.login}", "Ada.Lovelace@example.com"),
        ('${fn:substringBefore(source.login,"@")}', "Ada.Lovelace"),
        ("${fn:toLowerCase(source.email)}", "ada@example.com"),
        (
            '${String.toLowerCase(String.substringBefore(source.login, "@"))}@corp',
            "ada.lovelace@corp",
        ),
        ('${source.firstName + "." + String.substring(source.login, 4, 12)}', "Ada.Lovelace"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render_user_name(template, PROFILE) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${source.nickName}", "${source.nickName} is empty"),
        ("x" * 101, "username must be 1 to 100 characters"),
        ('${String.replace(source.login, ".", "")}', "is empty at column 3"),
    ],
)
def test_render_errors(template: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        render_user_name(template, PROFILE)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "must be 1 to 1024 characters"),
        ("${source.login", "unterminated ${ at column 1"),
        ("${user.login}", "user attributes are not available in a username template"),
        ("${x}", "unknown name x"),
        ("${fn:toLower(source.login)}", "did you mean toLowerCase?"),
    ],
)
def test_check_refuses_with_okta_400(template: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_user_name_template(template, "userNameTemplate")
    assert caught.value.summary == "Api validation failed: userNameTemplate"
    assert problem in caught.value.causes[0]
    assert caught.value.causes[0].startswith("userNameTemplate: ")
