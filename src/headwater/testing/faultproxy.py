"""A fault-injecting HTTP/1.1 reverse proxy for failure tests against a real SCIM server.

Put :class:`FaultProxy` between the client under test and a real downstream (for example
:class:`headwater.testing.scimserver.ScimServerProcess`), point the client at
``proxy.base_url``, and add fault rules while the test runs::

    proxy.status(503, method="POST", path=r"/Users$", times=1)
    proxy.reset(method="PATCH", path=r"/Groups/", probability=0.3)

It is written on asyncio streams rather than on an ASGI framework because some faults
happen below HTTP: a connection reset (RST, via ``SO_LINGER 0``) or an outage that drops
connections. Forwarding uses one keep-alive ``httpx.AsyncClient``; bodies are buffered
(SCIM bodies are small), and upstream chunked responses are re-sent with Content-Length.

Rules are checked in the order they were added; the first rule that matches the request
(method, path regex searched in the path without query, and a probability draw from the
rule's own seeded RNG) is applied, and only that one. ``times=N`` applies a rule to the
next N matching requests only. A rule with ``after_upstream=True`` lets the request reach
the upstream first and then spoils the answer: the downstream changed, the client does
not know it (the case that produces duplicate creates in naive clients).

Every request is logged (:class:`LoggedRequest`), with whether it reached the upstream,
so tests can assert, say, that one ``POST /Users`` per ``userName`` was forwarded.

Control methods are thread-safe. :class:`FaultProxyThread` runs the proxy on its own
event loop in a daemon thread, for sync tests and tests whose client is a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import http
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx

__all__ = ["FaultControls", "FaultProxy", "FaultProxyThread", "FaultRule", "LoggedRequest"]

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json"
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_HEAD_BYTES = 1 << 20
# Per RFC 9110 section 7.6.1, plus framing headers the proxy recomputes itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "expect",
    }
)
_MALFORMED_BODY = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "8f1c'

OutageMode = Literal["reset", "503"]
Body = bytes | str | Mapping[str, Any] | Sequence[Any] | None


# --------------------------------------------------------------------------------------
# Request log


@dataclass(eq=False)
class LoggedRequest:
    """One request the proxy received, and what became of it.

    ``connection`` numbers the client connections, to tell keep-alive reuse from new
    connections. ``fault`` is the label of the fault applied (``"status:503"``, ``"reset"``,
    ``"delay:0.5"``, ``"malformed_json"``, ``"reject_members:400"``, ``"outage:reset"``,
    ...) or None. ``status`` is what the client got (None when the connection was reset
    or closed). ``forwarded`` is set once the proxy sends the request upstream (so a
    request that then failed upstream still counts: it may have been processed);
    ``upstream_status`` is what the upstream answered, ``error`` why it did not. Fields
    are filled in as the request progresses and are final once ``done`` is set, which
    happens before the client gets its answer.
    """

    seq: int
    connection: int
    time: float
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    fault: str | None = None
    rule: FaultRule | None = None
    forwarded: bool = False
    upstream_status: int | None = None
    status: int | None = None
    error: str | None = None
    done: bool = False
    duration: float | None = None
    #: The upstream's answer to a ``POST /Bulk`` (whose operations each have an outcome).
    upstream_body: bytes | None = None

    @property
    def outcome(self) -> str:
        """The fault label, else the upstream status, else the error: one word for asserts."""
        if self.fault is not None:
            return self.fault
        if self.upstream_status is not None:
            return str(self.upstream_status)
        return self.error or "pending"

    def header(self, name: str) -> str | None:
        """Return the first request header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def json(self) -> Any:
        """Return the request body parsed as JSON (raises ValueError if it is not JSON)."""
        return json.loads(self.body)


# --------------------------------------------------------------------------------------
# Fault actions and rules


@dataclass(frozen=True)
class _Answer:
    """Answer the client with this response instead of the upstream's."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    label: str


@dataclass(frozen=True)
class _Delay:
    seconds: float
    label: str


@dataclass(frozen=True)
class _Reset:
    label: str


@dataclass(frozen=True)
class _Rewrite:
    """Forward, then rewrite the upstream's JSON answer (a vendor's way of answering)."""

    rewrite: Callable[[Any], Any]
    label: str


_Action = _Answer | _Delay | _Reset | _Rewrite


@dataclass(eq=False)
class FaultRule:
    """A fault rule, returned by the control methods so tests can inspect or remove it.

    ``hits`` counts the requests it was applied to; ``remaining`` is None for unlimited.
    """

    kind: str
    method: str | None
    path: str | None
    probability: float
    times: int | None
    after_upstream: bool
    remaining: int | None = field(init=False, default=None)
    hits: int = field(init=False, default=0)
    _make: Callable[[random.Random], _Action] = field(
        init=False, repr=False, default=lambda _rng: _Reset("reset")
    )
    _body_match: Callable[[bytes], bool] | None = field(init=False, repr=False, default=None)
    _query_match: Callable[[str], bool] | None = field(init=False, repr=False, default=None)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, default=None)
    _rng: random.Random = field(init=False, repr=False, default_factory=random.Random)

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0

    def _matches(self, method: str, path: str, body: bytes, query: str = "") -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self._pattern is not None and not self._pattern.search(path):
            return False
        if self._query_match is not None and not self._query_match(query):
            return False
        return self._body_match is None or self._body_match(body)


def _listed_in(resource: Any, ids: frozenset[str]) -> bool:
    return isinstance(resource, dict) and resource.get("id") in ids


def _encode_body(body: Body) -> tuple[bytes, str | None]:
    """Return the bytes of an answer body and the content type it implies."""
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode(), None
    return json.dumps(body).encode(), SCIM_JSON


def _scim_error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"schemas": [SCIM_ERROR_SCHEMA], "status": str(status)}
    if scim_type:
        error["scimType"] = scim_type
    error["detail"] = detail
    return error


def _retry_after_value(value: float | str | dt.datetime) -> str:
    """Render Retry-After as delay-seconds, or as an HTTP date for a datetime."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)
    if isinstance(value, str):
        return value
    return str(max(0, math.ceil(value)))


def _answer(
    status: int,
    body: Body,
    label: str,
    *,
    content_type: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> _Answer:
    if body is None and status >= 400:
        body = _scim_error(status, f"{label} injected by FaultProxy")
    data, implied = _encode_body(body)
    pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    ctype = content_type or implied or ("text/plain; charset=utf-8" if data else None)
    if ctype and not any(k.lower() == b"content-type" for k, _ in pairs):
        pairs.append((b"content-type", ctype.encode("latin-1")))
    return _Answer(status, tuple(pairs), data, label)


def _added_member_ids(body: bytes) -> set[str]:
    """Return the member ids a SCIM PATCH body adds to a group.

    Understands ``{"op": "add", "path": "members", "value": [{"value": id}]}`` and the
    path-less ``{"op": "add", "value": {"members": [...]}}`` forms of RFC 7644 3.5.2.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return set()
    operations = document.get("Operations") if isinstance(document, dict) else None
    found: set[str] = set()
    if not isinstance(operations, list):
        return found
    for operation in operations:
        if not isinstance(operation, dict) or str(operation.get("op", "")).lower() != "add":
            continue
        value = operation.get("value")
        path = operation.get("path")
        if isinstance(path, str):
            if not path.lower().startswith("members"):
                continue
            members: Any = value
        elif isinstance(value, dict):
            members = next((v for k, v in value.items() if k.lower() == "members"), None)
        else:
            continue
        items = members if isinstance(members, list) else [members]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("value"), str):
                found.add(item["value"])
    return found


def _operations(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    operations = document.get("Operations") if isinstance(document, dict) else None
    if not isinstance(operations, list):
        return []
    return [op for op in operations if isinstance(op, dict)]


def _member_changes(body: bytes) -> int:
    """How many members a group PATCH adds, removes or replaces."""
    count = 0
    for operation in _operations(body):
        path = str(operation.get("path") or "")
        value = operation.get("value")
        if path.lower().startswith("members["):
            count += 1
        elif path.lower() == "members":
            count += len(value) if isinstance(value, list) else 1
        elif not path and isinstance(value, dict):
            members = next((v for k, v in value.items() if k.lower() == "members"), None)
            count += len(members) if isinstance(members, list) else 0
    return count


def _replaces_all_members(body: bytes) -> bool:
    """``replace`` of ``members`` (with a path or as a path-less object), or ``remove`` of
    ``members`` with no value."""
    for operation in _operations(body):
        op = str(operation.get("op", "")).lower()
        path = str(operation.get("path") or "").lower()
        value = operation.get("value")
        if op == "replace" and path == "members":
            return True
        if (
            op == "replace"
            and not path
            and isinstance(value, dict)
            and any(k.lower() == "members" for k in value)
        ):
            return True
        if op == "remove" and path == "members" and not value:
            return True
    return False


# --------------------------------------------------------------------------------------
# Shared state: rules, outage window, request log


class _Plan:
    """The rules, outage window and request log, shared by the proxy and its controllers."""

    def __init__(self, seed: int | None) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rules: list[FaultRule] = []
        self.log: list[LoggedRequest] = []
        self.seq = 0
        self.connections = 0
        self.outage_mode: OutageMode | None = None
        self.outage_until: float | None = None

    def add(self, rule: FaultRule, seed: int | None) -> FaultRule:
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {rule.probability}")
        if rule.times is not None and rule.times < 0:
            raise ValueError(f"times must be >= 0, got {rule.times}")
        rule.remaining = rule.times
        rule._pattern = re.compile(rule.path) if rule.path is not None else None
        rule.method = rule.method.upper() if rule.method else None
        with self.lock:
            # Each rule draws from its own RNG, so adding a rule never shifts another's
            # draws; without an explicit seed it derives from the proxy's seed.
            rule._rng = random.Random(seed if seed is not None else self.rng.getrandbits(64))
            self.rules.append(rule)
        return rule

    def outage_active(self) -> OutageMode | None:
        """Return the current outage mode, ending a timed outage that ran out (lock held)."""
        if self.outage_mode is None:
            return None
        if self.outage_until is not None and time.monotonic() >= self.outage_until:
            self.outage_mode = self.outage_until = None
            return None
        return self.outage_mode

    def next_connection(self) -> int:
        with self.lock:
            self.connections += 1
            return self.connections

    def record(self, connection: int, request: _Request) -> LoggedRequest:
        with self.lock:
            self.seq += 1
            entry = LoggedRequest(
                self.seq,
                connection,
                time.time(),
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
            )
            self.log.append(entry)
            return entry

    def decide(self, entry: LoggedRequest) -> tuple[_Action | None, bool]:
        """Pick the fault for a request: (action or None, whether it applies after upstream)."""
        with self.lock:
            mode = self.outage_active()
            if mode == "reset":
                return _Reset("outage:reset"), False
            if mode == "503":
                return _answer(503, None, "outage:503"), False
            for rule in self.rules:
                if not rule._matches(entry.method, entry.path, entry.body, entry.query):
                    continue
                if rule.probability < 1.0 and rule._rng.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.hits += 1
                entry.rule = rule
                return rule._make(rule._rng), rule.after_upstream
            return None, False

    def select(
        self, method: str | None, path_regex: str | None, forwarded: bool | None
    ) -> list[LoggedRequest]:
        pattern = re.compile(path_regex) if path_regex is not None else None
        wanted = method.upper() if method else None
        with self.lock:
            entries = list(self.log)
        return [
            e
            for e in entries
            if (wanted is None or e.method == wanted)
            and (pattern is None or pattern.search(e.path))
            and (forwarded is None or e.forwarded == forwarded)
        ]


# --------------------------------------------------------------------------------------
# Control methods


class FaultControls:
    """The thread-safe control methods shared by :class:`FaultProxy` and its thread host.

    Common keyword arguments of the fault methods: ``method`` (exact, case-insensitive),
    ``path`` (regex searched in the request path, query excluded; paths keep the
    upstream's prefix, e.g. ``/v2/Users``), ``probability`` (0..1), ``times`` (apply to
    the next N matching requests only), ``seed`` (the rule's own RNG; defaults to one
    derived from the proxy's seed).
    """

    _plan: _Plan

    # -- faults ----------------------------------------------------------------------

    def status(
        self,
        code: int,
        body: Body = None,
        retry_after: float | str | dt.datetime | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
        seed: int | None = None,
        after_upstream: bool = False,
    ) -> FaultRule:
        """Answer ``code`` without forwarding (default body: a SCIM Error for codes >= 400).

        ``retry_after`` sets ``Retry-After``: seconds, a preformatted string, or a datetime
        (sent as an HTTP date).
        """
        extra = list((headers or {}).items())
        if retry_after is not None:
            extra.append(("Retry-After", _retry_after_value(retry_after)))
        action = _answer(code, body, f"status:{code}", headers=extra)
        rule = FaultRule("status", method, path, probability, times, after_upstream)
        rule._make = lambda _rng: action
        return self._plan.add(rule, seed)

    def delay(
        self,
        seconds: float,
        *,
        method: str | None = None,
        path: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
        seed: int | None = None,
        after_upstream: bool = False,
    ) -> FaultRule:
        """Wait before forwarding (or, with ``after_upstream``, before answering).

        The request still reaches the upstream after the wait even if the client gave
        up meanwhile, as with a slow network: a retrying client may cause a duplicate.
        """
        action = _Delay(seconds, f"delay:{seconds:g}")
        rule = FaultRule("delay", method, path, probability, times, after_upstream)
        rule._make = lambda _rng: action
        return self._plan.add(rule, seed)

    def reset(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
        seed: int | None = None,
        after_upstream: bool = False,
    ) -> FaultRule:
        """Reset the connection (RST) without answering.

        Clients see ``httpx.ReadError`` or ``httpx.RemoteProtocolError``.
        """
        rule = FaultRule("reset", method, path, probability, times, after_upstream)
        rule._make = lambda _rng: _Reset("reset")
        return self._plan.add(rule, seed)

    def malformed_json(
        self,
        *,
        status: int = 200,
        method: str | None = None,
        path: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
        seed: int | None = None,
        after_upstream: bool = False,
    ) -> FaultRule:
        """Answer a truncated JSON body labelled ``application/scim+json``."""
        action = _answer(status, _MALFORMED_BODY, "malformed_json", content_type=SCIM_JSON)
        rule = FaultRule("malformed_json", method, path, probability, times, after_upstream)
        rule._make = lambda _rng: action
        return self._plan.add(rule, seed)

    def reject_members(
        self,
        member_ids: Iterable[str],
        status: int = 400,
        *,
        path: str = r"/Groups/[^/]+$",
        probability: float = 1.0,
        times: int | None = None,
        seed: int | None = None,
    ) -> FaultRule:
        """Refuse ``PATCH /Groups/{id}`` requests that add any of ``member_ids``.

        Answers a SCIM Error (``scimType: invalidValue``) with ``status`` and does not
        forward, so the group is left unchanged, as a downstream refusing a member would.
        """
        rejected = frozenset(member_ids)

        def body_match(body: bytes) -> bool:
            return bool(_added_member_ids(body) & rejected)

        detail = "member refused by FaultProxy: " + ", ".join(sorted(rejected))
        action = _answer(
            status, _scim_error(status, detail, "invalidValue"), f"reject_members:{status}"
        )
        rule = FaultRule("reject_members", "PATCH", path, probability, times, False)
        rule._make = lambda _rng: action
        rule._body_match = body_match
        return self._plan.add(rule, seed)

    # -- vendor behaviours (docs/compatibility.md) --------------------------------------

    def hide_members(self, *, path: str = r"/Groups(/[^/]+)?$") -> FaultRule:
        """Answer every ``GET`` of groups without ``members``, as apps that never return
        them do (AWS IAM Identity Center)."""

        def strip(document: Any) -> Any:
            if not isinstance(document, dict):
                return document
            document = {k: v for k, v in document.items() if k.lower() != "members"}
            resources = document.get("Resources")
            if isinstance(resources, list):
                document["Resources"] = [strip(item) for item in resources]
            return document

        rule = FaultRule("hide_members", "GET", path, 1.0, None, True)
        action = _Rewrite(strip, "hide_members")
        rule._make = lambda _rng: action
        return self._plan.add(rule, None)

    def leave_out_of_listings(
        self, resource_ids: Iterable[str], *, path: str = r"/Users$"
    ) -> FaultRule:
        """Answer every listing (``GET /Users``) without the resources ``resource_ids``,
        their total left as it was: what a reader sees when the app's list moves between two
        pages and an entry slips past it."""
        hidden = frozenset(resource_ids)

        def skip(document: Any) -> Any:
            if not isinstance(document, dict) or not isinstance(document.get("Resources"), list):
                return document
            kept = [r for r in document["Resources"] if not _listed_in(r, hidden)]
            return {**document, "Resources": kept}

        rule = FaultRule("leave_out_of_listings", "GET", path, 1.0, None, True)
        action = _Rewrite(skip, "leave_out_of_listings")
        rule._make = lambda _rng: action
        return self._plan.add(rule, None)

    def put_only_groups(self, *, path: str = r"/Groups/[^/]+$") -> FaultRule:
        """Answer 501 to every ``PATCH`` of a group: the app takes groups only by ``PUT``."""
        body = _scim_error(501, "PATCH is not supported for groups (FaultProxy)")
        action = _answer(501, body, "put_only_groups")
        rule = FaultRule("put_only_groups", "PATCH", path, 1.0, None, False)
        rule._make = lambda _rng: action
        return self._plan.add(rule, None)

    def put_only_users(self, *, path: str = r"/Users/[^/]+$") -> FaultRule:
        """Answer 501 to every ``PATCH`` of a user: the app takes accounts only by ``PUT``."""
        body = _scim_error(501, "PATCH is not supported for users (FaultProxy)")
        action = _answer(501, body, "put_only_users")
        rule = FaultRule("put_only_users", "PATCH", path, 1.0, None, False)
        rule._make = lambda _rng: action
        return self._plan.add(rule, None)

    def cap_changes(self, limit: int = 100, *, path: str = r"/Groups/[^/]+$") -> FaultRule:
        """Refuse (400 ``tooMany``) a group ``PATCH`` that changes more than ``limit``
        members, as AWS IAM Identity Center documents."""
        body = _scim_error(400, f"at most {limit} membership changes per request", "tooMany")
        action = _answer(400, body, f"cap_changes:{limit}")
        rule = FaultRule("cap_changes", "PATCH", path, 1.0, None, False)
        rule._make = lambda _rng: action
        rule._body_match = lambda raw: _member_changes(raw) > limit
        return self._plan.add(rule, None)

    def refuse_whole_replace(self, *, path: str = r"/Groups/[^/]+$") -> FaultRule:
        """Refuse (400 ``invalidValue``) a group ``PATCH`` that replaces the whole membership
        or removes every member at once, as AWS IAM Identity Center documents."""
        body = _scim_error(400, "replacing all members is not supported", "invalidValue")
        action = _answer(400, body, "refuse_whole_replace")
        rule = FaultRule("refuse_whole_replace", "PATCH", path, 1.0, None, False)
        rule._make = lambda _rng: action
        rule._body_match = _replaces_all_members
        return self._plan.add(rule, None)

    def refuse_or_filters(self, *, path: str = r"/Users$") -> FaultRule:
        """Refuse (400 ``invalidFilter``) a search whose filter joins expressions with
        ``or``, as apps that take only ``attribute eq "value"`` do (AWS IAM Identity
        Center documents ``eq`` on ``userName`` and ``externalId`` only)."""
        body = _scim_error(400, "only one eq expression is supported", "invalidFilter")
        action = _answer(400, body, "refuse_or_filters")
        rule = FaultRule("refuse_or_filters", "GET", path, 1.0, None, False)
        rule._make = lambda _rng: action
        rule._query_match = lambda query: " or " in unquote(query).lower()
        return self._plan.add(rule, None)

    def refuse_bulk(self, *, path: str = r"/Bulk$") -> FaultRule:
        """Answer 501 to ``POST /Bulk``, as apps that announce Bulk but do not take it do."""
        action = _answer(501, _scim_error(501, "Bulk is not supported (FaultProxy)"), "refuse_bulk")
        rule = FaultRule("refuse_bulk", "POST", path, 1.0, None, False)
        rule._make = lambda _rng: action
        return self._plan.add(rule, None)

    def vendor(self, name: str) -> list[FaultRule]:
        """The behaviours of one vendor at once: ``aws-identity-center`` (members hidden, 100
        changes per PATCH, no whole replace), ``put-only-groups`` (501 to a group PATCH),
        ``put-only-users`` (501 to a user PATCH) or ``put-only`` (501 to every PATCH)."""
        if name == "aws-identity-center":
            return [self.hide_members(), self.refuse_whole_replace(), self.cap_changes(100)]
        if name == "put-only-groups":
            return [self.put_only_groups()]
        if name == "put-only-users":
            return [self.put_only_users()]
        if name == "put-only":
            return [self.put_only_groups(), self.put_only_users()]
        raise ValueError(f"unknown vendor behaviour {name!r}")

    def mixed(
        self,
        rate: float,
        seed: int | None = None,
        *,
        client_timeout: float | None = None,
        max_delay: float | None = None,
        kinds: Iterable[str] = ("500", "503", "429", "reset", "delay"),
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Give a share ``rate`` of requests a random fault among ``kinds``.

        Kinds: ``"500"``, ``"503"``, ``"429"`` (Retry-After 0 or 1), ``"reset"``,
        ``"delay"``. Delays stay below ``client_timeout`` (at most half of it by default,
        else 0.1 s) so they slow the client without timing it out.
        """
        choices = tuple(kinds)
        unknown = set(choices) - {"500", "503", "429", "reset", "delay"}
        if not choices or unknown:
            raise ValueError(f"unknown or no fault kinds: {sorted(unknown)}")
        longest = max_delay if max_delay is not None else (client_timeout or 0.2) / 2
        if client_timeout is not None:
            longest = min(longest, client_timeout * 0.8)

        def make(rng: random.Random) -> _Action:
            kind = rng.choice(choices)
            if kind == "reset":
                return _Reset("reset")
            if kind == "delay":
                seconds = round(rng.uniform(0.0, longest), 3)
                return _Delay(seconds, f"delay:{seconds:g}")
            code = int(kind)
            retry = [("Retry-After", rng.choice(("0", "1")))] if code == 429 else []
            return _answer(code, None, f"status:{code}", headers=retry)

        rule = FaultRule("mixed", method, path, rate, times, False)
        rule._make = make
        return self._plan.add(rule, seed)

    # -- outage ----------------------------------------------------------------------

    def outage(self, seconds: float, mode: OutageMode = "reset") -> None:
        """Fail every request for ``seconds`` from now (reset the connection, or 503)."""
        self._set_outage(mode, time.monotonic() + seconds)

    def outage_start(self, mode: OutageMode = "reset") -> None:
        """Fail every request until :meth:`outage_end`; outages win over rules."""
        self._set_outage(mode, None)

    def outage_end(self) -> None:
        with self._plan.lock:
            self._plan.outage_mode = self._plan.outage_until = None

    @property
    def in_outage(self) -> bool:
        with self._plan.lock:
            return self._plan.outage_active() is not None

    def _set_outage(self, mode: OutageMode, until: float | None) -> None:
        if mode not in ("reset", "503"):
            raise ValueError(f"outage mode must be 'reset' or '503', got {mode!r}")
        with self._plan.lock:
            self._plan.outage_mode = mode
            self._plan.outage_until = until

    # -- rule management ---------------------------------------------------------------

    @property
    def rules(self) -> list[FaultRule]:
        with self._plan.lock:
            return list(self._plan.rules)

    def remove(self, rule: FaultRule) -> None:
        with self._plan.lock, contextlib.suppress(ValueError):
            self._plan.rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule and end any outage (the log is kept: see :meth:`clear_log`)."""
        with self._plan.lock:
            self._plan.rules.clear()
            self._plan.outage_mode = self._plan.outage_until = None

    # -- request log -------------------------------------------------------------------

    def requests(
        self,
        method: str | None = None,
        path_regex: str | None = None,
        *,
        forwarded: bool | None = None,
    ) -> list[LoggedRequest]:
        """Return the logged requests, oldest first, filtered by method, path and forwarding."""
        return self._plan.select(method, path_regex, forwarded)

    def count(
        self,
        method: str | None = None,
        path_regex: str | None = None,
        *,
        forwarded: bool | None = None,
    ) -> int:
        return len(self._plan.select(method, path_regex, forwarded))

    def clear_log(self) -> None:
        with self._plan.lock:
            self._plan.log.clear()


# --------------------------------------------------------------------------------------
# The proxy


class _BadRequest(Exception):
    pass


@dataclass
class _Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header("connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


@dataclass
class _Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection with RST rather than FIN, as a crashing peer or middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy(FaultControls):
    """The fault-injecting reverse proxy, running on the caller's event loop.

    ``base_url`` keeps the upstream base URL's path: for an upstream
    ``http://127.0.0.1:8001/v2`` it is ``http://127.0.0.1:PORT/v2``. The Host header is
    forwarded unchanged, so URLs the upstream builds from it point at the proxy.
    """

    def __init__(
        self,
        upstream_base_url: str,
        *,
        seed: int | None = None,
        upstream_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an absolute http(s) URL: {upstream_base_url!r}")
        self.upstream_base_url = upstream_base_url
        self._upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._upstream_timeout = upstream_timeout
        self._plan = _Plan(seed)
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._host = ""
        self._port = 0
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}{self._prefix}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        self._client = httpx.AsyncClient(
            timeout=self._upstream_timeout, trust_env=False, follow_redirects=False
        )
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=MAX_HEAD_BYTES
        )
        sockname = self._server.sockets[0].getsockname()
        self._host, self._port = sockname[0], sockname[1]
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection (in-flight requests included)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- connection handling ---------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        connection = self._plan.next_connection()
        keep_open = True
        try:
            while keep_open:
                try:
                    request = await self._read_request(reader, writer)
                except _BadRequest as exc:
                    writer.write(
                        _render(_Response(400, [], str(exc).encode()), close=True, head=False)
                    )
                    await writer.drain()
                    break
                if request is None:
                    break
                keep_open = await self._serve_request(connection, request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels these tasks. Swallowed on purpose: on Python 3.11 the
            # stream server logs an error for a connection task that ends cancelled.
            writer.transport.abort()
        except Exception:
            log.exception("fault proxy connection failed")
        finally:
            del self._connections[task]
            if not writer.transport.is_closing():
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest("truncated request head") from exc
            return None
        lines = head.lstrip(b"\r\n").decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError as exc:
            raise _BadRequest(f"bad request line: {lines[0]!r}") from exc
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"bad header line: {line!r}")
            headers.append((name.strip(), value.strip()))
        request = _Request(method.upper(), target, "", "", version, headers, b"")
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            request.target = target
        request.path, _, request.query = target.partition("?")
        if (request.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            request.body = await _read_chunked(reader)
        else:
            length = request.header("content-length")
            if length:
                try:
                    size = int(length)
                except ValueError as exc:
                    raise _BadRequest(f"bad Content-Length: {length!r}") from exc
                request.body = await reader.readexactly(size)
        return request

    async def _serve_request(
        self, connection: int, request: _Request, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return whether the connection stays open.

        The log entry is completed before the client gets anything, so a test reading
        the log right after its call returns sees the final state.
        """
        started = time.monotonic()
        entry = self._plan.record(connection, request)

        def finish(status: int | None) -> None:
            entry.status = status
            entry.duration = time.monotonic() - started
            entry.done = True

        try:
            action, after_upstream = self._plan.decide(entry)
            if action is not None:
                entry.fault = action.label
            response: _Response | None = None
            if action is None or isinstance(action, _Delay) or after_upstream:
                if isinstance(action, _Delay) and not after_upstream:
                    await asyncio.sleep(action.seconds)
                response = await self._forward(request, entry)
                if isinstance(action, _Delay) and after_upstream:
                    await asyncio.sleep(action.seconds)
                if isinstance(action, _Rewrite):
                    response = _rewritten(response, action)
            if isinstance(action, _Reset):
                finish(None)
                _abort(writer)
                return False
            if isinstance(action, _Answer):
                response = _Response(action.status, list(action.headers), action.body)
            assert response is not None
            close = request.wants_close()
            finish(response.status)
            writer.write(_render(response, close=close, head=request.method == "HEAD"))
            await writer.drain()
            return not close
        finally:
            if not entry.done:
                finish(None)

    async def _forward(self, request: _Request, entry: LoggedRequest) -> _Response:
        assert self._client is not None
        headers = [(k, v) for k, v in request.headers if k.lower() not in _NOT_FORWARDED]
        # Identity encoding keeps the upstream body as-is, so Content-Length stays right.
        headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        headers.append(("Accept-Encoding", "identity"))
        entry.forwarded = True
        try:
            upstream = await self._client.request(
                request.method,
                self._upstream_origin + request.target,
                headers=headers,
                content=request.body,
            )
        except httpx.TimeoutException as exc:
            entry.error = f"upstream timeout: {exc!r}"
            return _Response(504, [], b"upstream timeout\n")
        except httpx.TransportError as exc:
            entry.error = f"upstream unreachable: {exc!r}"
            return _Response(502, [], b"upstream unreachable\n")
        entry.upstream_status = upstream.status_code
        if request.method == "POST" and request.path.endswith("/Bulk"):
            entry.upstream_body = upstream.content
        kept = [(k, v) for k, v in upstream.headers.raw if k.decode().lower() not in _NOT_FORWARDED]
        if request.method == "HEAD":
            # No body to measure: the upstream's length is the one the client wants.
            kept += [(k, v) for k, v in upstream.headers.raw if k.lower() == b"content-length"]
        return _Response(upstream.status_code, kept, upstream.content)


def _rewritten(response: _Response, action: _Rewrite) -> _Response:
    """The upstream's 2xx JSON answer, rewritten; anything else unchanged."""
    if not 200 <= response.status < 300 or not response.body:
        return response
    try:
        document = json.loads(response.body)
    except ValueError:
        return response
    body = json.dumps(action.rewrite(document)).encode()
    return _Response(response.status, response.headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest("bad chunk size") from exc
        if size == 0:
            # Skip trailers up to the blank line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def _render(response: _Response, *, close: bool, head: bool) -> bytes:
    """Serialize a response with Content-Length framing (never chunked)."""
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}".encode()]
    names = {k.lower() for k, _ in response.headers}
    headers = list(response.headers)
    if b"date" not in names:
        headers.append((b"date", email.utils.formatdate(usegmt=True).encode()))
    if b"server" not in names:
        headers.append((b"server", b"headwater-faultproxy"))
    bodiless = response.status < 200 or response.status in (204, 304)
    if not bodiless and b"content-length" not in names:
        headers.append((b"content-length", str(len(response.body)).encode()))
    if close:
        headers.append((b"connection", b"close"))
    lines += [k + b": " + v for k, v in headers]
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    return data if head or bodiless else data + response.body


# --------------------------------------------------------------------------------------
# Thread host


class FaultProxyThread(FaultControls):
    """A :class:`FaultProxy` on its own event loop in a daemon thread.

    For sync tests, and for tests whose client runs in another process or on another
    event loop. Control methods are the same and may be called from any thread.
    """

    def __init__(
        self,
        upstream_base_url: str,
        *,
        seed: int | None = None,
        upstream_timeout: float = 30.0,
    ) -> None:
        self.proxy = FaultProxy(upstream_base_url, seed=seed, upstream_timeout=upstream_timeout)
        self._plan = self.proxy._plan
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def origin(self) -> str:
        return self.proxy.origin

    @property
    def base_url(self) -> str:
        return self.proxy.base_url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FaultProxyThread:
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="faultproxy", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.start(host, port), loop).result(10)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.proxy.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def __enter__(self) -> FaultProxyThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
