"""Inbound sources (an HR system, another directory) and their bearer tokens.

A source writes users and groups through ``/scim/v2`` with its own token, and masters what it
creates: the attributes it writes change only through it (:func:`check_user_change`,
:func:`check_group_change`), and the system log names it as the actor. Tokens are random (160
bits), shown once and stored as SHA-256, like SSWS API tokens (``services.tokens``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.inbound import MASTERED_USER_ATTRIBUTES
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest, NotFound, Unauthenticated
from headwater.services.tokens import LAST_USED_GRANULARITY, MAX_LIFETIME, MIN_LIFETIME, hash_token

__all__ = [
    "ACTOR_TYPE",
    "MAX_SOURCES",
    "actor_of",
    "authenticate",
    "check_group_change",
    "check_user_change",
    "create_source",
    "delete_source",
    "find_source",
    "issue_token",
    "list_sources",
    "list_tokens",
    "revoke_token",
]

#: The system log's actor type for changes a source makes.
ACTOR_TYPE = "Source"
MAX_SOURCES = 100
MAX_TOKENS_PER_SOURCE = 20
NAME_TAKEN = "name: A source with this name already exists"


def actor_of(source: t.Source) -> Actor:
    return Actor(id=source.id, type=ACTOR_TYPE, alternate_id=source.name, display_name=source.name)


def _target(source: t.Source) -> Target:
    return Target(source.id, "Source", source.name, source.name)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(
            "Api validation failed: name", ["name: The field cannot be left blank"]
        )
    clean = name.strip()
    if len(clean) > 100 or check_text(clean):
        cause = "name: must be 1 to 100 characters of text"
        raise InvalidRequest("Api validation failed: name", [cause])
    return clean


def create_source(session: Session, actor: Actor, name: object) -> t.Source:
    clean = _check_name(name)
    if session.execute(select(func.count()).select_from(t.Source)).scalar_one() >= MAX_SOURCES:
        cause = f"name: at most {MAX_SOURCES} sources"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    taken = session.execute(select(t.Source.id).where(t.Source.name_lower == clean.lower())).first()
    if taken is not None:
        raise InvalidRequest("Api validation failed: " + NAME_TAKEN, [NAME_TAKEN])
    now = clock.utcnow()
    source = t.Source(
        id=ids.new_id("0sr"), name=clean, name_lower=clean.lower(), created=now, last_updated=now
    )
    session.add(source)
    session.flush()
    events.record(
        session,
        "app.headwater.source.create",
        f"Create inbound source {clean}",
        actor=actor,
        targets=[_target(source)],
    )
    return source


def list_sources(session: Session) -> list[t.Source]:
    return list(session.execute(select(t.Source).order_by(t.Source.id)).scalars())


def find_source(session: Session, key: str) -> t.Source:
    """By id, else by name (case-insensitively)."""
    if not key or len(key) > 255 or check_text(key):
        raise NotFound()
    source = session.get(t.Source, key) if len(key) <= 32 else None
    if source is None:
        source = session.execute(
            select(t.Source).where(t.Source.name_lower == key.lower())
        ).scalar_one_or_none()
    if source is None:
        raise NotFound()
    return source


def delete_source(session: Session, actor: Actor, key: str) -> None:
    """Delete a source and its tokens; the users and groups it mastered stay, unmastered."""
    source = find_source(session, key)
    for model in (t.User, t.Group):
        session.execute(
            update(model)
            .where(model.source_id == source.id)
            .values(source_id=None)
            .execution_options(synchronize_session=False)
        )
    events.record(
        session,
        "app.headwater.source.delete",
        f"Delete inbound source {source.name}",
        actor=actor,
        targets=[_target(source)],
    )
    session.delete(source)
    session.flush()


def issue_token(
    session: Session, actor: Actor, key: str, *, lifetime: timedelta | None = None
) -> tuple[t.SourceToken, str]:
    """A new bearer token for the source; returns the row and the plaintext (never stored)."""
    source = find_source(session, key)
    if lifetime is not None and not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise InvalidRequest("Api validation failed: expiresIn", ["expiresIn: from 1h to 3650d"])
    count = session.execute(
        select(func.count()).where(t.SourceToken.source_id == source.id)
    ).scalar_one()
    if count >= MAX_TOKENS_PER_SOURCE:
        cause = f"tokens: at most {MAX_TOKENS_PER_SOURCE} per source; revoke one first"
        raise InvalidRequest("Api validation failed: " + cause, [cause])
    plaintext = "hws" + secrets.token_urlsafe(30)
    now = clock.utcnow()
    row = t.SourceToken(
        id=ids.new_id("0st"),
        source_id=source.id,
        token_hash=hash_token(plaintext),
        token_prefix=plaintext[:7],
        created=now,
        last_used=None,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    session.add(row)
    session.flush()
    events.record(
        session,
        "app.headwater.source.token.create",
        f"Issue a token for inbound source {source.name}",
        actor=actor,
        targets=[_target(source), Target(row.id, "Token", row.token_prefix, source.name)],
    )
    return row, plaintext


def list_tokens(session: Session, key: str) -> list[t.SourceToken]:
    source = find_source(session, key)
    query = select(t.SourceToken).where(t.SourceToken.source_id == source.id)
    return list(session.execute(query.order_by(t.SourceToken.id)).scalars())


def revoke_token(session: Session, actor: Actor, key: str, token_id: str) -> None:
    source = find_source(session, key)
    row = session.get(t.SourceToken, token_id) if 0 < len(token_id) <= 32 else None
    if row is None or row.source_id != source.id:
        raise NotFound()
    session.delete(row)
    events.record(
        session,
        "app.headwater.source.token.revoke",
        f"Revoke a token of inbound source {source.name}",
        actor=actor,
        targets=[_target(source), Target(row.id, "Token", row.token_prefix, source.name)],
    )
    session.flush()


def authenticate(session: Session, plaintext: str) -> tuple[t.Source, bool]:
    """The source a bearer token belongs to, and whether its ``last_used`` is stale; raises
    Unauthenticated for unknown or expired tokens."""
    if not plaintext or len(plaintext) > 200:
        raise Unauthenticated()
    row = session.execute(
        select(t.SourceToken).where(t.SourceToken.token_hash == hash_token(plaintext))
    ).scalar_one_or_none()
    now = clock.utcnow()
    if row is None or (row.expires_at is not None and clock.as_utc(row.expires_at) <= now):
        raise Unauthenticated()
    source = session.get(t.Source, row.source_id)
    if source is None:
        raise Unauthenticated()
    stale = row.last_used is None or clock.as_utc(row.last_used) + LAST_USED_GRANULARITY < now
    return source, stale


def touch(session: Session, plaintext: str) -> None:
    session.execute(
        update(t.SourceToken)
        .where(t.SourceToken.token_hash == hash_token(plaintext))
        .values(last_used=clock.utcnow())
    )


# --- Mastery ----------------------------------------------------------------------------------


def _refuse(session: Session, source_id: str, what: Iterable[str]) -> InvalidRequest:
    source = session.get(t.Source, source_id)
    name = source.name if source is not None else source_id
    causes = [f"{item}: mastered by source {name}; change it there" for item in what]
    return InvalidRequest("Api validation failed: " + causes[0], causes)


def check_user_change(session: Session, actor: Actor, user: t.User, changed: Iterable[str]) -> None:
    """Refuse (400, naming the source) a change of attributes the user's source masters,
    unless the source itself makes it."""
    if user.source_id is None or actor.id == user.source_id:
        return
    mastered = sorted(name for name in changed if name in MASTERED_USER_ATTRIBUTES)
    if mastered:
        raise _refuse(session, user.source_id, (f"profile.{name}" for name in mastered))


def check_group_change(session: Session, actor: Actor, group: t.Group, what: str) -> None:
    """Refuse a change of a group its source masters (profile, members), unless the source
    itself makes it."""
    if group.source_id is None or actor.id == group.source_id:
        return
    raise _refuse(session, group.source_id, [what])
