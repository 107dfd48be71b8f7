"""Error translation: statuses, Retry-After, malformed bodies and transport failures.

scim2-server cannot be made to answer 5xx, 429 or garbage, so these tests use httpx.MockTransport;
they check only how a response or a failure is classified, never server state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from headwater.connectors.auth import BearerTokenAuth
from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    DownstreamError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from headwater.connectors.scim import ScimConnector, escape_filter_value, parse_retry_after
from headwater.domain.downstream import AccountAttributes
from headwater.domain.settings import ProvisioningSettings

TOKEN = "super-secret-token-value"
Handler = Callable[[httpx.Request], httpx.Response]


def connector(handler: Handler, **kwargs: Any) -> ScimConnector:
    return ScimConnector(
        "https://app.example.com/scim/v2",
        auth=BearerTokenAuth(TOKEN),
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)

    return handler


def scim_error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    error = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
    if scim_type:
        error["scimType"] = scim_type
    return error


async def fail(handler: Handler) -> DownstreamError:
    async with connector(handler) as scim:
        with pytest.raises(DownstreamError) as caught:
            await scim.get_user("u1")
    assert TOKEN not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (429, TransientError),
        (401, AppUnavailableError),
        (403, AppUnavailableError),
        (409, ConflictError),
        (400, PermanentError),
        (422, PermanentError),
        (301, AppUnavailableError),
    ],
)
async def test_status_translation(status: int, kind: type[DownstreamError]) -> None:
    error = await fail(answer(status, scim_error(status, "the server says why")))
    assert type(error) is kind
    assert error.status == status
    assert f"HTTP {status}" in error.message
    assert "GET /Users/{id}" in error.message
    # What the server said is the detail (for admins' records), never the message.
    assert "the server says why" not in error.message
    if status < 300 or status >= 400:
        assert error.detail == "the server says why"
        assert str(error) == f"{error.message}: the server says why"


async def test_404_on_write_is_not_found() -> None:
    async with connector(answer(404, scim_error(404, "no such user"))) as scim:
        with pytest.raises(NotFoundError, match="no such user"):
            await scim.set_active("u1", False)


async def test_credentials_rejected_message() -> None:
    error = await fail(answer(401, scim_error(401, "invalid token")))
    assert "credentials rejected" in error.message


async def test_detail_is_truncated_and_scim_type_kept() -> None:
    error = await fail(answer(400, scim_error(400, "x" * 5000, "invalidValue")))
    assert error.detail.startswith("invalidValue: xxx")
    assert len(error.detail) <= 500
    assert error.message == "GET /Users/{id}: HTTP 400"


async def test_error_without_json_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"<html>echo {request.headers['Authorization']}</html>")

    error = await fail(handler)
    assert isinstance(error, TransientError)
    assert error.message == "GET /Users/{id}: HTTP 502"


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds(status: int) -> None:
    error = await fail(answer(status, None, **{"Retry-After": "7"}))
    assert isinstance(error, TransientError) and error.retry_after == 7.0
    error = await fail(answer(status, None, **{"Retry-After": "2.5"}))
    assert isinstance(error, TransientError) and error.retry_after == 2.5


async def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    error = await fail(answer(429, None, **{"Retry-After": when}))
    assert isinstance(error, TransientError)
    assert error.retry_after is not None and 110 <= error.retry_after <= 121


def test_parse_retry_after_edges() -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0  # past: clamp
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


async def test_429_without_retry_after() -> None:
    error = await fail(answer(429, scim_error(429, "slow down")))
    assert isinstance(error, TransientError) and error.retry_after is None


@pytest.mark.parametrize(
    "content",
    [b"<html>not json</html>", b"[1, 2]", b'{"userName": "no id"}', b'"just a string"'],
)
async def test_malformed_2xx_is_transient(content: bytes) -> None:
    error = await fail(lambda request: httpx.Response(200, content=content))
    assert isinstance(error, TransientError)
    assert "malformed response" in error.message


async def test_malformed_list_response_is_transient() -> None:
    async with connector(answer(200, {"Resources": {"not": "a list"}})) as scim:
        with pytest.raises(TransientError, match="malformed response"):
            await scim.find_user("alice")


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("pool"),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectError("[Errno 104] Connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
    ],
)
async def test_transport_failures_are_transient(exc: httpx.HTTPError) -> None:
    calls: list[int | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with connector(handler, on_request=lambda m, p, s, t: calls.append(s)) as scim:
        with pytest.raises(TransientError) as caught:
            await scim.get_user("u1")
    # The exception's text is in the error (scrubbed); the exception itself is not chained,
    # so no traceback can show what the downstream sent.
    assert str(exc) in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert calls == [None]


async def test_timeout_during_probe_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    async with connector(handler) as scim:
        with pytest.raises(TransientError, match="timed out"):
            await scim.test_connection()


async def test_probe_rejects_a_non_scim_endpoint() -> None:
    """A base URL that lands on a web page answering 200 to everything is unusable."""
    html = lambda request: httpx.Response(200, text="<html>welcome</html>")  # noqa: E731
    async with connector(html) as scim:
        with pytest.raises(AppUnavailableError, match="not a SCIM ListResponse"):
            await scim.test_connection()


async def test_204_on_patch_and_delete_are_fine() -> None:
    async with connector(answer(204)) as scim:
        assert await scim.patch_user("u1", AccountAttributes("a", "b")) is None
        await scim.set_active("u1", True)
        await scim.delete_user("u1")
        await scim.delete_group("g1")


async def test_patch_user_with_body() -> None:
    body = {"id": "u1", "userName": "a", "active": "False"}  # some servers send strings
    async with connector(answer(200, body)) as scim:
        account = await scim.patch_user("u1", AccountAttributes("a", "b", active=False))
    assert account is not None and account.active is False


async def test_lenient_parsing_of_odd_but_usable_payloads() -> None:
    group = {
        "ID": 42,  # numeric id, attribute names in another case
        "DisplayName": "Ops",
        "Members": [{"value": "u1", "type": "User", "$ref": "x"}, {"value": 7}],
        "someVendorThing": {"a": 1},
    }
    async with connector(answer(200, group)) as scim:
        fetched = await scim.get_group("42")
    assert fetched is not None
    assert (fetched.id, fetched.display_name) == ("42", "Ops")
    assert fetched.member_ids == frozenset({"u1", "7"})


async def test_find_ignores_results_that_do_not_match() -> None:
    """A server that ignores the filter must not make us link somebody else's account."""
    page = {"totalResults": 1, "Resources": [{"id": "u9", "userName": "mallory"}]}
    async with connector(answer(200, page)) as scim:
        assert await scim.find_user("alice") is None


async def test_find_returns_none_on_404() -> None:
    async with connector(answer(404, scim_error(404, "no results"))) as scim:
        assert await scim.find_user("alice") is None
        assert await scim.find_group("Ops") is None


def test_escape_filter_value() -> None:
    assert escape_filter_value('a"b\\c') == 'a\\"b\\\\c'
