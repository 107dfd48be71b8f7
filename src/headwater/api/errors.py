"""Every error leaves the API as Okta's error object with ``Content-Type: application/json``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from headwater.api.deps import settle_first
from headwater.errors import HeadwaterError

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("E0000003", "The request body was not well-formed."),
    401: ("E0000011", "Invalid token provided"),
    403: ("E0000006", "You do not have permission to perform the requested action"),
    404: ("E0000007", "Not found: Resource not found"),
    405: ("E0000022", "The endpoint does not support the provided HTTP method"),
    406: ("E0000008", "The requested resource is not available in the requested format"),
    413: ("E0000005", "Request payload too large"),
    415: ("E0000021", "Unsupported media type"),
    429: ("E0000047", "API call exceeded rate limit due to too many requests."),
}


def error_response(
    status: int,
    code: str,
    summary: str,
    causes: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Okta's error object; ``errorLink`` repeats the code, ``errorId`` is unique per error."""
    body: dict[str, Any] = {
        "errorCode": code,
        "errorSummary": _encodable(summary),
        "errorLink": code,
        "errorId": "oae" + uuid.uuid4().hex[:19],
        "errorCauses": [{"errorSummary": _encodable(c)} for c in causes or []],
    }
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _encodable(text: str) -> str:
    """An error may quote what the client sent; a lone surrogate in it must not turn the
    answer into a server error."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _validation_causes(exc: RequestValidationError) -> tuple[str, str, list[str]]:
    causes = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        if error.get("type") == "json_invalid":
            return "E0000003", "The request body was not well-formed.", []
        field = ".".join(loc) or "body"
        causes.append(f"{field}: {error.get('msg', 'invalid value')}")
    return "E0000001", "Api validation failed: " + (causes[0] if causes else "request"), causes


def _domain_response(exc: HeadwaterError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.summary, exc.causes)


async def _owed_error(request: Request) -> HeadwaterError | None:
    """The error the request's owed authentication (or body) answers with, if any: an error
    raised before the handler is answered only once the token and permissions are checked,
    as if each dependency had checked at once."""
    try:
        await settle_first(request)
    except HeadwaterError as exc:
        return exc
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    async def _domain(request: Request, exc: HeadwaterError) -> JSONResponse:
        return _domain_response(await _owed_error(request) or exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if owed := await _owed_error(request):
            return _domain_response(owed)
        code, summary, causes = _validation_causes(exc)
        return error_response(400, code, summary, causes)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if owed := await _owed_error(request):
            return _domain_response(owed)
        code, summary = _HTTP_CODES.get(exc.status_code, ("E0000009", "Internal Server Error"))
        if isinstance(exc.detail, str) and exc.status_code not in (404, 405):
            summary = exc.detail
        return error_response(exc.status_code, code, summary, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        if owed := await _owed_error(request):
            return _domain_response(owed)
        # The client left (or was cut off for sending too slowly) before its body was read:
        # nothing was done, and the answer below reaches no one.
        log.info(
            "%s %s: the client went away before its request was read",
            request.method,
            request.url.path,
        )
        return error_response(400, "E0000003", "The request body was not well-formed.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        try:
            owed = await _owed_error(request)
        except Exception:  # the token check failing too: the first error is the one to log
            owed = None
        if owed is not None:
            return _domain_response(owed)
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "E0000009", "Internal Server Error")
