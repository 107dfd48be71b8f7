"""Okta-shaped identifiers: a type prefix and 17 more characters, ordered by creation time.

Time-ordered ids let cursor pagination walk ``ORDER BY id`` in creation order with an index
seek, never OFFSET.
"""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_last = 0


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as ``00u1a2B3c4D5e6F7g8h`` (prefix + 8 time chars + 9 random chars).

    The time part is in microseconds and strictly increasing within a process.
    """
    global _last
    with _lock:
        now = max(time.time_ns() // 1000, _last + 1)
        _last = now
    return prefix + _encode(now, 8) + _encode(secrets.randbits(53), 9)
