"""Okta-shaped identifiers: a type prefix and 17 more characters, ordered by creation time.

Time-ordered ids let cursor pagination walk ``ORDER BY id`` in creation order with an index
seek, never OFFSET.
"""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["new_id", "new_ids"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_last = 0


#: Every two-character string of the alphabet, by value (62 ** 2 of them): encoding takes half
#: the divisions of one character at a time (imports make ids by the hundred thousand).
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_PAIR = 62 * 62


def _encode(value: int, width: int) -> str:
    """``value`` in base 62 on exactly ``width`` characters (the top ones dropped)."""
    chars = []
    for _ in range(width // 2):
        value, rem = divmod(value, _PAIR)
        chars.append(_PAIRS[rem])
    if width % 2:
        chars.append(_ALPHABET[value % 62])
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


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` new ids at once, as :func:`new_id` makes them one by one (consecutive
    microseconds, in order)."""
    global _last
    with _lock:
        first = max(time.time_ns() // 1000, _last + 1)
        _last = first + count - 1
    # One read of the system's randomness for all of them (53 random bits each, as new_id);
    # the time part's first six characters change once every 3,844 microseconds.
    noise = secrets.token_bytes(8 * count)
    made = []
    high_value, high = -1, ""
    for n in range(count):
        top, low = divmod(first + n, _PAIR)
        if top != high_value:
            high_value, high = top, _encode(top, 6)
        rand = int.from_bytes(noise[8 * n : 8 * n + 8], "big") >> 11
        made.append(prefix + high + _PAIRS[low] + _encode(rand, 9))
    return made
