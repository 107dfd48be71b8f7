"""Examples from Okta's Expression Language reference, with the outputs it gives."""

from __future__ import annotations

import pytest

from headwater.domain.expressions import Context, Facts, Type, Value, compile_expression

WINSTON = Facts(
    user={
        "firstName": "Winston",
        "lastName": "Churchill",
        "email": "winston.churchill@gmail.com",
        "login": "winston.churchill@gmail.com",
        "city": "San Francisco",
        "salary": 1_200_000,
        "isContractor": False,
        "department": "Sales Operations",
        "middleInitial": "",
        "employeeNumber": "",
        "nonEmployeeNumber": "N-42",
    }
)

EXAMPLES: list[tuple[str, Value]] = [
    ("user.firstName", "Winston"),
    ("user.firstName + user.lastName", "WinstonChurchill"),
    ('user.firstName + "." + user.lastName', "Winston.Churchill"),
    ("substring(user.firstName, 0, 1) + user.lastName", "WChurchill"),
    ("substring(user.firstName, 0, 1) + substring(user.lastName, 0, 6)", "WChurch"),
    (
        'toLowerCase(substring( user.firstName, 0, 1)) + "." + toLowerCase(user.lastName)',
        "w.churchill",
    ),
    (
        'toUpperCase(substringBefore( substringAfter(user.email, "@"), ".")) + "\\"'
        ' + substringBefore( user.email, "@")',
        "GMAIL\\winston.churchill",
    ),
    (
        '"XDOMAIN\\" + toLowerCase(substring( user.firstName, 0, 1)) + toLowerCase(user.lastName)',
        "XDOMAIN\\wchurchill",
    ),
    (
        'user.firstName + " " + (String.len(user.middleInitial) == 0 ? "" : '
        '(String.substring(user.middleInitial, 0, 1) + ". ")) + user.lastName',
        "Winston Churchill",
    ),
    (
        'user.employeeNumber != "" AND user.employeeNumber != null ? user.employeeNumber'
        " : user.nonEmployeeNumber",
        "N-42",
    ),
    ('String.stringContains(user.department, "Sales")', True),
    ('user.city == "San Francisco"', True),
    ("user.salary >= 1000000", True),
    ("!user.isContractor", True),
    ("user.salary > 1000000 AND !user.isContractor", True),
    ("user.employeeNumber == null", False),
    ('user.employeeNumber == ""', True),
    (
        'String.stringContains(user.email, "@") ? String.substringBefore(user.email, "@")'
        " : user.email",
        "winston.churchill",
    ),
    ('String.toLowerCase(String.substringBefore(user.login, "@"))', "winston.churchill"),
    ("user.groupCode == 123 ? 'Sales' : 'Other'", "Other"),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_okta_example(text: str, expected: Value) -> None:
    assert compile_expression(text, context=Context.mapping()).evaluate(WINSTON) == expected


RULES = [
    'String.stringContains(user.department, "Sales")',
    'user.city == "San Francisco"',
    "user.salary >= 1000000",
    "!user.isContractor",
    "user.salary > 1000000 AND !user.isContractor",
    'user.getInternalProperty("status") == "ACTIVE"',
]


@pytest.mark.parametrize("text", RULES)
def test_okta_group_rule_samples_are_boolean_rules(text: str) -> None:
    rule = compile_expression(text, context=Context.group_rule(), expect=Type.BOOLEAN)
    assert rule.result_type is Type.BOOLEAN
    assert isinstance(rule.test(WINSTON), bool)
