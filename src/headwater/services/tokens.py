"""SSWS API tokens: 160 random bits shown once, stored as SHA-256, revocable, last use kept;
each with a role (``headwater.domain.access``) and, when asked, an expiry.

A fast hash is right here: the token is random, not a password, so there is nothing to
brute-force, and a slow hash would cost every API call.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.db.lookup import Lookup
from headwater.domain.access import Role
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest, NotFound, Unauthenticated
from headwater.services.access import validated_grant

__all__ = [
    "MAX_LIFETIME",
    "TokenRow",
    "authenticate",
    "authenticate_row",
    "create",
    "hash_token",
    "list_tokens",
    "needs_touch",
    "parse_lifetime",
    "revoke",
    "touch",
]

#: Only refresh ``last_used`` this often, so reads do not become writes on every request.
LAST_USED_GRANULARITY = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: Bounds of ``--expires-in``.
MIN_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(days=3650)
_LIFETIME = re.compile(r"^\s*(\d{1,7})\s*([dh])\s*$")


def parse_lifetime(text: str) -> timedelta:
    """``90d`` or ``12h``, from an hour to ten years."""
    match = _LIFETIME.match(text.lower())
    if match is None:
        raise InvalidRequest(causes=["expires-in: a number of days or hours, such as 90d or 12h"])
    amount = int(match[1])
    lifetime = timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount)
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise InvalidRequest(causes=["expires-in: from 1h to 3650d"])
    return lifetime


def create(
    session: Session,
    name: str,
    actor: Actor,
    *,
    role: str = Role.SUPER_ADMIN,
    app_ids: Sequence[str] = (),
    group_ids: Sequence[str] = (),
    lifetime: timedelta | None = None,
) -> tuple[t.ApiToken, str]:
    """Create a token; returns the row and the plaintext, which is never stored."""
    name = name.strip()
    if not name or len(name) > 255 or check_text(name):
        raise InvalidRequest(causes=["name: must be 1 to 255 characters of text"])
    if lifetime is not None and not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise InvalidRequest(causes=["expires-in: from 1h to 3650d"])
    grant = validated_grant(session, role, app_ids, group_ids)
    plaintext = "00" + secrets.token_urlsafe(30)
    now = clock.utcnow()
    row = t.ApiToken(
        id=ids.new_id("00T"),
        name=name,
        token_hash=hash_token(plaintext),
        token_prefix=plaintext[:6],
        created=now,
        last_updated=now,
        expires_at=now + lifetime if lifetime is not None else None,
        role=grant.role.value,
        app_ids=sorted(grant.app_ids),
        group_ids=sorted(grant.group_ids),
    )
    session.add(row)
    events.record(
        session,
        "system.api_token.create",
        f"Create API token {name} ({grant.describe()})",
        actor=actor,
        targets=[Target(row.id, "Token", name, name)],
    )
    return row, plaintext


def authenticate(session: Session, plaintext: str, *, refresh: bool = True) -> t.ApiToken:
    """The token row for ``plaintext``; raises Unauthenticated for unknown or expired tokens.

    With ``refresh``, ``last_used`` is updated when it is older than the granularity."""
    row = session.execute(
        select(t.ApiToken).where(t.ApiToken.token_hash == hash_token(plaintext))
    ).scalar_one_or_none()
    now = clock.utcnow()
    if row is None or (row.expires_at is not None and clock.as_utc(row.expires_at) <= now):
        raise Unauthenticated()
    if refresh and needs_touch(row):
        touch(session, row.id)
        row.last_used = now
    return row


class TokenRow(NamedTuple):
    """What checking a request's token needs of its row, read without the ORM."""

    id: str
    name: str
    role: str
    app_ids: list[Any] | None
    group_ids: list[Any] | None
    expires_at: datetime | None
    last_used: datetime | None


#: Every API request runs it: built once, run on a pooled DB-API connection (decision 54); the
#: digest is its one parameter.
_TOKEN_ROW = Lookup(
    select(
        t.ApiToken.id,
        t.ApiToken.name,
        t.ApiToken.role,
        t.ApiToken.app_ids,
        t.ApiToken.group_ids,
        t.ApiToken.expires_at,
        t.ApiToken.last_used,
    ).where(t.ApiToken.token_hash == bindparam("token_hash"))
)


def authenticate_row(engine: Engine, plaintext: str) -> TokenRow:
    """``authenticate`` as one ``SELECT`` outside any transaction (every API request runs it):
    the token's row, or Unauthenticated for an unknown or expired token. ``last_used`` is left
    to the caller."""
    found = _TOKEN_ROW.one_or_none(engine, {"token_hash": hash_token(plaintext)})
    row = TokenRow(*found) if found is not None else None
    if row is None or (
        row.expires_at is not None and clock.as_utc(row.expires_at) <= clock.utcnow()
    ):
        raise Unauthenticated()
    return row


def needs_touch(row: t.ApiToken | TokenRow) -> bool:
    """``last_used`` is older than its granularity (or was never set)."""
    return (
        row.last_used is None
        or clock.as_utc(row.last_used) + LAST_USED_GRANULARITY < clock.utcnow()
    )


def touch(session: Session, token_id: str) -> None:
    session.execute(
        update(t.ApiToken).where(t.ApiToken.id == token_id).values(last_used=clock.utcnow())
    )


def list_tokens(session: Session) -> list[t.ApiToken]:
    return list(session.execute(select(t.ApiToken).order_by(t.ApiToken.id)).scalars())


def find(session: Session, token_id_or_name: str) -> t.ApiToken:
    row = session.get(t.ApiToken, token_id_or_name)
    if row is None:
        row = session.execute(
            select(t.ApiToken).where(t.ApiToken.name == token_id_or_name).order_by(t.ApiToken.id)
        ).scalar()
    if row is None:
        raise NotFound()
    return row


def revoke(session: Session, token_id_or_name: str, actor: Actor) -> t.ApiToken:
    row = find(session, token_id_or_name)
    session.delete(row)
    events.record(
        session,
        "system.api_token.revoke",
        f"Revoke API token {row.name}",
        actor=actor,
        targets=[Target(row.id, "Token", row.name, row.name)],
    )
    return row
