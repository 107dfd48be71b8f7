"""Console administrators and their sessions.

Passwords are hashed with argon2. Checking one is split so that no transaction is open while
argon2 runs: :func:`candidate` reads the account, :func:`verify` hashes (always exactly once,
against a dummy hash when there is no such account, so an unknown or throttled username costs
the same time as a wrong password), and :func:`start_session` writes the session.

Sessions live in ``console_sessions``: the cookie carries a random secret, the table only its
SHA-256. A session ends on sign-out, when the admin's password changes, when the admin is
removed, after ``idle`` without a request and at the latest ``lifetime`` after sign-in.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Actor, Target
from headwater.domain.access import Grant, Role
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest, NotFound
from headwater.services.access import grant_of, validated_grant

__all__ = [
    "Candidate",
    "SessionInfo",
    "actor_of",
    "candidate",
    "create",
    "delete_admin",
    "end_session",
    "find",
    "list_admins",
    "purge_sessions",
    "record_sign_in",
    "resume_session",
    "set_password",
    "start_session",
    "touch_session",
    "verify",
]

_hasher = PasswordHasher()
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: ``last_seen`` is refreshed at most this often, so pages do not all become writes.
LAST_SEEN_GRANULARITY = timedelta(seconds=60)


@functools.cache
def _dummy_hash() -> str:
    """A hash no password is checked against for real (made once per process)."""
    return _hasher.hash(secrets.token_urlsafe(32))


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or check_text(password):
        cause = f"password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters of text"
        raise InvalidRequest("Api validation failed: " + cause, [cause])


def _target(admin: t.Admin) -> Target:
    return Target(admin.id, "User", admin.username, admin.username)


def actor_of(admin_id: str, username: str) -> Actor:
    """Console changes are attributed to the admin, as Okta attributes them to a user."""
    return Actor(id=admin_id, type="User", alternate_id=username, display_name=username)


# --- Accounts ------------------------------------------------------------------------------------


def create(
    session: Session,
    username: str,
    password: str,
    *,
    role: str = Role.SUPER_ADMIN,
    app_ids: Sequence[str] = (),
    group_ids: Sequence[str] = (),
    actor: Actor = SYSTEM,
) -> t.Admin:
    username = username.strip()
    if not username or len(username) > 255 or check_text(username):
        raise InvalidRequest(causes=["username: must be 1 to 255 characters of text"])
    _check_password(password)
    if session.execute(select(t.Admin).where(t.Admin.username == username)).first():
        raise InvalidRequest(causes=["username: an admin with this username already exists"])
    grant = validated_grant(session, role, app_ids, group_ids)
    admin = t.Admin(
        id=ids.new_id("adm"),
        username=username,
        password_hash=_hasher.hash(password),
        created=clock.utcnow(),
        role=grant.role.value,
        app_ids=sorted(grant.app_ids),
        group_ids=sorted(grant.group_ids),
    )
    session.add(admin)
    events.record(
        session,
        "user.account.privilege.grant",
        f"Create console admin {username} ({grant.describe()})",
        actor=actor,
        targets=[_target(admin)],
    )
    return admin


def find(session: Session, username_or_id: str) -> t.Admin:
    admin = (
        session.get(t.Admin, username_or_id)
        or session.execute(
            select(t.Admin).where(t.Admin.username == username_or_id.strip())
        ).scalar_one_or_none()
    )
    if admin is None:
        raise NotFound()
    return admin


def list_admins(session: Session) -> list[t.Admin]:
    return list(session.execute(select(t.Admin).order_by(t.Admin.username)).scalars())


def set_password(
    session: Session, username_or_id: str, password: str, *, actor: Actor = SYSTEM
) -> t.Admin:
    """A new password ends every session of the admin (a stolen cookie stops working)."""
    _check_password(password)
    admin = find(session, username_or_id)
    admin.password_hash = _hasher.hash(password)
    session.execute(delete(t.ConsoleSession).where(t.ConsoleSession.admin_id == admin.id))
    events.record(
        session,
        "user.account.update_password",
        f"Change the password of console admin {admin.username}",
        actor=actor,
        targets=[_target(admin)],
    )
    return admin


def delete_admin(session: Session, username_or_id: str, *, actor: Actor = SYSTEM) -> t.Admin:
    """Remove the admin and end their sessions."""
    admin = find(session, username_or_id)
    session.execute(delete(t.ConsoleSession).where(t.ConsoleSession.admin_id == admin.id))
    events.record(
        session,
        "user.account.privilege.revoke",
        f"Remove console admin {admin.username}",
        actor=actor,
        targets=[_target(admin)],
    )
    session.delete(admin)
    return admin


# --- Sign-in -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """What sign-in needs of an account, read before (and apart from) the slow check."""

    admin_id: str
    username: str
    password_hash: str


def candidate(session: Session, username: str) -> Candidate | None:
    if check_text(username):
        return None  # no stored username holds what no database can store
    admin = session.execute(
        select(t.Admin).where(t.Admin.username == username.strip())
    ).scalar_one_or_none()
    if admin is None:
        return None
    return Candidate(admin.id, admin.username, admin.password_hash)


def verify(password_hash: str | None, password: str) -> bool:
    """One argon2 verification, always: against a dummy hash when ``password_hash`` is None
    (unknown or throttled username), which then never matches. Slow: call it outside any
    transaction, in the sign-in's own small pool."""
    try:
        _hasher.verify(password_hash or _dummy_hash(), password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def record_sign_in(
    session: Session, username: str, admin_id: str | None, *, success: bool, reason: str = ""
) -> None:
    """``user.session.start``, as Okta logs a sign-in, with the outcome."""
    actor = actor_of(admin_id or "unknown", username[:255])
    events.record(
        session,
        "user.session.start",
        "Console sign-in" if success else "Console sign-in failed",
        actor=actor,
        outcome="SUCCESS" if success else "FAILURE",
        reason=None if success else reason,
    )


# --- Sessions ------------------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    admin_id: str
    username: str
    grant: Grant


def start_session(session: Session, admin_id: str, *, lifetime: timedelta) -> str:
    """A new session for the admin; returns the secret for the cookie (stored only hashed)."""
    secret = secrets.token_urlsafe(32)
    now = clock.utcnow()
    session.add(
        t.ConsoleSession(
            id=_hash(secret),
            admin_id=admin_id,
            created=now,
            last_seen=now,
            expires_at=now + lifetime,
        )
    )
    return secret


def resume_session(
    session: Session, secret: str, *, idle: timedelta
) -> tuple[SessionInfo, bool] | None:
    """The session's admin, and whether ``last_seen`` is due a refresh (:func:`touch_session`);
    None when the session is unknown, ended, idle too long or past its lifetime."""
    if not secret or len(secret) > 128:
        return None
    found = session.execute(
        select(t.ConsoleSession, t.Admin)
        .join(t.Admin, t.Admin.id == t.ConsoleSession.admin_id)
        .where(t.ConsoleSession.id == _hash(secret))
    ).first()
    if found is None:
        return None
    row, admin = found
    now = clock.utcnow()
    if clock.as_utc(row.expires_at) <= now or clock.as_utc(row.last_seen) + idle <= now:
        return None
    stale = clock.as_utc(row.last_seen) + LAST_SEEN_GRANULARITY <= now
    return SessionInfo(admin.id, admin.username, grant_of(admin)), stale


def touch_session(session: Session, secret: str) -> None:
    session.execute(
        update(t.ConsoleSession)
        .where(t.ConsoleSession.id == _hash(secret))
        .values(last_seen=clock.utcnow())
    )


def end_session(session: Session, secret: str) -> None:
    session.execute(delete(t.ConsoleSession).where(t.ConsoleSession.id == _hash(secret)))


def purge_sessions(session: Session, *, idle: timedelta) -> int:
    """Forget sessions that can no longer be resumed (sign-in calls this now and then)."""
    now = clock.utcnow()
    result = session.execute(
        delete(t.ConsoleSession).where(
            (t.ConsoleSession.expires_at <= now) | (t.ConsoleSession.last_seen <= now - idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
