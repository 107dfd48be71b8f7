"""The console's cookie: a small signed document (HMAC-SHA256, base64, expiry).

It carries a CSRF token, one-shot flash messages and, once signed in, the random secret of a
server-side session (``services.admins``: the table stores only its SHA-256, and who signed
in, since when and until when). Signing out, a password change or removing the admin deletes
that row, so a copied cookie stops working at once; idle and absolute timeouts are checked
against the row on every request.

Starlette's SessionMiddleware needs ``itsdangerous``, which Headwater does not depend on. The
signing key is derived from the runtime's secret key, so rotating it signs everybody out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from headwater import clock

__all__ = ["COOKIE", "ConsoleSession", "SessionCodec", "derive_key"]

COOKIE = "hw_console"
#: Anonymous sessions (only a CSRF token for the sign-in form) live this long (seconds).
ANONYMOUS_LIFETIME = 3600
MAX_FLASHES = 5


def _now() -> float:
    return clock.utcnow().timestamp()


def derive_key(secret: str | bytes) -> bytes:
    """A key for session signatures only, so the cookie never exposes the storage key."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"headwater console session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class ConsoleSession:
    """What the cookie carries; ``dirty`` says it must be written back on the response.

    ``secret`` names the server-side session (None: nobody signed in)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secret: str | None = None
    expires: float = field(default_factory=lambda: _now() + ANONYMOUS_LIFETIME)
    flashes: list[tuple[str, str]] = field(default_factory=list)
    dirty: bool = False

    def sign_in(self, secret: str, lifetime: float) -> None:
        """A fresh CSRF token on sign-in, so a token seen before cannot be replayed."""
        self.csrf = secrets.token_urlsafe(24)
        self.secret = secret
        self.expires = _now() + lifetime
        self.dirty = True

    def sign_out(self) -> None:
        self.secret = None
        self.csrf = secrets.token_urlsafe(24)
        self.expires = _now() + ANONYMOUS_LIFETIME
        self.dirty = True

    def flash(self, kind: str, message: str) -> None:
        self.flashes = [*self.flashes, (kind, message[:500])][-MAX_FLASHES:]
        self.dirty = True

    def take_flashes(self) -> list[tuple[str, str]]:
        shown, self.flashes = self.flashes, []
        if shown:
            self.dirty = True
        return shown

    def as_json(self) -> dict[str, Any]:
        return {
            "c": self.csrf,
            "s": self.secret,
            "e": int(self.expires),
            "f": [list(pair) for pair in self.flashes],
        }


class SessionCodec:
    """Serialises a session to ``payload.signature`` and back; anything odd is no session."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def dumps(self, session: ConsoleSession) -> str:
        payload = _b64(json.dumps(session.as_json(), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def loads(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > 4096 or "." not in cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        return _from_json(data)


def _from_json(data: Any) -> ConsoleSession | None:
    if not isinstance(data, dict):
        return None
    csrf, secret, expires = data.get("c"), data.get("s"), data.get("e")
    if not isinstance(csrf, str) or not isinstance(expires, int) or expires < _now():
        return None
    if not (secret is None or isinstance(secret, str)):
        return None
    flashes = [
        (str(pair[0]), str(pair[1]))
        for pair in data.get("f") or []
        if isinstance(pair, list) and len(pair) == 2
    ]
    return ConsoleSession(csrf, secret, float(expires), flashes)
