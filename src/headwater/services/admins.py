"""Console administrators: argon2-hashed passwords, throttled failed sign-ins."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import tables as t
from headwater.errors import InvalidRequest

__all__ = ["authenticate", "create"]

_hasher = PasswordHasher()
#: After this many failures in a row, sign-in is refused for ``LOCKOUT``.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=5)


def create(session: Session, username: str, password: str) -> t.Admin:
    username = username.strip()
    if not username or len(username) > 255:
        raise InvalidRequest(causes=["username: must be 1 to 255 characters"])
    if len(password) < 8:
        raise InvalidRequest(causes=["password: must be at least 8 characters"])
    if session.execute(select(t.Admin).where(t.Admin.username == username)).first():
        raise InvalidRequest(causes=["username: an admin with this username already exists"])
    admin = t.Admin(
        id=ids.new_id("adm"),
        username=username,
        password_hash=_hasher.hash(password),
        created=clock.utcnow(),
        failed_attempts=0,
    )
    session.add(admin)
    return admin


def authenticate(session: Session, username: str, password: str) -> t.Admin | None:
    """The admin if the password matches and the account is not locked; counts failures."""
    admin = session.execute(
        select(t.Admin).where(t.Admin.username == username.strip())
    ).scalar_one_or_none()
    now = clock.utcnow()
    if admin is None:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    if admin.locked_until is not None and clock.as_utc(admin.locked_until) > now:
        return None
    try:
        _hasher.verify(admin.password_hash, password)
    except (VerificationError, InvalidHashError):
        admin.failed_attempts += 1
        if admin.failed_attempts >= MAX_FAILURES:
            admin.locked_until = now + LOCKOUT
            admin.failed_attempts = 0
        return None
    admin.failed_attempts = 0
    admin.locked_until = None
    return admin
