"""``/api/v1/api-tokens``: list, read and revoke SSWS tokens (never their value or hash)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from headwater import clock
from headwater.api.deps import ActorDep, AuthenticatedRoute, DbDep, allow, base_url
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.errors import NotFound
from headwater.services import tokens

__all__ = ["router", "token_json"]

router = APIRouter(tags=["ApiToken"], route_class=AuthenticatedRoute)


def _token_window(row: t.ApiToken) -> str | None:
    """Okta's ISO 8601 lifetime; Headwater tokens without an expiry have none."""
    if row.expires_at is None:
        return None
    days = max(1, (clock.as_utc(row.expires_at) - clock.as_utc(row.created)).days)
    return f"P{days}D"


def token_json(row: t.ApiToken, base: str) -> dict[str, Any]:
    """Okta's ApiToken object. Tokens here belong to no directory user (``userId`` null)."""
    href = f"{base}/api/v1/api-tokens/{row.id}"
    return {
        "id": row.id,
        "name": row.name,
        "userId": None,
        "tokenWindow": _token_window(row),
        "clientName": "Okta API",
        "network": {"connection": "ANYWHERE"},
        "created": clock.format_okta(row.created),
        "lastUpdated": clock.format_okta(row.last_updated),
        "expiresAt": clock.format_okta(row.expires_at),
        "_link": {"self": {"href": href, "hints": {"allow": ["GET", "DELETE"]}}},
    }


def _find(session: Session, token_id: str) -> t.ApiToken:
    """By id only (the service also matches names, which the API does not offer)."""
    row = session.get(t.ApiToken, token_id) if token_id.isalnum() and len(token_id) <= 32 else None
    if row is None:
        raise NotFound()
    return row


@router.get("/api-tokens", dependencies=[allow(P.TOKENS_MANAGE)])
def list_api_tokens(request: Request, db: DbDep) -> JSONResponse:
    base = base_url(request)
    with db.read() as session:
        return JSONResponse([token_json(row, base) for row in tokens.list_tokens(session)])


@router.delete("/api-tokens/current", status_code=204, dependencies=[allow(P.TOKENS_SELF)])
def revoke_current_api_token(db: DbDep, actor: ActorDep) -> Response:
    """Revoke the token this request was made with."""
    with db.transaction() as session:
        tokens.revoke(session, _find(session, actor.id).id, actor)
    return Response(status_code=204)


@router.get("/api-tokens/{token_id}", dependencies=[allow(P.TOKENS_MANAGE)])
def get_api_token(request: Request, db: DbDep, token_id: str) -> JSONResponse:
    with db.read() as session:
        return JSONResponse(token_json(_find(session, token_id), base_url(request)))


@router.delete("/api-tokens/{token_id}", status_code=204, dependencies=[allow(P.TOKENS_MANAGE)])
def revoke_api_token(db: DbDep, actor: ActorDep, token_id: str) -> Response:
    with db.transaction() as session:
        tokens.revoke(session, _find(session, token_id).id, actor)
    return Response(status_code=204)
