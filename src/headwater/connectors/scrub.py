"""Scrubbing: no text that came from a downstream carries a credential into Headwater.

A downstream may echo what it received (request headers in an error ``detail``, the form an
OAuth token endpoint was sent). Every such text goes through :func:`scrub_text` before it is
stored, logged or returned: each secret of the app (in clear, URL-encoded, and as the
``Basic`` pair it travels in) becomes ``***``, so does anything shaped like an
``Authorization`` header or a ``Bearer``/``Basic``/``SSWS`` credential, and the result is
capped in length.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MAX_DETAIL", "Scrubber", "scrub_text"]

MASK = "***"
#: Longest downstream text (an error ``detail``) kept, after scrubbing.
MAX_DETAIL = 500
#: Text beyond this is dropped before scrubbing (it could never survive the cap anyway).
_MAX_INPUT = 65_536
#: OAuth access tokens remembered per app (older ones have expired long ago).
_MAX_DERIVED = 16

_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization)(\s*[\"']?\s*[:=]\s*[\"']?\s*)[^\r\n\"',;}\]]*"
)
_SCHEME = re.compile(r"(?i)\b(bearer|basic|ssws)(\s+|%20|\+)[A-Za-z0-9\-._~+/]+=*")


def _variants(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value)}


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def scrub_text(text: str, secrets: Iterable[str] = (), *, limit: int = MAX_DETAIL) -> str:
    """``text`` without ``secrets`` or credential-shaped words, on one line, at most ``limit``
    characters."""
    text = text[:_MAX_INPUT]
    for value in sorted({v for s in secrets if s for v in _variants(s)}, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = " ".join(text.split())
    text = _HEADER.sub(rf"\1\2{MASK}", text)
    text = _SCHEME.sub(rf"\1\2{MASK}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Scrubber:
    """The secrets of one app, and the scrubbing of texts that app sends back.

    Holds the stored secrets (token, password, client secret, with the ``Basic`` pairs they
    travel in) and the OAuth access tokens obtained for the app as they are issued. Its repr
    shows nothing.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._fixed = tuple(s for s in secrets if s)
        self._derived: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def for_secret(cls, secret: dict[str, str]) -> Scrubber:
        """From a stored connection secret (``connectors.auth.build_auth``'s fields)."""
        values = [secret.get(k, "") for k in ("token", "password", "client_secret")]
        if secret.get("password"):
            values.append(_basic(secret.get("username", ""), secret["password"]))
        if secret.get("client_secret"):
            values.append(_basic(secret.get("client_id", ""), secret["client_secret"]))
        return cls(values)

    def add(self, value: str) -> None:
        """Remember a credential obtained at run time (an OAuth access token)."""
        if not value:
            return
        with self._lock:
            if value in self._derived:
                return
            self._derived.append(value)
            del self._derived[:-_MAX_DERIVED]

    @property
    def secrets(self) -> tuple[str, ...]:
        with self._lock:
            return (*self._fixed, *self._derived)

    def __call__(self, text: str, *, limit: int = MAX_DETAIL) -> str:
        return scrub_text(text, self.secrets, limit=limit)

    def __repr__(self) -> str:
        return "Scrubber(<hidden>)"
