"""The SCIM User body is built as a plain mapping: it must be the body ``scim2_models`` gives
for the same user, for every combination of present, absent and empty attributes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import Context, EnterpriseUser, Manager, Name, User

from headwater.connectors.scim import USER_SCHEMA, _user_payload
from headwater.domain.downstream import AccountAttributes

_Model = User[EnterpriseUser]


def modelled(attrs: AccountAttributes, context: Context) -> dict[str, Any]:
    """The body as the User model serialises it (the connector's former way)."""
    user = _Model(
        user_name=attrs.user_name,
        external_id=attrs.external_id,
        active=attrs.active,
        display_name=attrs.display_name,
        title=attrs.title,
    )
    if attrs.given_name is not None or attrs.family_name is not None:
        user.name = Name(given_name=attrs.given_name, family_name=attrs.family_name)
    if attrs.employee_number is not None or attrs.department is not None or attrs.manager_id:
        user[EnterpriseUser] = EnterpriseUser(
            employee_number=attrs.employee_number,
            department=attrs.department,
            manager=Manager(value=attrs.manager_id) if attrs.manager_id else None,
        )
    payload: dict[str, Any] = user.model_dump(scim_ctx=context)
    payload["active"] = attrs.active
    if attrs.email is not None:
        payload["emails"] = [{"value": attrs.email, "type": "work", "primary": True}]
    return payload


maybe_text = st.none() | st.just("") | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    user_name=st.text(max_size=12),
    external_id=st.text(max_size=12),
    active=st.booleans(),
    given_name=maybe_text,
    family_name=maybe_text,
    display_name=maybe_text,
    email=maybe_text,
    title=maybe_text,
    department=maybe_text,
    employee_number=maybe_text,
    manager_id=maybe_text,
    context=st.sampled_from(
        [Context.RESOURCE_CREATION_REQUEST, Context.RESOURCE_REPLACEMENT_REQUEST]
    ),
)
def test_the_body_is_the_models(context: Context, **fields: Any) -> None:
    attrs = AccountAttributes(**fields)
    built = _user_payload(attrs)
    assert built == modelled(attrs, context)
    assert list(built) == list(modelled(attrs, context))


def test_extra_attributes_merge_over_the_body() -> None:
    attrs = AccountAttributes(
        user_name="a@example.com",
        external_id="00u1",
        department="R&D",
        extra={
            "nickName": "ace",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "7"},
            "urn:example:params:scim:schemas:extension:acme:2.0:User": {"badge": "42"},
            "id": "forged",
            "password": "never sent",
        },
    )
    assert _user_payload(attrs) == {
        "schemas": [
            USER_SCHEMA,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:example:params:scim:schemas:extension:acme:2.0:User",
        ],
        "externalId": "00u1",
        "userName": "a@example.com",
        "active": True,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "R&D",
            "costCenter": "7",
        },
        "nickName": "ace",
        "urn:example:params:scim:schemas:extension:acme:2.0:User": {"badge": "42"},
    }
