"""``/api/v1/meta/schemas/user/default``: the directory's user schema (Okta's shape).

Anyone who may read users may read it; only a super administrator may change it (it decides
what every profile write and every saved expression may hold).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from headwater import clock
from headwater.api.body import openapi_body
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.representations import DEFAULT_USER_TYPE_ID
from headwater.domain.access import Permission as P
from headwater.domain.user_schema import UserSchema, base_json
from headwater.errors import NotFound
from headwater.services import user_schema

__all__ = ["router", "schema_json"]

router = APIRouter(tags=["Schema"], route_class=AuthenticatedRoute)
ONE = "/meta/schemas/user/{schema_id}"


class _Property(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=2000)
    type: str | None = None
    required: bool | None = None
    minLength: int | None = None
    maxLength: int | None = None
    enum: list[str | int] | None = None


class _Custom(BaseModel):
    model_config = ConfigDict(extra="ignore")
    properties: dict[str, _Property | None] = Field(default_factory=dict)


class _Definitions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    custom: _Custom


class UserSchemaIn(BaseModel):
    """Okta's UserSchema; only ``definitions.custom.properties`` is read (``null`` removes)."""

    model_config = ConfigDict(extra="ignore")
    definitions: _Definitions


_DOCUMENTED = openapi_body(UserSchemaIn)


def _check_id(schema_id: str) -> None:
    if schema_id not in ("default", DEFAULT_USER_TYPE_ID):
        raise NotFound()


def schema_json(schema: UserSchema, base: str, last_updated: Any = None) -> dict[str, Any]:
    """Okta's UserSchema: base and custom definitions, the profile made of both."""
    custom = {a.name: a.json_schema() for a in schema.custom}
    href = f"{base}/api/v1/meta/schemas/user/default"
    body: dict[str, Any] = {
        "id": href,
        "$schema": "http://json-schema.org/draft-04/schema#",
        "name": "user",
        "title": "User",
        "type": "object",
        "definitions": {
            "custom": {
                "id": "#custom",
                "type": "object",
                "properties": custom,
                "required": [a.name for a in schema.custom if a.required],
            },
            "base": base_json(),
        },
        "properties": {
            "profile": {"allOf": [{"$ref": "#/definitions/custom"}, {"$ref": "#/definitions/base"}]}
        },
        "_links": {"self": {"href": href, "method": "GET", "rel": "self"}},
    }
    if last_updated is not None:
        body["lastUpdated"] = clock.format_okta(last_updated)
    return body


@router.get(ONE, dependencies=[allow(P.USERS_READ)])
def get_user_schema(request: Request, db: DbDep, schema_id: str) -> dict[str, Any]:
    """The user schema: Okta's base attributes and the custom ones declared here."""
    _check_id(schema_id)
    with db.read() as session:
        schema = user_schema.load(session)
        return schema_json(schema, base_url(request), user_schema.last_updated(session))


@router.post(ONE, openapi_extra=_DOCUMENTED, dependencies=[allow(P.SCHEMA_MANAGE)])
def update_user_schema(
    request: Request, db: DbDep, schema_id: str, body: BodyDep, actor: ActorDep
) -> dict[str, Any]:
    """Add, change or (with ``null``) remove custom attributes. A removal is refused while an
    app's mapping or username template reads the attribute; group rules reading it turn
    INVALID."""
    _check_id(schema_id)
    with db.transaction() as session:
        schema = user_schema.update(session, body, actor)
        return schema_json(schema, base_url(request), user_schema.last_updated(session))
