"""Request bodies, parsed by hand so every failure is Okta's error, never a framework default.

The Okta SDK sends empty bodies labelled ``application/octet-stream`` on body-less writes, and
strips empty values from JSON; both must be accepted. ``NaN`` and ``Infinity`` are not JSON;
a body that holds text no database stores, or nests deeper than any Okta object, is refused
whole (``domain.storable``), before any route sees it.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from headwater.domain.storable import REQUEST, check_document
from headwater.errors import InvalidRequest, MalformedRequest

__all__ = ["decode", "openapi_body", "parse", "raw_body"]

M = TypeVar("M", bound=BaseModel)


async def raw_body(request: Request) -> bytes:
    """The body's bytes, read on the event loop (within the body size limit), so that a plain
    ``def`` handler can decode it with :func:`decode` in the threadpool."""
    return await request.body()


def decode(raw: bytes) -> Any:
    """A body's JSON, checked (no ``NaN``, nothing a database cannot store, no deeper than any
    Okta object), or ``None`` when it is empty."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
        raise MalformedRequest() from exc
    return check_document(value, "", REQUEST)


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's parser accepts."""
    raise ValueError(f"{constant} is not JSON")


def parse(model: type[M], data: Any, *, required: bool = True) -> M:
    """Validate ``data`` against ``model``; errors name each offending field."""
    if data is None:
        if required:
            raise InvalidRequest("Api validation failed: body", ["body: a JSON object is required"])
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest("Api validation failed: body", ["body: must be a JSON object"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        causes = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "body"
            causes.append(f"{field}: {error['msg']}")
        raise InvalidRequest("Api validation failed: " + causes[0], causes) from exc


def openapi_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` documenting a hand-parsed JSON body (definitions inlined)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": _inline(schema, definitions)}},
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, definitions) for v in node]
    return node
