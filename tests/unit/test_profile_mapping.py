"""An app's attribute mapping: defaults identical to the built-in mapping, overrides, push
statuses, save-time checks and per-user failures."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.domain.expressions import Facts, compile_expression
from headwater.domain.mapping import MappingError, account_attributes
from headwater.domain.profile_mapping import (
    ENTERPRISE,
    AppMapping,
    AppSchema,
    CustomAttribute,
    PushStatus,
    default_expression,
)
from headwater.errors import InvalidRequest

TEMPLATE = "${source.login}"
PROFILE = {
    "login": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "email": "ada@example.com",
    "title": "Engineer",
    "department": "Engineering",
    "employeeNumber": "42",
}
SCHEMA = AppSchema((CustomAttribute("role", "string", "Role", "urn:example:app:2.0:User"),))


def attrs(mapping: AppMapping, profile: dict[str, Any] = PROFILE, **kw: Any) -> Any:
    return mapping.attributes(
        "u1", profile, kw.pop("app_profile", {}), user_name_template=TEMPLATE, **kw
    )


def test_an_unchanged_mapping_is_the_built_in_one() -> None:
    expected = account_attributes("u1", PROFILE, {"title": "Boss"}, user_name_template=TEMPLATE)
    got = AppMapping().attributes("u1", PROFILE, {"title": "Boss"}, user_name_template=TEMPLATE)
    assert got == expected


text = st.one_of(st.none(), st.just(""), st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(first=text, last=text, display=text, title=text)
def test_the_default_expressions_describe_the_built_in_mapping(
    first: str | None, last: str | None, display: str | None, title: str | None
) -> None:
    profile = {"login": "x", "firstName": first, "lastName": last, "displayName": display}
    profile["title"] = title
    built_in = account_attributes("u1", profile, {}, user_name_template=TEMPLATE).as_dict()
    for name, key in (
        ("displayName", "displayName"),
        ("givenName", "givenName"),
        ("title", "title"),
    ):
        source = default_expression(name)
        assert source is not None
        value = compile_expression(source, context=_mapping_context()).evaluate(Facts(user=profile))
        assert (value or None) == built_in[key]


def _mapping_context() -> Any:
    from headwater.domain.expressions import Context

    return Context.mapping()


def test_custom_expressions_enterprise_and_custom_attributes() -> None:
    mapping = AppMapping(schema=SCHEMA).updated(
        {
            "userName": {
                "expression": 'String.substringBefore(user.email, "@")',
                "pushStatus": "PUSH",
            },
            "title": {"expression": 'user.department == "Engineering" ? "Builder" : user.title'},
            "costCenter": {"expression": '"CC-" + user.employeeNumber', "pushStatus": "PUSH"},
            "role": {"expression": 'appuser.role != null ? appuser.role : "member"'},
        }
    )
    got = attrs(mapping)
    assert got.user_name == "ada"
    assert got.title == "Builder"
    assert got.extra == {
        ENTERPRISE: {"costCenter": "CC-42"},
        "urn:example:app:2.0:User": {"role": "member"},
    }
    assert attrs(mapping, app_profile={"role": "admin"}).extra["urn:example:app:2.0:User"] == {
        "role": "admin"
    }


def test_a_mapped_extension_replaces_a_non_object_from_the_assignment() -> None:
    """An assignment profile may give the extension as a plain value; the mapped attribute
    still arrives, in an object, rather than failing the user's evaluation."""
    mapping = AppMapping().updated({"costCenter": {"expression": '"CC-" + user.employeeNumber'}})
    got = attrs(mapping, app_profile={ENTERPRISE: "not an object"})
    assert got.extra == {ENTERPRISE: {"costCenter": "CC-42"}}


def test_push_statuses() -> None:
    mapping = AppMapping().updated(
        {
            "title": {"expression": "user.title", "pushStatus": "DONT_PUSH"},
            "department": {"expression": 'user.department + "!"', "pushStatus": "CREATE"},
        }
    )
    created = attrs(mapping)
    assert created.title is None and created.department == "Engineering!"
    changed = {**PROFILE, "department": "Sales"}
    assert attrs(mapping, changed).department == "Sales!"
    # the account exists: a CREATE-only attribute keeps what was sent at creation
    assert attrs(mapping, changed, last_pushed=created.as_dict()).department == "Engineering!"


def test_a_failing_expression_fails_this_user_only() -> None:
    mapping = AppMapping().updated({"title": {"expression": "String.toUpperCase(user.title)"}})
    assert attrs(mapping).title == "ENGINEER"
    with pytest.raises(MappingError, match=r"title: .*column 1"):
        attrs(mapping, {**PROFILE, "title": 7})


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        (
            {"title": {"expression": "String.toLower(user.title)"}},
            "did you mean String.toLowerCase",
        ),
        ({"title": {"expression": "user.title +"}}, "properties.title.expression: .*column"),
        ({"title": {"expression": "1 == 1"}}, "must give a string"),
        ({"nope": {"expression": "user.title"}}, "unknown attribute 'nope'"),
        ({"title": {"expression": "user.title", "pushStatus": "SOMETIMES"}}, "PUSH, CREATE"),
        ({"title": {"expression": "x" * 2000}}, "1 to 1024"),
        ({"costCenter": {"pushStatus": "PUSH"}}, "is required"),
        ({"manager": {"expression": "user.login"}}, "downstream id"),
        ({"userName": {"pushStatus": "DONT_PUSH"}}, "needs a userName"),
        ({"title": "user.title"}, "must be an object"),
        ({"title": {"expression": "user.title", "extra": 1}}, "unknown field"),
    ],
)
def test_refused_when_saved(changes: dict[str, Any], cause: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        AppMapping().updated(changes)
    assert any(re.search(cause, c) for c in caught.value.causes), caught.value.causes


def test_the_number_of_properties_is_bounded() -> None:
    with pytest.raises(InvalidRequest) as caught:
        AppMapping().updated(
            {n: {"expression": "user.title"} for n in ("title", "nickName", "locale")},
            max_properties=2,
        )
    assert caught.value.causes == ["properties: at most 2 attributes may be mapped"]


def test_null_resets_and_round_trip() -> None:
    mapping = AppMapping(schema=SCHEMA).updated({"role": {"expression": '"x"'}})
    again = AppMapping.from_json(mapping.to_json(), SCHEMA)
    assert again == mapping
    assert again.updated({"role": None}).is_default
    assert mapping.effective()["role"] == ('"x"', PushStatus.PUSH)
