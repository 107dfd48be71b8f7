"""An async SCIM 2.0 client: the connector Headwater provisions downstream apps through.

It speaks the planner's types (``AccountAttributes``, ``RemoteAccount``, ``RemoteGroup``) and
turns every failure into one of the ``connectors.errors`` types, because the reconciler decides
what to do next (retry, task, quarantine) from the error type alone. Vendor quirks come from
``ProvisioningSettings`` as data, never as branches on the vendor.

Requests are built with scim2-models where the models fit; responses are read leniently as plain
JSON (unknown attributes, case variations and missing optional fields are tolerated) because real
SCIM servers rarely validate against a strict model.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError
from scim2_models import (
    Context,
    Group,
    GroupMember,
    PatchOp,
    PatchOperation,
)

from headwater import __version__
from headwater.connectors.auth import TOKEN_REQUEST
from headwater.connectors.bulk import BulkQueue
from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    DownstreamError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from headwater.connectors.outbound import OutboundDenied, OutboundPolicy, OutboundTransport
from headwater.connectors.scrub import MAX_DETAIL, Scrubber, scrub_text
from headwater.domain.capabilities import Capabilities, bulk_limits, parse_service_provider_config
from headwater.domain.dialects import (
    BooleanEncoding,
    Dialect,
    GroupWrites,
    MemberCheck,
    MemberRemoval,
    OpCase,
    effective,
)
from headwater.domain.downstream import (
    AccountAttributes,
    GroupState,
    ListedAccount,
    ListedGroup,
    ListingPage,
    RemoteAccount,
    RemoteGroup,
)
from headwater.domain.settings import MAX_BATCH_SIZE, MAX_LOOKUP_BATCH, ProvisioningSettings

__all__ = ["RequestHook", "ScimConnector", "escape_filter_value"]

log = logging.getLogger(__name__)

#: ``on_request(method, path_template, status_or_None, seconds)``, called after every request.
RequestHook = Callable[[str, str, int | None, float], None]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_MEDIA_TYPE = "application/scim+json"
#: Longest error message (Headwater's own words about what failed).
MAX_MESSAGE = 500
#: Turns downstream text into text safe to keep (see ``connectors.scrub``).
Scrub = Callable[[str], str]

#: Top-level keys an ``extra`` mapping may not set: structural or server-owned.
_RESERVED = frozenset({"schemas", "id", "meta"})
_T = TypeVar("_T")
_P = ParamSpec("_P")
#: The writes that may go in a Bulk request (RFC 7644 §3.7: no reads).
_BULK_WRITES = frozenset(
    (method, template)
    for method in ("POST", "PUT", "PATCH", "DELETE")
    for template in ("/Users", "/Users/{id}", "/Groups", "/Groups/{id}")
    if (method == "POST") == ("{id}" not in template)
)


class _MalformedError(ValueError):
    """A 2xx response whose body is not the SCIM document the call expects."""


# -- helpers ---------------------------------------------------------------------------------


def escape_filter_value(value: str) -> str:
    """Escape a value for a double-quoted SCIM filter string (RFC 7644 §3.4.2.2 uses JSON)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _truncate(text: str, limit: int = MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(data: Mapping[str, Any], name: str) -> Any:
    """Read an attribute by name, case-insensitively as RFC 7643 §2.1 says attribute names are."""
    if name in data:
        return data[name]
    folded = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _as_id(value: Any) -> str | None:
    """A resource id as a string; some servers send numeric ids despite RFC 7643 §3.1."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _as_bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), at least 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _error_detail(response: httpx.Response) -> str:
    """The server's own explanation of an error: SCIM ``scimType``/``detail``, else common keys.

    Only fields of a JSON body are used, never raw text; the caller scrubs what is returned
    (a server may echo the request, headers included, in its ``detail``).
    """
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(payload, Mapping):
        return ""
    parts: list[str] = []
    scim_type = _field(payload, "scimType")
    if isinstance(scim_type, str) and scim_type:
        parts.append(scim_type)
    for key in ("detail", "message", "error_description", "error"):
        text = _field(payload, key)
        if isinstance(text, str) and text:
            parts.append(text)
            break
    return ": ".join(parts)


def status_error(
    response: httpx.Response, method: str, template: str, scrub: Scrub = scrub_text
) -> DownstreamError:
    """The connector error for a non-2xx response; its type tells the reconciler what to do.

    The message names the request and the status only; what the downstream said goes, scrubbed,
    into ``detail``.
    """
    status = response.status_code
    detail = scrub(_error_detail(response))
    where = f"{method} {template}"
    if status in (401, 403):
        return AppUnavailableError(
            f"{where}: credentials rejected (HTTP {status})", status=status, detail=detail
        )
    if status == 501:
        # RFC 7644 §3.12: "operation not supported"; asking again gets the same answer.
        return PermanentError(
            f"{where}: not implemented by the app (HTTP 501)", status=status, detail=detail
        )
    if status == 429 or status >= 500:
        return TransientError(
            f"{where}: HTTP {status}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            detail=detail,
        )
    if status == 409:
        return ConflictError(f"{where}: conflict (HTTP 409)", status=status, detail=detail)
    if status == 404:
        return NotFoundError(f"{where}: not found (HTTP 404)", status=status, detail=detail)
    if 300 <= status < 400:
        return AppUnavailableError(
            f"{where}: unexpected redirect (HTTP {status}); check the base URL", status=status
        )
    if 400 <= status < 500:
        return PermanentError(f"{where}: HTTP {status}", status=status, detail=detail)
    return TransientError(f"{where}: unexpected HTTP {status}", status=status, detail=detail)


def transport_error(
    exc: httpx.HTTPError,
    method: str,
    template: str,
    *,
    probing: bool = False,
    scrub: Scrub = scrub_text,
) -> DownstreamError:
    """The connector error for a request that got no usable response.

    ``probing`` is set by ``test_connection``: there an unreachable host means the app as
    configured is unusable, while mid-run it is just a blip worth retrying. A failure to
    connect is told in full (the text is this machine's); any other exception's text may hold
    bytes the downstream sent, so it goes, scrubbed, into ``detail``.
    """
    where = f"{method} {template}"
    if _is_token_request(exc):
        where = "POST token URL"
    name = type(exc).__name__
    text = scrub(str(exc))
    if isinstance(exc, OutboundDenied):
        return AppUnavailableError(f"{where}: {exc}")
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        what = scrub_text(f"{name}: {text}" if text else name, limit=200)
        if isinstance(exc, httpx.ConnectTimeout):
            return TransientError(f"{where}: timed out ({what})")
        if probing:
            return AppUnavailableError(f"{where}: cannot connect ({what})")
        return TransientError(f"{where}: connection failed ({what})")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{where}: timed out ({name})", detail=text)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return AppUnavailableError(f"{where}: unusable base URL ({name})", detail=text)
    if isinstance(exc, httpx.LocalProtocolError):
        return PermanentError(f"{where}: invalid request ({name})", detail=text)
    return TransientError(f"{where}: {name}", detail=text)


def _is_token_request(exc: httpx.HTTPError) -> bool:
    """Whether the request that failed is an OAuth token request (not the SCIM call)."""
    try:
        request = exc.request
    except RuntimeError:
        return False
    return bool(request.extensions.get(TOKEN_REQUEST))


def _scrubbed(
    method: Callable[Concatenate[ScimConnector, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[ScimConnector, _P], Coroutine[Any, Any, _T]]:
    """Every connector error leaves the connector scrubbed of the app's secrets, capped, and
    without the exception it came from (whose text and traceback hold what the downstream
    sent)."""

    @functools.wraps(method)
    async def guarded(self: ScimConnector, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(self, *args, **kwargs)
        except DownstreamError as exc:
            exc.message = self.scrubber(exc.message, limit=MAX_MESSAGE)
            exc.detail = self.scrubber(exc.detail, limit=MAX_DETAIL)
            exc.args = (exc.message,)
            raise exc from None

    return guarded


class _SetCookiesOnly(httpx.Cookies):
    """The client's cookie jar, read only from responses that set a cookie: httpx otherwise
    wraps every response and its request in ``urllib`` adapters to look for one, a fifth of a
    look-up's cost in the client."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def _user_payload(attrs: AccountAttributes) -> dict[str, Any]:
    """The full SCIM User for ``attrs``: core + enterprise schemas, ``extra`` merged on top.

    Built as a plain mapping, not through ``scim2_models``: every field is already a string
    (or None), so the model only added a validation pass and a dump, a tenth of a create's CPU.
    It is the body the model would give (``tests/connectors/test_scim_payload.py``)."""
    payload: dict[str, Any] = {"schemas": [USER_SCHEMA]}
    payload["externalId"] = attrs.external_id
    payload["userName"] = attrs.user_name
    if attrs.given_name is not None or attrs.family_name is not None:
        name: dict[str, str] = {}
        if attrs.family_name is not None:
            name["familyName"] = attrs.family_name
        if attrs.given_name is not None:
            name["givenName"] = attrs.given_name
        payload["name"] = name
    if attrs.display_name is not None:
        payload["displayName"] = attrs.display_name
    if attrs.title is not None:
        payload["title"] = attrs.title
    # `active` is always sent: a replace that omits it would leave the account's state unknown.
    payload["active"] = attrs.active
    enterprise: dict[str, Any] = {}
    if attrs.employee_number is not None:
        enterprise["employeeNumber"] = attrs.employee_number
    if attrs.department is not None:
        enterprise["department"] = attrs.department
    if attrs.manager_id:
        enterprise["manager"] = {"value": attrs.manager_id}
    if enterprise:
        payload["schemas"].append(ENTERPRISE_SCHEMA)
        payload[ENTERPRISE_SCHEMA] = enterprise
    if attrs.email is not None:
        # As mapped: the downstream gets the address exactly as the profile holds it.
        payload["emails"] = [{"value": attrs.email, "type": "work", "primary": True}]
    _merge(payload, {k: v for k, v in attrs.extra.items() if k.casefold() not in _RESERVED})
    schemas = payload["schemas"]
    for key, value in payload.items():
        if key.startswith("urn:") and isinstance(value, Mapping) and key not in schemas:
            schemas.append(key)
    return payload


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``target`` (objects recursively), never carrying a password."""
    for key, value in extra.items():
        if key.casefold() == "password":
            continue
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value)
        elif isinstance(value, Mapping):
            nested: dict[str, Any] = {}
            _merge(nested, value)
            target[key] = nested
        else:
            target[key] = value


def _user_patch_operations(attrs: AccountAttributes) -> list[dict[str, Any]]:
    """Replace operations for every attribute that has a value (``active`` always).

    Attributes that are None are left alone: a remove of an absent attribute is refused by some
    servers, and PATCH mode exists precisely to touch only what Headwater manages.
    """
    payload = _user_payload(attrs)
    operations: list[dict[str, Any]] = []
    for key, value in payload.items():
        if key == "schemas":
            continue
        if key.startswith("urn:") and isinstance(value, Mapping):
            operations.extend(
                {"op": "replace", "path": f"{key}:{sub}", "value": sub_value}
                for sub, sub_value in value.items()
            )
        elif key == "name" and isinstance(value, Mapping):
            operations.extend(
                {"op": "replace", "path": f"name.{sub}", "value": sub_value}
                for sub, sub_value in value.items()
            )
        else:
            operations.append({"op": "replace", "path": key, "value": value})
    return operations


def _patch_body(operations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }


def _group_patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A Group PatchOp, validated by scim2-models so a malformed path never leaves the process."""
    try:
        model = PatchOp[Group](
            operations=[PatchOperation[Group].model_validate(op) for op in operations]
        )
    except ValidationError as exc:
        raise PermanentError(f"invalid group patch: {_truncate(str(exc), 300)}") from exc
    body: dict[str, Any] = model.model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    return body


def _group_payload(
    display_name: str, member_ids: Iterable[str], *, context: Context
) -> dict[str, Any]:
    members = [GroupMember(value=member) for member in member_ids]
    payload: dict[str, Any] = Group(display_name=display_name, members=members or None).model_dump(
        scim_ctx=context
    )
    # Always explicit: scim2-models drops an empty list, and some servers need the key.
    payload["members"] = [{"value": member.value} for member in members]
    return payload


def _member_filter(member_id: str) -> str:
    return f'members[value eq "{escape_filter_value(member_id)}"]'


def _removals(member_ids: Sequence[str], form: MemberRemoval) -> list[dict[str, Any]]:
    """Remove operations in the dialect's form (one per member, or one value list)."""
    if not member_ids:
        return []
    if form is MemberRemoval.VALUE_LIST:
        return [{"op": "remove", "path": "members", "value": [{"value": m} for m in member_ids]}]
    return [{"op": "remove", "path": _member_filter(member)} for member in member_ids]


def _spoken(body: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    """A PatchOp body as the dialect spells it: ``op`` casing, booleans as JSON or strings."""
    if dialect.op_case is OpCase.LOWER and dialect.booleans is BooleanEncoding.JSON:
        return body
    operations = []
    for operation in body.get("Operations", []):
        op = dict(operation)
        if dialect.op_case is OpCase.CAPITALISED and isinstance(op.get("op"), str):
            op["op"] = op["op"].capitalize()
        if dialect.booleans is BooleanEncoding.STRING and "value" in op:
            op["value"] = _as_text_booleans(op["value"])
        operations.append(op)
    return {**body, "Operations": operations}


def _as_text_booleans(value: Any) -> Any:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return {k: _as_text_booleans(v) for k, v in value.items()}
    return value


def _path(template: str, resource_id: str | None) -> str:
    if resource_id is None:
        return template
    return template.replace("{id}", quote(resource_id, safe=""))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _chunks(values: Sequence[str], size: int) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


# -- the connector ---------------------------------------------------------------------------


class ScimConnector:
    """One downstream SCIM service provider, reached through one pooled ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        settings: ProvisioningSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        scrubber: Scrubber | None = None,
        capabilities: Capabilities | None = None,
        group_locks: dict[str, asyncio.Lock] | None = None,
    ) -> None:
        """``transport`` defaults to an :class:`OutboundTransport` with the default outbound
        policy; ``scrubber`` holds the app's secrets, to keep them out of every error;
        ``capabilities`` are what the app announced (or was seen to refuse); ``group_locks``
        are shared with the other connectors of the same app in this process (one replacing
        another while a batch still sends through the old one)."""
        self.settings = settings
        self.capabilities = capabilities or Capabilities()
        #: The one place a dialect is read: every request below is shaped by it.
        self.dialect = effective(settings.switches(), self.capabilities, settings.patch_support)
        #: Set when the app answered 501 to a PATCH and a PUT did the change instead; the
        #: engine stores it so later passes go straight to PUT.
        self.patch_refused = False
        self._on_request = on_request
        self.scrubber = scrubber or Scrubber()
        #: Each request, all of it, whatever the app does (a server that accepts and then
        #: trickles or never answers cannot hold a worker longer than this).
        self._deadline = settings.request_timeout
        #: A PUT of a whole group is a read, a change and a write: two of them on one group at
        #: once (a rename beside a removal) would each write back what the other undid.
        self._group_locks: dict[str, asyncio.Lock] = group_locks if group_locks is not None else {}
        #: Set when the app answered 400 to a look-up of several userNames joined by ``or``;
        #: the engine stores it so later batches look accounts up one by one.
        self.or_filter_refused = False
        limits = bulk_limits(self.capabilities, settings.bulk_support)
        #: Writes gathered into Bulk requests, when the app takes them (``connectors.bulk``).
        self._bulk = BulkQueue(self._send_bulk, limits) if limits is not None else None
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            transport=transport or OutboundTransport(OutboundPolicy()),
            # httpx times single reads; the deadline above bounds the whole request first.
            timeout=httpx.Timeout(settings.request_timeout + 1, connect=settings.connect_timeout),
            follow_redirects=False,
            headers={
                "User-Agent": f"Headwater SCIM Client/{__version__}",
                "Accept": f"{SCIM_MEDIA_TYPE}, application/json",
                "Content-Type": SCIM_MEDIA_TYPE,
            },
        )
        self._client._cookies = _SetCookiesOnly()
        #: Requests go to absolute URLs built here: httpx's merging of a relative one into
        #: ``base_url`` parses twice, about two thirds of building a request.
        self._base = str(self._client.base_url.copy_with(fragment=None))

    def __repr__(self) -> str:
        # The base URL only: never the auth object or headers.
        url = self._client.base_url.copy_with(username=None, password=None)
        return f"ScimConnector({str(url)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def _batch_size(self) -> int:
        return min(max(1, self.settings.membership_batch_size), self.dialect.max_changes)

    @property
    def bulk_operations(self) -> int:
        """Operations one Bulk request carries; 0 when writes go one request each."""
        if self._bulk is None or self._bulk.refused:
            return 0
        return self._bulk.limits.operations

    @property
    def bulk_refused(self) -> bool:
        """Whether the app answered that it takes no Bulk request (stored by the engine)."""
        return self._bulk is not None and self._bulk.refused

    @property
    def lookup_batch(self) -> int:
        """userNames one look-up asks for (``lookupBatchSize``, within the app's
        ``filter.maxResults``); 0 when accounts are looked up one by one."""
        size = min(self.settings.lookup_batch_size, MAX_LOOKUP_BATCH, self._page_cap)
        if (
            size < 2
            or self.or_filter_refused
            or self.capabilities.filter is False
            or self.capabilities.or_filter_refused_at is not None
        ):
            return 0
        return size

    @property
    def _page_cap(self) -> int:
        """Largest ``count`` to ask for: within the app's ``filter.maxResults``."""
        announced = self.capabilities.filter_max_results
        return MAX_BATCH_SIZE if not announced else min(announced, MAX_BATCH_SIZE)

    async def _send_bulk(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self._send("POST", "/Bulk", body=body)

    @property
    def _check_route(self) -> MemberCheck:
        """How one account's membership may be asked about; ``none`` where a full push
        overwrites the whole membership anyway (a PUT, or a PATCH replace)."""
        if self.dialect.group_writes is GroupWrites.PUT or self.dialect.members_replace:
            return MemberCheck.NONE
        return self.dialect.member_check

    async def _patch(self, template: str, resource_id: str, body: dict[str, Any]) -> Any:
        """A PATCH in the app's dialect."""
        return await self._call(
            "PATCH", template, resource_id=resource_id, body=_spoken(body, self.dialect)
        )

    # -- transport ---------------------------------------------------------------------------

    def _report(self, method: str, template: str, status: int | None, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(method, template, status, seconds)
        except Exception:  # a metrics hook must never fail a provisioning call
            log.exception("on_request hook failed")

    async def _send(
        self,
        method: str,
        template: str,
        *,
        resource_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        probing: bool = False,
    ) -> httpx.Response:
        """Send one request; transport failures come back as connector errors."""
        path = _path(template, resource_id)
        if params:
            # %20 rather than '+': some servers do not decode '+' in a filter.
            path = f"{path}?{urlencode(params, quote_via=quote)}"
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        status: int | None = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.request(
                    method, self._base + path.lstrip("/"), content=content
                )
            status = response.status_code
            return response
        except DownstreamError:  # raised by an auth flow (OAuth token endpoint)
            raise
        except TimeoutError as exc:
            message = f"{method} {template}: no answer within {self._deadline:g} s"
            raise TransientError(message) from exc
        except httpx.HTTPError as exc:
            raise transport_error(
                exc, method, template, probing=probing, scrub=self.scrubber
            ) from exc
        finally:
            self._report(method, template, status, time.perf_counter() - started)

    async def _call(
        self,
        method: str,
        template: str,
        *,
        resource_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """Send a request and return its JSON object (None for no body, or a tolerated 404).
        A write goes in a Bulk request when the app takes them; its answer is read alike."""
        response = None
        if self._bulk is not None and (method, template) in _BULK_WRITES:
            response = await self._bulk.submit(method, _path(template, resource_id), body)
        if response is None:
            response = await self._send(
                method, template, resource_id=resource_id, params=params, body=body
            )
        if response.status_code == 404 and missing_ok:
            return None
        if not 200 <= response.status_code < 300:
            raise status_error(response, method, template, self.scrubber)
        return self._json(response, method, template)

    @staticmethod
    def _json(response: httpx.Response, method: str, template: str) -> dict[str, Any] | None:
        if response.status_code == 204 or not response.content.strip():
            return None
        try:
            payload = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransientError(
                f"{method} {template}: malformed response (HTTP {response.status_code}, not JSON)",
                status=response.status_code,
            ) from exc
        if not isinstance(payload, dict):
            raise TransientError(
                f"{method} {template}: malformed response (HTTP {response.status_code}, "
                "not a JSON object)",
                status=response.status_code,
            )
        return payload

    @staticmethod
    def _parse(
        parse: Callable[[Any], _T], payload: Any, method: str, template: str, status: int = 200
    ) -> _T:
        try:
            return parse(payload)
        except _MalformedError as exc:
            raise TransientError(
                f"{method} {template}: malformed response ({exc})", status=status
            ) from exc

    # -- parsing -----------------------------------------------------------------------------

    @staticmethod
    def _account(payload: Any) -> RemoteAccount:
        if not isinstance(payload, Mapping):
            raise _MalformedError("user is not a JSON object")
        resource_id = _as_id(_field(payload, "id"))
        user_name = _field(payload, "userName")
        if resource_id is None:
            raise _MalformedError("user without id")
        if not isinstance(user_name, str):
            raise _MalformedError("user without userName")
        # RFC 7643 makes `active` optional; a server that omits it has no notion of inactive.
        return RemoteAccount(
            id=resource_id,
            user_name=user_name,
            active=_as_bool(_field(payload, "active"), default=True),
        )

    def _group(self, payload: Any) -> RemoteGroup:
        if not isinstance(payload, Mapping):
            raise _MalformedError("group is not a JSON object")
        resource_id = _as_id(_field(payload, "id"))
        display_name = _field(payload, "displayName")
        if resource_id is None:
            raise _MalformedError("group without id")
        if not isinstance(display_name, str):
            raise _MalformedError("group without displayName")
        raw_members = _field(payload, "members")
        member_ids: frozenset[str] | None
        if raw_members is None:
            # Absent is unknown, not empty: some apps never return members, some drop the
            # attribute of an empty group; nothing may be removed or re-added on that basis.
            member_ids = None
        elif isinstance(raw_members, list):
            values = set()
            for member in raw_members:
                value = _as_id(_field(member, "value")) if isinstance(member, Mapping) else None
                if value is None:
                    raise _MalformedError("group member without value")
                values.add(value)
            member_ids = frozenset(values)
        else:
            raise _MalformedError("group members is not a list")
        return RemoteGroup(id=resource_id, display_name=display_name, member_ids=member_ids)

    @staticmethod
    def _resources(payload: Mapping[str, Any] | None) -> tuple[list[Any], int | None]:
        if payload is None:
            return [], None
        resources = _field(payload, "Resources")
        if resources is None:
            resources = []
        if not isinstance(resources, list):
            raise _MalformedError("Resources is not a list")
        return resources, _as_int(_field(payload, "totalResults"))

    # -- paging and search -------------------------------------------------------------------

    async def _search(self, template: str, attribute: str, value: str) -> list[Any]:
        params: dict[str, str | int] = {
            "filter": f'{attribute} eq "{escape_filter_value(value)}"',
            "startIndex": 1,
            "count": min(2, self._page_cap),
        }
        payload = await self._call("GET", template, params=params, missing_ok=True)
        resources, _ = self._parse(self._resources, payload, "GET", template)
        return resources

    @staticmethod
    def _best_match(resources: list[Any], attribute: str, value: str) -> Any | None:
        """The result that really matches: exact first, then case-insensitive.

        Guards against servers that ignore or loosely apply the filter: linking the wrong account
        would be worse than finding none.
        """
        folded = value.casefold()
        loose = None
        for resource in resources:
            if not isinstance(resource, Mapping):
                continue
            candidate = _field(resource, attribute)
            if candidate == value:
                return resource
            if loose is None and isinstance(candidate, str) and candidate.casefold() == folded:
                loose = resource
        return loose

    # -- connection --------------------------------------------------------------------------

    @_scrubbed
    async def test_connection(self) -> Capabilities:
        """Check address and credentials; raise AppUnavailableError with a reason if unusable.
        Return what the app announces in its ``/ServiceProviderConfig``.

        ``/ServiceProviderConfig`` proves the base URL, but RFC 7644 §4 lets it skip
        authentication, so ``/Users`` is always read as well to prove the credentials.
        """
        config = await self._send("GET", "/ServiceProviderConfig", probing=True)
        if config.status_code != 404 and not 200 <= config.status_code < 300:
            raise status_error(config, "GET", "/ServiceProviderConfig", self.scrubber)
        try:
            announced = config.json() if config.status_code != 404 else None
        except (ValueError, UnicodeDecodeError):
            announced = None
        capabilities = parse_service_provider_config(announced, datetime.now(UTC))
        params: dict[str, str | int] = {"startIndex": 1, "count": 1}
        users = await self._send("GET", "/Users", params=params, probing=True)
        if users.status_code == 404:
            raise AppUnavailableError(
                "GET /Users: not found (HTTP 404); check the base URL", status=404
            )
        if not 200 <= users.status_code < 300:
            raise status_error(users, "GET", "/Users", self.scrubber)
        try:
            payload = users.json()
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, Mapping) or (
            _field(payload, "Resources") is None and _field(payload, "totalResults") is None
        ):
            raise AppUnavailableError(
                "GET /Users: the answer is not a SCIM ListResponse; check the base URL",
                status=users.status_code,
            )
        return capabilities

    # -- users -------------------------------------------------------------------------------

    @_scrubbed
    async def find_user(self, user_name: str) -> RemoteAccount | None:
        """The account whose userName equals ``user_name``, or None."""
        resources = await self._search("/Users", "userName", user_name)
        match = self._best_match(resources, "userName", user_name)
        if match is None:
            return None
        return self._parse(self._account, match, "GET", "/Users")

    @_scrubbed
    async def find_users(self, user_names: Sequence[str]) -> dict[str, RemoteAccount | None]:
        """The accounts for many userNames in one ``GET /Users?filter=userName eq "a" or ...``:
        an account, or None where the app has none. A name left out of the answer is unknown
        (look it up alone): the app's answer was cut short, or did not apply the filter. A 400
        means the app refuses such a filter: remembered, and every name is left unknown."""
        names = _unique(user_names)
        if not names or self.lookup_batch == 0:
            return {}
        expression = " or ".join(f'userName eq "{escape_filter_value(n)}"' for n in names)
        params: dict[str, str | int] = {
            "filter": expression,
            "startIndex": 1,
            "count": min(len(names) * 2, self._page_cap),
        }
        try:
            payload = await self._call("GET", "/Users", params=params, missing_ok=True)
        except PermanentError as exc:
            if exc.status != 400:
                raise
            self.or_filter_refused = True
            log.info("the app refuses userName filters joined by or; looking up one by one")
            return {}
        resources, total = self._parse(self._resources, payload, "GET", "/Users")
        complete = total is None or total <= len(resources)
        found: dict[str, RemoteAccount | None] = {}
        for name in names:
            match = self._best_match(resources, "userName", name)
            if match is not None:
                found[name] = self._parse(self._account, match, "GET", "/Users")
            elif complete and self._filtered(resources, names):
                found[name] = None
        return found

    @staticmethod
    def _filtered(resources: list[Any], names: Sequence[str]) -> bool:
        """Whether the app applied the filter: every account it returned is one asked for."""
        asked = {n.casefold() for n in names}
        for resource in resources:
            user_name = _field(resource, "userName") if isinstance(resource, Mapping) else None
            if not isinstance(user_name, str) or user_name.casefold() not in asked:
                return False
        return True

    @_scrubbed
    async def get_user(self, user_id: str) -> RemoteAccount | None:
        payload = await self._call("GET", "/Users/{id}", resource_id=user_id, missing_ok=True)
        if payload is None:
            return None
        return self._parse(self._account, payload, "GET", "/Users/{id}")

    @_scrubbed
    async def create_user(self, attrs: AccountAttributes) -> RemoteAccount:
        """POST the account; a 409 raises ConflictError so the caller can look it up and link."""
        body = _user_payload(attrs)
        payload = await self._call("POST", "/Users", body=body)
        return self._parse(self._account, payload, "POST", "/Users", 201)

    @_scrubbed
    async def replace_user(self, user_id: str, attrs: AccountAttributes) -> RemoteAccount:
        body = {"id": user_id, **_user_payload(attrs)}
        payload = await self._call("PUT", "/Users/{id}", resource_id=user_id, body=body)
        if payload is None:
            return RemoteAccount(id=user_id, user_name=attrs.user_name, active=attrs.active)
        return self._parse(self._account, payload, "PUT", "/Users/{id}")

    @_scrubbed
    async def patch_user(self, user_id: str, attrs: AccountAttributes) -> RemoteAccount | None:
        """PATCH replace of every mapped attribute; None when the server answers 204. An app
        known to refuse PATCH gets a PUT of the account; a 501 is answered the same way, at once
        (RFC 7644 §3.12), and remembered."""
        if self.dialect.user_writes is GroupWrites.PUT:
            return await self.replace_user(user_id, attrs)
        body = _patch_body(_user_patch_operations(attrs))
        try:
            payload = await self._patch("/Users/{id}", user_id, body)
        except PermanentError as exc:
            if exc.status != 501:
                raise
            account = await self.replace_user(user_id, attrs)
            self.patch_refused = True
            return account
        if payload is None:
            return None
        return self._parse(self._account, payload, "PATCH", "/Users/{id}")

    @_scrubbed
    async def set_active(self, user_id: str, active: bool) -> None:
        """Deactivate or reactivate the account: one PATCH, or for an app that refuses PATCH
        (known, or answered 501 now) a PUT of the whole account as read, ``active`` changed."""
        if self.dialect.user_writes is GroupWrites.PUT:
            await self._put_active(user_id, active)
            return
        body = _patch_body([{"op": "replace", "path": "active", "value": active}])
        try:
            await self._patch("/Users/{id}", user_id, body)
        except PermanentError as exc:
            if exc.status != 501:
                raise
            await self._put_active(user_id, active, refused=exc)
            self.patch_refused = True

    async def _put_active(
        self, user_id: str, active: bool, *, refused: PermanentError | None = None
    ) -> None:
        """Read the account and PUT it back with ``active`` set: a PUT of ``active`` alone
        would clear every other attribute. Server-owned attributes (``meta``, the read-only
        ``groups``) are left out; an answer showing ``active`` unchanged is an error, not a
        success (an app may ignore what it does not take)."""
        current = await self._call("GET", "/Users/{id}", resource_id=user_id, missing_ok=True)
        if current is None:
            raise NotFoundError("GET /Users/{id}: not found (HTTP 404)", status=404)
        body = {k: v for k, v in current.items() if k.casefold() not in ("meta", "groups")}
        body["id"] = user_id
        body["active"] = active
        answer = await self._call("PUT", "/Users/{id}", resource_id=user_id, body=body)
        held = _field(answer, "active") if answer is not None else None
        if held is not None and _as_bool(held, default=active) is not active:
            cause = f"{refused.message}; " if refused is not None else ""
            raise PermanentError(
                f"{cause}PUT /Users/{{id}}: the app kept active={not active}",
                status=refused.status if refused is not None else None,
                detail=refused.detail if refused is not None else "",
            )

    @_scrubbed
    async def delete_user(self, user_id: str) -> None:
        """DELETE the account; one that is already gone counts as deleted."""
        await self._call("DELETE", "/Users/{id}", resource_id=user_id, missing_ok=True)

    # -- groups ------------------------------------------------------------------------------

    @_scrubbed
    async def find_group(self, display_name: str) -> RemoteGroup | None:
        resources = await self._search("/Groups", "displayName", display_name)
        match = self._best_match(resources, "displayName", display_name)
        if match is None:
            return None
        return self._parse(self._group, match, "GET", "/Groups")

    @_scrubbed
    async def get_group(self, group_id: str) -> RemoteGroup | None:
        payload = await self._call("GET", "/Groups/{id}", resource_id=group_id, missing_ok=True)
        if payload is None:
            return None
        return self._parse(self._group, payload, "GET", "/Groups/{id}")

    @_scrubbed
    async def has_member(self, group_id: str, member_id: str) -> bool | None:
        """Whether the account is in the group, for apps that hide members on read; None when
        the app offers no way to tell (nothing is sent then).

        ``group-filter``: ``GET /Groups?filter=id eq "G" and members eq "U"`` answers the group
        only when the account is in it (the form AWS IAM Identity Center documents; it answers
        404 for an account it does not know, which is not a member either).
        """
        if self._check_route is not MemberCheck.GROUP_FILTER:
            return None
        query = (
            f'id eq "{escape_filter_value(group_id)}" and '
            f'members eq "{escape_filter_value(member_id)}"'
        )
        payload = await self._call("GET", "/Groups", params={"filter": query}, missing_ok=True)
        resources, _ = self._parse(self._resources, payload, "GET", "/Groups")
        return any(
            isinstance(r, Mapping) and _as_id(_field(r, "id")) == group_id for r in resources
        )

    @_scrubbed
    async def groups_of(self, member_id: str) -> frozenset[str] | None:
        """The ids of the groups the account is in, read from the account (``user-groups``);
        None when the app offers no such read (nothing is sent then). An account read without
        ``groups`` is in none (RFC 7643 §2.5: unassigned and empty are the same state), and
        an account that is gone is in none either."""
        if self._check_route is not MemberCheck.USER_GROUPS:
            return None
        payload = await self._call(
            "GET",
            "/Users/{id}",
            resource_id=member_id,
            params={"attributes": "groups"},
            missing_ok=True,
        )
        raw = _field(payload, "groups") if payload is not None else None
        if raw is None:
            return frozenset()
        if not isinstance(raw, list):
            raise TransientError(
                "GET /Users/{id}: malformed response (groups is not a list)", status=200
            )
        values = (_as_id(_field(g, "value")) if isinstance(g, Mapping) else None for g in raw)
        return frozenset(v for v in values if v is not None)

    @_scrubbed
    async def create_group(self, display_name: str) -> RemoteGroup:
        """POST an empty group; a 409 raises ConflictError so the caller can find and link it."""
        body = _group_payload(display_name, (), context=Context.RESOURCE_CREATION_REQUEST)
        payload = await self._call("POST", "/Groups", body=body)
        return self._parse(self._group, payload, "POST", "/Groups", 201)

    @_scrubbed
    async def rename_group(self, group_id: str, display_name: str) -> None:
        """Rename a group: one PATCH, or for PUT apps a PUT carrying the current members
        (read first: a PUT without them would empty the group)."""
        if self.dialect.group_writes is GroupWrites.PATCH:
            body = _group_patch([{"op": "replace", "path": "displayName", "value": display_name}])
            try:
                await self._patch("/Groups/{id}", group_id, body)
                return
            except PermanentError as exc:
                if exc.status != 501:
                    raise
        async with self._group_lock(group_id):
            group = await self.get_group(group_id)
            if group is None:
                raise NotFoundError("The group no longer exists in the app", status=404)
            members = group.member_ids
            if members is None and self.dialect.members_returned:
                # The app returns members when it has any: this group has none.
                members = frozenset()
            if members is None:
                raise PermanentError(
                    "Cannot rename: the app takes only PUT and does not return members"
                )
            await self.replace_group(group_id, display_name, sorted(members))

    def _group_lock(self, group_id: str) -> asyncio.Lock:
        return self._group_locks.setdefault(group_id, asyncio.Lock())

    @_scrubbed
    async def replace_group(
        self, group_id: str, display_name: str, member_ids: Sequence[str]
    ) -> None:
        """PUT the whole group (name and every member), for apps that only take PUT."""
        body = {
            "id": group_id,
            **_group_payload(
                display_name, _unique(member_ids), context=Context.RESOURCE_REPLACEMENT_REQUEST
            ),
        }
        await self._call("PUT", "/Groups/{id}", resource_id=group_id, body=body)

    async def _put_members(
        self,
        group_id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None,
    ) -> None:
        """The change as one PUT of the whole group: the members it holds now (read back) with
        the change applied, or, for an app that hides its members, the whole membership
        Headwater wants (``whole``)."""
        async with self._group_lock(group_id):
            group = await self.get_group(group_id)
            if group is None:
                raise NotFoundError("The group no longer exists in the app", status=404)
            if group.member_ids is not None:
                keep = (group.member_ids - set(remove)) | set(add)
                await self.replace_group(group_id, group.display_name, sorted(keep))
            elif whole is not None:
                await self.replace_group(group_id, group.display_name, whole.member_ids)
            elif self.dialect.members_returned:
                # The app returns members when it has any: this group has none.
                await self.replace_group(group_id, group.display_name, _unique(add))
            else:
                raise PermanentError(
                    "Cannot change members: the app takes only PUT for groups and does not return "
                    "their members"
                )

    async def _after_refused_patch(
        self,
        group_id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None,
        refused: PermanentError,
    ) -> None:
        """A PATCH answered 501: do the same change by PUT at once, and check it took (some
        apps ignore members in a PUT) before remembering that PATCH is unsupported."""
        await self._put_members(group_id, add=add, remove=remove, whole=whole)
        await self._check_put(group_id, present=add, absent=remove, refused=refused)

    async def _check_put(
        self,
        group_id: str,
        *,
        present: Sequence[str],
        absent: Sequence[str],
        refused: PermanentError,
    ) -> None:
        if self.dialect.members_returned:
            group = await self.get_group(group_id)
            held = group.member_ids if group is not None else None
            if held is not None and (set(absent) & held or set(present) - held):
                raise PermanentError(
                    f"{refused.message}; a PUT of the group was ignored too: choose the app's "
                    "dialect (such as entra-style)",
                    status=501,
                    detail=refused.detail,
                ) from None
        self.patch_refused = True

    @_scrubbed
    async def patch_members(
        self,
        group_id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None = None,
    ) -> int:
        """Apply membership changes in batches; return the number of requests sent.

        Removals go first so a batch cap never leaves a group briefly holding both the old and the
        new members (which some apps price or limit). Each request carries at most
        ``membership_batch_size`` changes (and no more than the dialect's cap). Apps that take
        groups only by PUT get one PUT (see ``_put_members``); a 501 to a PATCH is answered the
        same way, at once.
        """
        removed, added = _unique(remove), _unique(add)
        if not removed and not added:
            return 0
        if self.dialect.group_writes is GroupWrites.PUT:
            await self._put_members(group_id, add=added, remove=removed, whole=whole)
            return 1
        changes: list[tuple[str, str]] = [("remove", m) for m in removed]
        changes += [("add", m) for m in added]
        sent = 0
        for start in range(0, len(changes), self._batch_size):
            batch = changes[start : start + self._batch_size]
            operations = _removals(
                [m for kind, m in batch if kind == "remove"], self.dialect.member_removal
            )
            values = [{"value": member} for kind, member in batch if kind == "add"]
            if values:
                operations.append({"op": "add", "path": "members", "value": values})
            try:
                await self._patch("/Groups/{id}", group_id, _group_patch(operations))
            except PermanentError as exc:
                if exc.status != 501:
                    raise
                rest = changes[start:]
                await self._after_refused_patch(
                    group_id,
                    add=[m for kind, m in rest if kind == "add"],
                    remove=[m for kind, m in rest if kind == "remove"],
                    whole=whole,
                    refused=exc,
                )
                return sent + 1
            sent += 1
        return sent

    @_scrubbed
    async def remove_members(
        self, group_id: str, member_ids: Sequence[str], *, whole: GroupState | None = None
    ) -> None:
        """Take members out of a group; a group that is gone holds nobody any more."""
        try:
            await self.patch_members(group_id, add=[], remove=member_ids, whole=whole)
        except NotFoundError:
            return

    @_scrubbed
    async def replace_members(
        self,
        group_id: str,
        display_name: str,
        member_ids: Sequence[str],
        *,
        recorded: Sequence[str] = (),
    ) -> int:
        """Make the group hold ``member_ids``; return the number of requests sent.

        PUT apps: one PUT. PATCH apps that allow a whole replace: a replace with the first batch,
        then adds for the rest. Apps that refuse a whole replace: the members recorded as pushed
        but no longer wanted are removed and every wanted member is added (adds of a member
        already there change nothing), in batches.
        """
        members = _unique(member_ids)
        if self.dialect.group_writes is GroupWrites.PUT:
            await self.replace_group(group_id, display_name, members)
            return 1
        if not self.dialect.members_replace:
            gone = [m for m in _unique(recorded) if m not in set(members)]
            whole = GroupState(display_name, tuple(members))
            return await self.patch_members(group_id, add=members, remove=gone, whole=whole)
        batches = _chunks(members, self._batch_size) or [[]]
        sent = 0
        for index, batch in enumerate(batches):
            value = [{"value": member} for member in batch]
            operation = {
                "op": "replace" if index == 0 else "add",
                "path": "members",
                "value": value,
            }
            try:
                await self._patch("/Groups/{id}", group_id, _group_patch([operation]))
            except PermanentError as exc:
                if exc.status != 501:
                    raise
                await self.replace_group(group_id, display_name, members)
                await self._check_put(group_id, present=members, absent=(), refused=exc)
                return sent + 1
            sent += 1
        return sent

    @_scrubbed
    async def delete_group(self, group_id: str) -> None:
        """DELETE the group; one that is already gone counts as deleted."""
        await self._call("DELETE", "/Groups/{id}", resource_id=group_id, missing_ok=True)

    # -- listing (``engine.ports.AccountLister``) -------------------------------------------

    @property
    def listing_page_size(self) -> int:
        """Pages of a listing stay within the app's ``filter.maxResults``."""
        return self._page_cap

    async def _list_page(
        self, template: str, start_index: int, count: int, extra: Mapping[str, str] | None = None
    ) -> tuple[list[Any], int | None]:
        params: dict[str, str | int] = {
            "startIndex": max(1, start_index),
            "count": max(1, min(count, self._page_cap)),
            **(extra or {}),
        }
        payload = await self._call("GET", template, params=params)
        return self._parse(self._resources, payload, "GET", template)

    @_scrubbed
    async def list_accounts(self, start_index: int, count: int) -> ListingPage[ListedAccount]:
        """One page of ``GET /Users`` (``startIndex``/``count``), read for matching."""
        resources, total = await self._list_page("/Users", start_index, count)
        items = tuple(self._parse(_listed_account, r, "GET", "/Users") for r in resources)
        return ListingPage(items, total)

    @_scrubbed
    async def list_groups(self, start_index: int, count: int) -> ListingPage[ListedGroup]:
        """One page of ``GET /Groups``, members left out where the app allows."""
        resources, total = await self._list_page(
            "/Groups", start_index, count, {"excludedAttributes": "members"}
        )
        items = tuple(self._parse(_listed_group, r, "GET", "/Groups") for r in resources)
        return ListingPage(items, total)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _primary_email(emails: Any) -> str | None:
    """The primary email, else the first one with a value."""
    if not isinstance(emails, list):
        return None
    found = [e for e in emails if isinstance(e, Mapping) and _text(_field(e, "value"))]
    for entry in found:
        if _field(entry, "primary") is True:
            return _text(_field(entry, "value"))
    return _text(_field(found[0], "value")) if found else None


def _listed_account(payload: Any) -> ListedAccount:
    account = ScimConnector._account(payload)
    enterprise = _field(payload, ENTERPRISE_SCHEMA)
    employee = _field(enterprise, "employeeNumber") if isinstance(enterprise, Mapping) else None
    return ListedAccount(
        id=account.id,
        user_name=account.user_name,
        active=account.active,
        external_id=_text(_field(payload, "externalId")),
        email=_primary_email(_field(payload, "emails")),
        employee_number=_text(employee),
        display_name=_text(_field(payload, "displayName")),
    )


def _listed_group(payload: Any) -> ListedGroup:
    if not isinstance(payload, Mapping):
        raise _MalformedError("group is not a JSON object")
    resource_id = _as_id(_field(payload, "id"))
    display_name = _field(payload, "displayName")
    if resource_id is None or not isinstance(display_name, str):
        raise _MalformedError("group without id or displayName")
    return ListedGroup(resource_id, display_name)
