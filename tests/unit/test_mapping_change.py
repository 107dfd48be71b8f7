"""Comparing two mappings on what changed only (``MappingChange.differs``) gives exactly the
answer of evaluating both mappings in full, for mapping changes and users drawn at random:
defaults, push statuses, removed properties, failures, CREATE-only values kept as sent,
assignment extras and usernames included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.domain.mapping import MappingError, account_attributes, base_value
from headwater.domain.profile_mapping import (
    ENTERPRISE,
    AppMapping,
    AppSchema,
    CustomAttribute,
    MappingChange,
    Property,
    PushStatus,
)

TEMPLATE = "${source.login}"
ROLE = "urn:example:app:2.0:User"
SCHEMA = AppSchema((CustomAttribute("role", "string", "Role", ROLE),))
LONG = "x" * 120

#: Expressions per attribute: some fail for some users (a number where text is needed, an empty
#: or missing username, one over 100 characters).
_TEXT = (
    None,
    "user.title",
    "String.toUpperCase(user.title)",
    'user.firstName + "-" + user.lastName',
    '""',
    "user.nickName",
)
EXPRESSIONS: dict[str, tuple[str | None, ...]] = {
    "userName": (None, "user.email", "user.nickName", '""', "user.bio", "user.firstName"),
    "title": _TEXT,
    "givenName": _TEXT,
    "displayName": _TEXT,
    "department": (None, "user.department", '"Sales"'),
    "manager": (None,),
    "nickName": _TEXT,
    "costCenter": (None, '"CC-" + user.employeeNumber', "String.toUpperCase(user.title)"),
    "division": (None, '"North"'),
    "role": (None, 'appuser.role != null ? appuser.role : "member"', "user.title"),
}
STATUSES = tuple(PushStatus)


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Property]:
    chosen = draw(st.sets(st.sampled_from(sorted(EXPRESSIONS)), max_size=4))
    result = {}
    for name in sorted(chosen):
        statuses = [s for s in STATUSES if not (name == "userName" and s is PushStatus.DONT_PUSH)]
        result[name] = Property(
            draw(st.sampled_from(EXPRESSIONS[name])), draw(st.sampled_from(statuses))
        )
    return result


@st.composite
def changes(draw: st.DrawFn) -> tuple[AppMapping, AppMapping]:
    """A mapping and the same mapping with a few properties added, changed or removed."""
    before = draw(properties())
    after = dict(before)
    for name, prop in draw(properties()).items():
        after[name] = prop
    for name in draw(st.sets(st.sampled_from(sorted(EXPRESSIONS)), max_size=2)):
        after.pop(name, None)
    return AppMapping(before, SCHEMA), AppMapping(after, SCHEMA)


value = st.one_of(
    st.none(), st.just(""), st.sampled_from(["Ada", "Engineer", "7", LONG]), st.just(5)
)


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    keys = ("login", "firstName", "lastName", "displayName", "email", "title", "nickName")
    profile = {k: draw(value) for k in draw(st.sets(st.sampled_from((*keys, "bio"))))}
    profile.setdefault("login", draw(st.sampled_from(["ada", None])))
    if "bio" in profile:
        profile["bio"] = LONG
    profile["employeeNumber"] = draw(st.sampled_from(["42", None]))
    app_profile: dict[str, Any] = draw(
        st.dictionaries(
            st.sampled_from(["title", "givenName", "displayName", "nickName", "role"]),
            st.one_of(value, st.just({})),
            max_size=3,
        )
    )
    # The enterprise extension, when an assignment gives it, is an object.
    enterprise = draw(st.sampled_from([None, {}, {"costCenter": "CC-1"}, {"division": "S"}]))
    if enterprise is not None:
        app_profile[ENTERPRISE] = enterprise
    pushed = draw(
        st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "userName": value,
                    "title": value,
                    "givenName": value,
                    "managerId": st.sampled_from([None, "m0"]),
                    "extra": st.sampled_from(
                        [{}, {"nickName": "nick"}, {ENTERPRISE: {"costCenter": "CC-0"}}]
                    ),
                }
            ),
        )
    )
    return {
        "user_id": "u1",
        "profile": profile,
        "app_profile": app_profile,
        "user_name_template": TEMPLATE,
        "user_name_override": draw(st.sampled_from([None, None, "given", ""])),
        "active": draw(st.booleans()),
        "manager_id": draw(st.sampled_from([None, "m1"])),
        "internal": {"id": "u1", "status": "ACTIVE"},
        "last_pushed": pushed,
    }


def outcome(mapping: AppMapping, user: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        return mapping.attributes(**user), None
    except MappingError as exc:
        return None, str(exc)


@settings(max_examples=600, deadline=None)
@given(change=changes(), user=users())
def test_comparing_what_changed_is_comparing_everything(
    change: tuple[AppMapping, AppMapping], user: dict[str, Any]
) -> None:
    before, after = change
    expected = outcome(before, user) != outcome(after, user)
    assert MappingChange(before, after).differs(**user) == expected
    assert MappingChange(after, before).differs(**user) == expected


@settings(max_examples=200, deadline=None)
@given(user=users())
def test_a_schema_change_compares_everything(user: dict[str, Any]) -> None:
    before = AppMapping({"title": Property("user.nickName", PushStatus.PUSH)}, SCHEMA)
    after = AppMapping(dict(before.properties), AppSchema())
    change = MappingChange(before, after)
    assert change.changed is None
    assert change.differs(**user) == (outcome(before, user) != outcome(after, user))


def test_only_what_changed_is_compared() -> None:
    title = Property("user.title", PushStatus.PUSH)
    before = AppMapping({"title": title, "nickName": Property('"a"', PushStatus.PUSH)})
    after = AppMapping({"title": title, "nickName": Property('"b"', PushStatus.CREATE)})
    assert MappingChange(before, after).changed == ("nickName",)
    assert MappingChange(before, before).changed == ()
    assert not MappingChange(before, AppMapping(dict(before.properties))).reads_manager


@settings(max_examples=300, deadline=None)
@given(user=users())
def test_one_built_in_field_is_the_built_in_mapping_s(user: dict[str, Any]) -> None:
    del user["internal"], user["last_pushed"]
    try:
        built_in = account_attributes(**user)
    except MappingError:
        return
    for field in ("given_name", "family_name", "display_name", "email", "title", "department"):
        got = base_value(field, user["profile"], user["app_profile"], user["manager_id"])
        assert got == getattr(built_in, field), field
    assert base_value("employee_number", user["profile"], {}, None) == built_in.employee_number
    assert base_value("manager_id", {}, {}, user["manager_id"]) == built_in.manager_id
