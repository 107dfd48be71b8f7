"""ASGI middleware: body size limit (413) and a request id on every response."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "RequestIdMiddleware"]


#: Paths whose clients read SCIM's error message rather than Okta's.
SCIM_PREFIX = "/scim/"


def _too_large_scim() -> bytes:
    """RFC 7644 §3.12's error message (what ``api.scim`` answers with everywhere else)."""
    return json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "413",
            "detail": "The request body is too large.",
        }
    ).encode()


def _too_large_body() -> bytes:
    return json.dumps(
        {
            "errorCode": "E0000005",
            "errorSummary": "Request payload too large",
            "errorLink": "E0000005",
            "errorId": "oae" + uuid.uuid4().hex[:19],
            "errorCauses": [],
        }
    ).encode()


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` before any handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(scope, send)
        except Exception:
            if too_large and not response_started:
                await self._reject(scope, send)
            else:
                raise

    async def _reject(self, scope: Scope, send: Send) -> None:
        scim = str(scope.get("path") or "").startswith(SCIM_PREFIX)
        body = _too_large_scim() if scim else _too_large_body()
        media_type = b"application/scim+json" if scim else b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", media_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class RequestIdMiddleware:
    """Add ``X-Okta-Request-Id`` (Okta's correlation header) to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:20].encode()

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                headers.append((b"x-okta-request-id", request_id))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_id)
