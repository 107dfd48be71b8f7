"""Inbound SCIM (Headwater as a service provider): the wire models, how a SCIM user becomes an
Okta profile, PATCH in every client's dialect, and what the discovery endpoints publish.

The wire format is ``scim2-models``'. A source's resource is validated leniently (Entra sends
``"False"`` for a boolean and a ``manager`` without ``$ref``; Okta sends ``id`` inside a replace
value) under one :data:`POLICY`, then stored as the source wrote it (``source_document``); the
attributes Okta's profile has are copied into the profile, where group rules, assignments and
the engine see them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from scim2_models import AuthenticationScheme as Scheme
from scim2_models import (
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Patch,
    PatchOp,
    ResourceType,
    Schema,
    SchemaExtension,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    User,
)

__all__ = [
    "CORE_GROUP",
    "CORE_USER",
    "ENTERPRISE_USER",
    "MASTERED_USER_ATTRIBUTES",
    "MAX_PATCH_OPERATIONS",
    "MAX_RESULTS",
    "POLICY",
    "UserModel",
    "apply_patch",
    "group_schema",
    "parse_group",
    "parse_user",
    "profile_of",
    "resource_types",
    "service_provider_config",
    "stored",
    "user_schemas",
]

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

UserModel = User[EnterpriseUser]

#: What a source's payloads may do beyond the strict reading of RFC 7643/7644: unknown
#: attributes are dropped, a ``remove`` may select by ``value`` and a filtered ``replace`` may
#: create its entry (both as Entra sends them).
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

#: Bounds: operations in one PATCH, resources in one page.
MAX_PATCH_OPERATIONS = 100
MAX_RESULTS = 1000
#: Attributes the stored document never keeps (the server's own, or never returned).
_NOT_STORED = ("id", "meta", "schemas", "password", "groups")

#: Okta profile attributes a source writes, and so masters.
MASTERED_USER_ATTRIBUTES = frozenset(
    {
        "login",
        "email",
        "firstName",
        "lastName",
        "middleName",
        "honorificPrefix",
        "honorificSuffix",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "mobilePhone",
        "primaryPhone",
        "streetAddress",
        "city",
        "state",
        "zipCode",
        "countryCode",
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "managerId",
        "manager",
    }
)


class InvalidResource(ValueError):
    """A payload that is not a resource of its type; ``errors`` are pydantic's."""

    def __init__(self, errors: ValidationError | str) -> None:
        self.errors = errors
        super().__init__(str(errors))


def _without_server_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in _NOT_STORED}


def parse_user(body: Any) -> UserModel:
    """A user payload (POST or PUT), validated leniently; raises InvalidResource."""
    if not isinstance(body, Mapping):
        raise InvalidResource("the body must be a JSON object")
    try:
        user = UserModel.model_validate(
            {"schemas": [CORE_USER], **_without_server_attributes(body)}, scim_policy=POLICY
        )
    except ValidationError as exc:
        raise InvalidResource(exc) from exc
    if not user.user_name:
        raise InvalidResource("userName is required")
    return user


def parse_group(body: Any) -> Group:
    if not isinstance(body, Mapping):
        raise InvalidResource("the body must be a JSON object")
    try:
        group = Group.model_validate(
            {"schemas": [CORE_GROUP], **_without_server_attributes(body)}, scim_policy=POLICY
        )
    except ValidationError as exc:
        raise InvalidResource(exc) from exc
    if not group.display_name:
        raise InvalidResource("displayName is required")
    return group


def stored(resource: UserModel | Group) -> dict[str, Any]:
    """The document kept for a resource: what the source wrote, minus the server's attributes
    (and, for groups, the members, which are memberships)."""
    document = resource.model_dump(scim_policy=POLICY)
    kept = _without_server_attributes(document)
    kept.pop("members", None)
    return kept


def apply_patch(resource: Any, body: Any) -> bool:
    """Apply a PatchOp request to ``resource`` in place (all or nothing); True if it changed.

    Operation names are case-insensitive and values are coerced to their attribute's type
    (Entra's ``"Replace"`` and ``"False"``); a path-less replace may carry dotted or URN keys
    and the resource's own ``id`` (Okta). Raises InvalidResource or a ``SCIMException``."""
    if not isinstance(body, Mapping):
        raise InvalidResource("the body must be a PatchOp object")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise InvalidResource("Operations: a list of 1 to 100 operations is required")
    if len(operations) > MAX_PATCH_OPERATIONS:
        raise InvalidResource(f"Operations: at most {MAX_PATCH_OPERATIONS} operations")
    cleaned = [_without_own_id(operation) for operation in operations]
    message = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": cleaned}
    try:
        patch = PatchOp[type(resource)].model_validate(  # type: ignore[misc]
            message, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY
        )
        with POLICY:
            return bool(patch.patch(resource))
    except ValidationError as exc:
        raise InvalidResource(exc) from exc


def _without_own_id(operation: Any) -> Any:
    """Okta's path-less replace repeats the resource's ``id``: a read-only attribute, dropped."""
    if isinstance(operation, Mapping) and isinstance(operation.get("value"), Mapping):
        value = {k: v for k, v in operation["value"].items() if k not in ("id", "meta", "schemas")}
        return {**operation, "value": value}
    return operation


# --- SCIM user -> Okta profile ----------------------------------------------------------------


def _first(items: list[Any] | None, *, kind: str | None = None) -> Any:
    """The primary item of a multi-valued attribute (of ``kind`` if given), else the first."""
    candidates = [
        item
        for item in items or []
        if kind is None or (getattr(item, "type", None) or "").lower() == kind
    ]
    for item in candidates:
        if getattr(item, "primary", False):
            return item
    return candidates[0] if candidates else None


def profile_of(user: UserModel) -> dict[str, Any]:
    """The Okta profile attributes a SCIM user sets (the mastered ones; None: not set)."""
    name = user.name
    email = _first(user.emails)
    mobile = _first(user.phone_numbers, kind="mobile")
    phone = _first([p for p in user.phone_numbers or [] if p is not mobile])
    address = _first(user.addresses)
    enterprise = user[EnterpriseUser]
    manager = enterprise.manager if enterprise is not None else None
    country = getattr(address, "country", None)
    profile: dict[str, Any] = {
        "login": user.user_name,
        "email": email.value if email is not None else None,
        "firstName": name.given_name if name else None,
        "lastName": name.family_name if name else None,
        "middleName": name.middle_name if name else None,
        "honorificPrefix": name.honorific_prefix if name else None,
        "honorificSuffix": name.honorific_suffix if name else None,
        "displayName": user.display_name,
        "nickName": user.nick_name,
        "profileUrl": str(user.profile_url) if user.profile_url else None,
        "title": user.title,
        "userType": user.user_type,
        "preferredLanguage": user.preferred_language,
        "locale": user.locale,
        "timezone": user.timezone,
        "mobilePhone": mobile.value if mobile is not None else None,
        "primaryPhone": phone.value if phone is not None else None,
        "streetAddress": getattr(address, "street_address", None),
        "city": getattr(address, "locality", None),
        "state": getattr(address, "region", None),
        "zipCode": getattr(address, "postal_code", None),
        # RFC 7643 §4.1.2: ISO 3166-1 alpha-2; anything else stays in the SCIM document only.
        "countryCode": country if isinstance(country, str) and len(country) == 2 else None,
        "employeeNumber": enterprise.employee_number if enterprise else None,
        "costCenter": enterprise.cost_center if enterprise else None,
        "organization": enterprise.organization if enterprise else None,
        "division": enterprise.division if enterprise else None,
        "department": enterprise.department if enterprise else None,
        "managerId": manager.value if manager is not None else None,
        "manager": manager.display_name if manager is not None else None,
    }
    return {key: value for key, value in profile.items() if value is not None}


# --- Discovery --------------------------------------------------------------------------------


def service_provider_config(*, bulk: bool, max_operations: int, max_payload: int) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=bulk, max_operations=max_operations, max_payload_size=max_payload),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            Scheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A token issued to one inbound source (headwater sources token).",
                primary=True,
            )
        ],
    )
    return _dump(config)


def _dump(model: Any) -> dict[str, Any]:
    document: dict[str, Any] = model.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return document


def _attributes(schema: Schema) -> list[dict[str, Any]]:
    dumped: list[dict[str, Any]] = schema.model_dump()["attributes"]
    return dumped


def user_schemas() -> list[dict[str, Any]]:
    """The core user schema as Headwater serves it, and the enterprise extension.

    ``name.givenName``, ``name.familyName`` and ``emails`` are required (an Okta profile needs
    a first name, a last name and an email), and so is ``active`` (every user has a status;
    a payload without it means true); ``password`` and ``groups`` are not served."""
    core = User.to_schema()
    attributes = [a for a in _attributes(core) if a["name"] not in ("password", "groups")]
    for attribute in attributes:
        if attribute["name"] in ("name", "emails", "active"):
            attribute["required"] = True
        for sub in attribute.get("subAttributes") or []:
            if (attribute["name"], sub["name"]) in (
                ("name", "givenName"),
                ("name", "familyName"),
                ("emails", "value"),
            ):
                sub["required"] = True
    user = Schema.model_validate({**core.model_dump(), "attributes": attributes})
    return [_schema_document(user), _schema_document(EnterpriseUser.to_schema())]


def group_schema() -> dict[str, Any]:
    core = Group.to_schema()
    attributes = _attributes(core)
    for attribute in attributes:
        if attribute["name"] == "members":
            # Members are directory users; nested groups are not kept, and ``display`` is
            # not returned (Headwater does not store it).
            attribute["subAttributes"] = [
                {**sub, "referenceTypes": ["User"]} if sub["name"] == "$ref" else sub
                for sub in attribute.get("subAttributes") or []
                if sub["name"] != "display"
            ]
    return _schema_document(Schema.model_validate({**core.model_dump(), "attributes": attributes}))


def _schema_document(schema: Schema) -> dict[str, Any]:
    document = schema.model_dump()
    document["schemas"] = ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
    return document


def resource_types() -> list[dict[str, Any]]:
    user = ResourceType(
        id="User",
        name="User",
        endpoint="/Users",
        description="Directory people",
        schema_=CORE_USER,
        schema_extensions=[SchemaExtension(schema_=ENTERPRISE_USER, required=False)],
    )
    group = ResourceType(
        id="Group", name="Group", endpoint="/Groups", description="Groups", schema_=CORE_GROUP
    )
    return [_dump(user), _dump(group)]
