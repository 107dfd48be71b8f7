"""What may be stored: the rules every text and JSON value a client sends must pass first.

Both databases refuse NUL characters and lone surrogates, non-finite numbers do not survive a
JSON column, and a document nested a few hundred levels deep is stored fine but can never be
rendered again. A value that breaks a rule would turn every later read into a server error, so
each use-case checks what it stores here, before writing, and the API applies the same rules to
whole request bodies, path and query strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headwater.errors import InvalidRequest

__all__ = [
    "DOCUMENT",
    "MAX_SAFE_INTEGER",
    "PROFILE",
    "REQUEST",
    "Limits",
    "check_document",
    "check_string",
    "check_text",
    "document_problem",
    "refuse",
]

#: Integers beyond this lose precision as JSON numbers (Okta's numbers are doubles).
MAX_SAFE_INTEGER = 2**53


@dataclass(frozen=True)
class Limits:
    """Bounds for one stored JSON value; ``max_bytes`` is its size as compact UTF-8 JSON."""

    max_depth: int
    max_keys: int
    max_bytes: int | None
    max_key_length: int = 255


#: An app profile of an assignment or app user (may nest, as SCIM's complex attributes do).
PROFILE = Limits(max_depth=16, max_keys=1000, max_bytes=64 * 1024)
#: One section of an app document (``settings``, ``visibility``, ...).
DOCUMENT = Limits(max_depth=32, max_keys=2000, max_bytes=256 * 1024)
#: A whole request body: the outer bound before any use-case looks at it (its size is bounded
#: by the server's body limit).
REQUEST = Limits(max_depth=64, max_keys=100_000, max_bytes=None)


def check_text(value: str) -> str | None:
    """Why ``value`` cannot be stored (NUL or a lone surrogate), or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def refuse(field: str, problem: str) -> InvalidRequest:
    """Okta's 400 E0000001 naming ``field``."""
    cause = f"{field}: {problem}"
    return InvalidRequest("Api validation failed: " + cause, [cause])


def check_string(value: str, field: str, *, max_length: int, min_length: int = 0) -> str:
    """``value`` when it is storable text of a bounded length, else a 400 naming ``field``."""
    if len(value) < min_length:
        raise refuse(field, "must not be empty" if min_length == 1 else "is too short")
    if len(value) > max_length:
        raise refuse(field, f"must be at most {max_length} characters")
    problem = check_text(value)
    if problem:
        raise refuse(field, problem)
    return value


def check_document(value: Any, field: str, limits: Limits = PROFILE) -> Any:
    """``value`` when it is a storable JSON value within ``limits``, else a 400 naming the
    offending place (``field.key.0``; ``field`` may be empty for a whole body)."""
    found = document_problem(value, field, limits)
    if found is not None:
        raise refuse(*found)
    return value


def document_problem(value: Any, field: str, limits: Limits) -> tuple[str, str] | None:
    """(where, why) for the first rule ``value`` breaks, or None. Iterative, so no depth of
    nesting can exhaust the stack while it is checked."""
    keys = 0
    pending: list[tuple[Any, str, int]] = [(value, field, 1)]
    while pending:
        node, where, depth = pending.pop()
        if isinstance(node, Mapping | list) and depth > limits.max_depth:
            return where or "body", f"must not be nested more than {limits.max_depth} levels deep"
        if isinstance(node, Mapping):
            keys += len(node)
            if keys > limits.max_keys:
                return field or "body", f"must have at most {limits.max_keys} keys in all"
            for key, item in node.items():
                problem = _key_problem(key, limits)
                if problem:
                    return where or "body", problem
                pending.append((item, _join(where, key), depth + 1))
        elif isinstance(node, list):
            pending.extend((item, _join(where, i), depth + 1) for i, item in enumerate(node))
        else:
            problem = _scalar_problem(node)
            if problem:
                return where or "body", problem
    if limits.max_bytes is not None and _size(value) > limits.max_bytes:
        return field or "body", f"must be at most {limits.max_bytes} bytes as JSON"
    return None


def _join(where: str, step: object) -> str:
    return f"{where}.{step}" if where else str(step)


def _key_problem(key: Any, limits: Limits) -> str | None:
    if not isinstance(key, str):
        return "keys must be strings"
    if len(key) > limits.max_key_length:
        return f"keys must be at most {limits.max_key_length} characters"
    problem = check_text(key)
    return f"keys {problem}" if problem else None


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else "is too large a number"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, str):
        return check_text(value)
    return "must be a JSON value"


def _size(value: Any) -> int:
    """Bytes of compact JSON; only called once every text is known to encode."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
