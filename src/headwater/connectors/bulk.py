"""SCIM Bulk (RFC 7644 §3.7): the writes of many keys in one request, each answered alone.

The connector hands each write it would send (POST, PUT or PATCH of a user or group) to a
``BulkQueue`` instead; the queue gathers the writes that arrive together, sends them as one
``POST /Bulk`` within the app's ``maxOperations`` and ``maxPayloadSize`` (``failOnErrors``
unset, so every operation is tried), and gives each caller back the answer to its own
operation as if it had been a single response. Everything the connector does with a single
response (a 409 to look up and link, a 501 to retry by PUT, a 404 tolerated) therefore happens
per operation, unchanged.

Each operation carries a ``bulkId`` (required for a POST, RFC 7644 §3.7.1) by which its answer
is found; each key sends its next write only once the previous one is answered, so no
operation refers to another one's ``bulkId``. When the Bulk request itself fails, every caller
gets that failure as its own (a 5xx or a lost answer: each key retries its own operation, and a
create that did land is found by its look-up); when the app refuses Bulk (501, 404, 405), or a
request is too large (413), the operations are sent one by one at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from headwater.connectors.errors import DownstreamError, TransientError
from headwater.domain.capabilities import BulkLimits

__all__ = ["BULK_REQUEST", "BULK_RESPONSE", "BulkQueue"]

log = logging.getLogger(__name__)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
#: Bytes of the request around its operations (schemas, brackets), with room to spare.
ENVELOPE = 256
#: How long the queue waits for more writes after the last one came in (writes of keys that
#: are ready arrive within a few event-loop turns; a full request goes at once).
LINGER = 0.002
#: ...but no write waits longer than this for others to join it.
MAX_WAIT = 0.05
#: Answers that mean "this app takes no Bulk request": sent one by one from then on.
REFUSED = frozenset({404, 405, 501})

#: Sends ``POST /Bulk`` with a body; connector errors for a request that got no answer.
Send = Callable[[Mapping[str, Any]], Awaitable[httpx.Response]]


@dataclass
class _Pending:
    operation: dict[str, Any]
    size: int
    answer: asyncio.Future[httpx.Response | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BulkQueue:
    """Gathers writes into Bulk requests; one per connector (per app)."""

    def __init__(self, send: Send, limits: BulkLimits) -> None:
        self._send = send
        self.limits = limits
        #: Set when the app answered that it takes no Bulk request.
        self.refused = False
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._next_id = 0

    async def submit(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> httpx.Response | None:
        """The answer to one write sent in a Bulk request, as a response of its own; None when
        the caller must send it alone (Bulk refused, or the write too large for one)."""
        if self.refused:
            return None
        self._next_id += 1
        operation: dict[str, Any] = {"method": method, "path": path, "bulkId": f"h{self._next_id}"}
        if body is not None:
            operation["data"] = body
        size = len(json.dumps(operation, separators=(",", ":"))) + 1
        if size + ENVELOPE > self.limits.payload:
            return None
        pending = _Pending(operation, size)
        self._pending.append(pending)
        if len(self._pending) >= self.limits.operations:
            self._dispatch(self._take())
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._linger())
        return await pending.answer

    async def _linger(self) -> None:
        """Send what came in once nothing more arrives for a moment (or the first write has
        waited long enough)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + MAX_WAIT
        seen = -1
        while self._pending and len(self._pending) != seen and loop.time() < until:
            seen = len(self._pending)
            await asyncio.sleep(LINGER)
        while self._pending:
            self._dispatch(self._take())

    def _take(self) -> list[_Pending]:
        """The oldest writes that fit in one request."""
        taken: list[_Pending] = []
        room = self.limits.payload - ENVELOPE
        while self._pending and len(taken) < self.limits.operations:
            if taken and self._pending[0].size > room:
                break
            item = self._pending.pop(0)
            room -= item.size
            taken.append(item)
        return taken

    def _dispatch(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        task = asyncio.create_task(self._request(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _request(self, batch: list[_Pending]) -> None:
        body = {"schemas": [BULK_REQUEST], "Operations": [p.operation for p in batch]}
        try:
            response = await self._send(body)
        except DownstreamError as exc:
            for pending in batch:
                _settle(pending, error=_copy(exc))
            return
        except BaseException as exc:  # pragma: no cover - cancellation or a bug: never hang
            for pending in batch:
                _settle(pending, error=exc)
            raise
        status = response.status_code
        if status in REFUSED or status in (400, 413):
            # Refused, or this request refused as a whole (too large, or a form the app does
            # not read): each operation goes alone, now.
            if status in REFUSED:
                self.refused = True
            for pending in batch:
                _settle(pending, answer=None)
            return
        if not 200 <= status < 300:
            for pending in batch:
                _settle(pending, answer=response)
            return
        for pending, answer in zip(batch, _answers(response, batch), strict=True):
            if answer is None:
                _settle(
                    pending,
                    error=TransientError(
                        f"POST /Bulk: no answer for operation {pending.operation['bulkId']}",
                        status=status,
                    ),
                )
            else:
                _settle(pending, answer=_as_response(answer, pending.operation))


def _settle(
    pending: _Pending, *, answer: httpx.Response | None = None, error: BaseException | None = None
) -> None:
    if pending.answer.done():
        return
    if error is not None:
        pending.answer.set_exception(error)
    else:
        pending.answer.set_result(answer)


def _copy(exc: DownstreamError) -> DownstreamError:
    """One error per caller: each scrubs and raises its own."""
    copy = type(exc).__new__(type(exc))
    copy.__dict__.update(exc.__dict__)
    copy.args = exc.args
    return copy


def _answers(response: httpx.Response, batch: list[_Pending]) -> list[Mapping[str, Any] | None]:
    """Each operation's answer: by ``bulkId`` where the app returns it (RFC 7644 requires it
    for a POST only), else the answer at the same position when the app answered every
    operation in order and that answer fits (same method, same resource). A body that is not a
    BulkResponse answers none: every operation then fails transiently, and is retried."""
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return [None] * len(batch)
    operations = _get(payload, "Operations") if isinstance(payload, Mapping) else None
    if not isinstance(operations, list):
        return [None] * len(batch)
    listed = [answer if isinstance(answer, Mapping) else None for answer in operations]
    by_id = {}
    for answer in listed:
        bulk_id = _get(answer, "bulkId") if answer is not None else None
        if isinstance(bulk_id, str):
            by_id[bulk_id] = answer
    in_order = len(listed) == len(batch)
    found: list[Mapping[str, Any] | None] = []
    for index, pending in enumerate(batch):
        answer = by_id.get(pending.operation["bulkId"])
        if answer is None and in_order and _fits(listed[index], pending.operation):
            answer = listed[index]
        found.append(answer)
    return found


def _fits(answer: Mapping[str, Any] | None, operation: Mapping[str, Any]) -> bool:
    if answer is None:
        return False
    bulk_id = _get(answer, "bulkId")
    if isinstance(bulk_id, str) and bulk_id != operation["bulkId"]:
        return False
    method = _get(answer, "method")
    if isinstance(method, str) and method.upper() != operation["method"]:
        return False
    location = _get(answer, "location")
    if isinstance(location, str) and operation["method"] != "POST":
        return unquote(location).rstrip("/").endswith(unquote(operation["path"]))
    return True


def _get(data: Mapping[str, Any], name: str) -> Any:
    folded = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _status(value: Any) -> int | None:
    """An operation's status: a string per RFC 7644, an integer or ``{"code": ...}`` from
    some servers."""
    if isinstance(value, Mapping):
        value = _get(value, "code")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_response(answer: Mapping[str, Any], operation: Mapping[str, Any]) -> httpx.Response:
    """One operation's answer as the single response it stands for. A success without a
    ``response`` body (RFC 7644 gives only ``location``) reads as the resource sent, with the
    id from its location, so a created account's id is known."""
    status = _status(_get(answer, "status"))
    if status is None:
        return httpx.Response(502, json={"detail": "Bulk answer without a status"})
    body = _get(answer, "response")
    if isinstance(body, Mapping):
        return httpx.Response(status, json=dict(body))
    if not 200 <= status < 300 or operation["method"] == "PATCH":
        return httpx.Response(status)
    data = operation.get("data")
    location = _get(answer, "location")
    resource_id = (
        unquote(location.rstrip("/").rsplit("/", 1)[-1]) if isinstance(location, str) else None
    )
    if not isinstance(data, Mapping) or not resource_id:
        return httpx.Response(status)
    return httpx.Response(status, json={**data, "id": resource_id})
