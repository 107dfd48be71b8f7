"""Inbound sources (Headwater extension): ``/api/v1/sources`` and their bearer tokens.

A source is what writes users and groups through ``/scim/v2`` (an HR system, another
directory). Only a super admin creates or deletes one or issues its tokens; a token is shown
once, in the answer that issues it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.services import sources, tokens

__all__ = ["router", "source_json"]

router = APIRouter(tags=["Headwater extension"], route_class=AuthenticatedRoute)


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StrictStr = Field(min_length=1, max_length=100)


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: ``90d`` or ``12h``; none: the token does not expire.
    expiresIn: StrictStr | None = Field(default=None, max_length=20)


def source_json(source: t.Source, base: str) -> dict[str, Any]:
    href = f"{base}/api/v1/sources/{source.id}"
    return {
        "id": source.id,
        "name": source.name,
        "created": clock.format_okta(source.created),
        "lastUpdated": clock.format_okta(source.last_updated),
        "_links": {
            "self": {"href": href},
            "tokens": {"href": f"{href}/tokens"},
            "scim": {"href": f"{base}/scim/v2"},
        },
    }


def token_json(row: t.SourceToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "sourceId": row.source_id,
        "tokenPrefix": row.token_prefix,
        "created": clock.format_okta(row.created),
        "lastUsed": clock.format_okta(row.last_used),
        "expiresAt": clock.format_okta(row.expires_at),
    }


@router.get("/sources", dependencies=[allow(P.SOURCES_READ)])
def list_sources(request: Request, db: DbDep) -> JSONResponse:
    base = base_url(request)
    with db.read() as session:
        return JSONResponse([source_json(s, base) for s in sources.list_sources(session)])


@router.post(
    "/sources",
    openapi_extra=openapi_body(SourceBody),
    dependencies=[allow(P.SOURCES_MANAGE)],
)
def create_source(request: Request, body: BodyDep, db: DbDep, actor: ActorDep) -> JSONResponse:
    """Create a source; then issue it a token (``POST /sources/{id}/tokens``)."""
    spec = parse(SourceBody, body)
    with db.transaction() as session:
        source = sources.create_source(session, actor, spec.name)
        document = source_json(source, base_url(request))
    return JSONResponse(document, status_code=201)


@router.get("/sources/{source_id}", dependencies=[allow(P.SOURCES_READ)])
def get_source(request: Request, db: DbDep, source_id: str) -> JSONResponse:
    with db.read() as session:
        return JSONResponse(source_json(sources.find_source(session, source_id), base_url(request)))


@router.delete("/sources/{source_id}", status_code=204, dependencies=[allow(P.SOURCES_MANAGE)])
def delete_source(db: DbDep, actor: ActorDep, source_id: str) -> Response:
    """Delete a source and its tokens; the users and groups it mastered stay, unmastered."""
    with db.transaction() as session:
        sources.delete_source(session, actor, source_id)
    return Response(status_code=204)


@router.get("/sources/{source_id}/tokens", dependencies=[allow(P.SOURCES_READ)])
def list_source_tokens(db: DbDep, source_id: str) -> JSONResponse:
    """The source's tokens (never their value)."""
    with db.read() as session:
        return JSONResponse([token_json(row) for row in sources.list_tokens(session, source_id)])


@router.post(
    "/sources/{source_id}/tokens",
    openapi_extra=openapi_body(TokenBody, required=False),
    dependencies=[allow(P.SOURCES_MANAGE)],
)
def issue_source_token(body: BodyDep, db: DbDep, actor: ActorDep, source_id: str) -> JSONResponse:
    """Issue a bearer token for ``/scim/v2``; ``token`` is in this answer only."""
    spec = parse(TokenBody, body, required=False)
    lifetime = tokens.parse_lifetime(spec.expiresIn) if spec.expiresIn else None
    with db.transaction() as session:
        row, plaintext = sources.issue_token(session, actor, source_id, lifetime=lifetime)
        document = {**token_json(row), "token": plaintext}
    return JSONResponse(document, status_code=201)


@router.delete(
    "/sources/{source_id}/tokens/{token_id}",
    status_code=204,
    dependencies=[allow(P.SOURCES_MANAGE)],
)
def revoke_source_token(db: DbDep, actor: ActorDep, source_id: str, token_id: str) -> Response:
    with db.transaction() as session:
        sources.revoke_token(session, actor, source_id, token_id)
    return Response(status_code=204)
