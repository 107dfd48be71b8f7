"""An LDAP directory as a downstream app: accounts as ``inetOrgPerson`` entries, pushed groups
as ``groupOfNames`` (or ``groupOfUniqueNames``, per app), behind the same ``Connector`` port as
SCIM.

The id Headwater keeps for an entry is its ``entryUUID``: every operation first finds the
entry's current DN by searching for that UUID, so an entry renamed or moved (modrdn) by anyone
keeps its link. Changes are computed against what the entry holds now and sent as one modify of
only the attributes that differ. Group members are member DNs; reading a group maps them back
to the ``entryUUID`` of the accounts they name, so drift repair compares like with like, and a
member DN that names no entry under the bases is reported as the DN itself.

With the profile's ``directory: activeDirectory`` the entries speak Active Directory's dialect
(``connectors.ad``): ``user`` entries linked by ``objectGUID``, deactivation by
``userAccountControl``, ``group`` entries whose members are read by range retrieval.

ldap3 is synchronous: each operation (one or a few LDAP requests) runs on a small thread pool,
one bound connection per thread, at most ``max_concurrency`` at once per app, so the event loop
never waits on the directory. The accounts' adds that come in together share trips to those
threads (``_run_shared``), and the add and the many-valued searches are encoded by hand
(``connectors.ldap_wire``): what a large assignment costs the client per account. A connection
is opened to an address the outbound policy allows (the host is resolved and checked here, and
TLS still verifies the certificate against the host name). Failures become the
``connectors.errors`` types the engine decides on, with the directory's words scrubbed of the
bind password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lx
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from headwater.connectors import ad, ldap_wire
from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    DownstreamError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from headwater.connectors.outbound import OutboundPolicy, Resolver, system_resolver
from headwater.connectors.scrub import MAX_DETAIL, Scrubber
from headwater.domain.capabilities import Capabilities
from headwater.domain.downstream import AccountAttributes, GroupState, RemoteAccount, RemoteGroup
from headwater.domain.ldap import Deactivation, Directory, LdapProfile, OnMissingEntry
from headwater.domain.settings import ProvisioningSettings

__all__ = ["LOCKED", "LdapConnector", "close_quietly", "ldap_error"]

log = logging.getLogger(__name__)

#: ``on_request(method, operation, status_or_None, seconds)``; status is the LDAP result code.
RequestHook = Callable[[str, str, int | None, float], None]
Gate = Callable[[], AbstractAsyncContextManager[None]]

#: ppolicy's "locked until an administrator unlocks" value of ``pwdAccountLockedTime``.
LOCKED = "000001010000Z"
PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")
#: ``groupOfNames`` (and ``groupOfUniqueNames``) must hold a member: an emptied group holds
#: the empty DN instead.
PLACEHOLDER = ""
#: Attribute values a single OR filter resolves at once.
_FILTER_CHUNK = 100
#: The most accounts' adds one connection sends in one trip to its thread.
ADDS_PER_TRIP = 8
#: RFC 4527's Post-Read control: an add answers with the new entry's attributes.
_POST_READ = "1.3.6.1.1.13.2"
#: Up to this many member DNs are read one by one; more, and the bases are scanned once.
_READ_EACH = 16
_MAX_MESSAGE = 500
#: Never written from ``extra``: structure, credentials, and what the directory owns.
_RESERVED = frozenset(
    {"objectclass", "userpassword", "entryuuid", "memberof", "pwdaccountlockedtime"}
)
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
#: The optional unique identifier a ``uniqueMember`` value may carry after its DN.
_OPTIONAL_UID = re.compile(r"#'[01]*'B$")

#: Result codes: retry later / the app is unusable as configured / bad input.
_TRANSIENT = {3, 10, 11, 51, 52, 80}
_UNAVAILABLE = {7, 8, 13, 48, 49, 50, 53}
_BAD_INPUT = {16, 17, 18, 19, 20, 21, 34, 64, 65, 67, 69}

#: Active Directory's extended error code at the start of its diagnostic message.
_AD_EXTENDED = re.compile(r"^\s*([0-9A-Fa-f]{8}):")

_T = TypeVar("_T")


def ldap_error(
    exc: Exception,
    operation: str,
    *,
    probing: bool = False,
    scrub: Scrubber | None = None,
    directory: Directory = Directory.OPENLDAP,
) -> DownstreamError:
    """The connector error for an ldap3 failure; its type tells the engine what to do.

    Active Directory words an answer with an extended error code first (``0000052D: ...``):
    there, unwillingToPerform with such a code refuses this request's content (a member that
    does not exist, a password policy), not the app, and a constraintViolation on a name
    already in use (``userPrincipalName``) is a conflict the engine links on.
    """
    clean = scrub or Scrubber()
    where = f"LDAP {operation}"
    if isinstance(exc, lx.LDAPOperationResult):
        code = int(exc.result or 0)
        name = str(exc.description or "error")
        text = str(exc.message or "")
        detail = clean(text, limit=MAX_DETAIL)
        message = f"{where}: {name} ({code})"
        if directory is Directory.ACTIVE_DIRECTORY:
            extended = _AD_EXTENDED.match(text)
            if extended:
                message = f"{message}, AD error {extended.group(1).upper()}"
            if code == 19 and ("already in use" in text or "userprincipalname" in text.lower()):
                return ConflictError(message, detail=detail)
            if code == 53 and extended:
                return PermanentError(message, status=400, detail=detail)
        if code in _TRANSIENT:
            return TransientError(message, detail=detail)
        if code in _UNAVAILABLE:
            return AppUnavailableError(message, detail=detail)
        if code == 68:
            return ConflictError(message, detail=detail)
        if code == 32:
            return NotFoundError(message, status=404, detail=detail)
        if code in _BAD_INPUT:
            return PermanentError(message, status=400, detail=detail)
        return PermanentError(message, detail=detail)
    text = clean(str(exc), limit=300)
    if isinstance(exc, lx.LDAPBindError):
        return AppUnavailableError(f"{where}: bind refused", detail=text)
    tls = "certificate" in text.lower() or isinstance(
        exc, lx.LDAPStartTLSError | lx.LDAPSSLConfigurationError | ssl.SSLError
    )
    if tls:
        return AppUnavailableError(f"{where}: TLS failed ({text})")
    if isinstance(exc, lx.LDAPSocketOpenError):
        if probing:
            return AppUnavailableError(f"{where}: cannot connect ({text})")
        return TransientError(f"{where}: connection failed ({text})")
    if isinstance(exc, lx.LDAPCommunicationError | OSError):
        return TransientError(f"{where}: {type(exc).__name__}", detail=text)
    return PermanentError(f"{where}: {type(exc).__name__}", detail=text)


def _unescape(value: str) -> str:
    """An RDN value as text (RFC 4514 escapes undone)."""
    out, i = bytearray(), 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                out += bytes.fromhex(pair)
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def _split(dn: str) -> tuple[str, str]:
    """(first RDN, parent DN) at the first unescaped comma."""
    escaped = False
    for index, char in enumerate(dn):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            return dn[:index], dn[index + 1 :]
    return dn, ""


def _norm(dn: str) -> str:
    """A DN compared case-insensitively, spaces around separators ignored."""
    parts = []
    rest = dn
    while rest:
        rdn, rest = _split(rest)
        attribute, _, value = rdn.partition("=")
        parts.append(f"{attribute.strip().lower()}={_unescape(value.strip()).casefold()}")
    return ",".join(parts)


def _under(dn: str, base: str | None) -> bool:
    if not base:
        return False
    child, parent = _norm(dn), _norm(base)
    return child == parent or child.endswith("," + parent)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw]
    return [str(raw)]


def _folded(entry: Mapping[str, Any]) -> dict[str, list[str]]:
    return {key.casefold(): _values(value) for key, value in entry.items()}


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _uac(entry: Mapping[str, list[str]]) -> int:
    """An entry's ``userAccountControl`` (0 when it was not read)."""
    values = entry.get("useraccountcontrol") or ["0"]
    try:
        return int(values[0])
    except ValueError:
        return 0


def _chunks(values: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _attributes(attrs: AccountAttributes, match_attribute: str) -> dict[str, list[str] | None]:
    """The entry's managed attributes (None: must be absent) from the mapped account."""
    full = " ".join(p for p in (attrs.given_name, attrs.family_name) if p)
    values: dict[str, str | None] = {
        "uid": attrs.user_name,
        "cn": attrs.display_name or full or attrs.user_name,
        "sn": attrs.family_name or attrs.user_name,
        "givenName": attrs.given_name,
        "displayName": attrs.display_name,
        "mail": attrs.email,
        "title": attrs.title,
        "departmentNumber": attrs.department,
        "employeeNumber": attrs.employee_number,
    }
    result: dict[str, list[str] | None] = {
        k: ([v] if v not in (None, "") else None) for k, v in values.items()
    }
    for key, value in attrs.extra.items():
        if not _ATTRIBUTE.match(key) or key.casefold() in _RESERVED:
            continue
        listed = [str(v) for v in value] if isinstance(value, list | tuple) else [value]
        kept = [str(v) for v in listed if v is not None and not isinstance(v, dict)]
        name = next((k for k in result if k.casefold() == key.casefold()), key)
        result[name] = kept or None
    if not any(k.casefold() == match_attribute.casefold() for k in result):
        result[match_attribute] = [attrs.user_name]
    return result


def _entry(found: Mapping[str, Any]) -> tuple[str, dict[str, list[str]]]:
    """(DN, folded attributes) of a search answer; a binary objectGUID as its canonical text."""
    entry = _folded(found.get("attributes") or {})
    raw = found.get("raw_attributes") or {}
    guids = raw.get("objectGUID") if hasattr(raw, "get") else None
    if guids:
        entry["objectguid"] = [ad.guid_text(bytes(g)) for g in guids if len(g) == 16]
    return str(found["dn"]), entry


def close_quietly(conn: ldap3.Connection) -> None:
    """Unbind and close, whatever state the connection is in: ldap3 leaves the socket of a
    connection that failed to open (or bind) open."""
    with contextlib.suppress(Exception):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.close()


class _Pool:
    """Bound ldap3 connections for one app's worker threads, reused while they work."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.slots = asyncio.Semaphore(self.size)
        self.idle: list[ldap3.Connection] = []
        self.executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="ldap")
        self.lock = threading.Lock()

    def take(self) -> ldap3.Connection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, conn: ldap3.Connection) -> None:
        with self.lock:
            self.idle.append(conn)

    def drain(self) -> list[ldap3.Connection]:
        with self.lock:
            conns, self.idle = self.idle, []
            return conns


@dataclass(eq=False)
class _Shared:
    """One work waiting to run beside others on one connection (see ``_run_shared``)."""

    work: Callable[[ldap3.Connection], Any]
    answer: asyncio.Future[Any]
    done: bool = False
    result: Any = None
    error: Exception | None = None
    status: int | None = None
    seconds: float = 0.0
    #: The error is ``_run``'s own (the connection's), already a connector error.
    translated: bool = False


class LdapConnector:
    """One LDAP directory (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        password: str,
        profile: LdapProfile,
        settings: ProvisioningSettings,
        policy: OutboundPolicy | None = None,
        resolver: Resolver | None = None,
        scrubber: Scrubber | None = None,
        gate: Gate | None = None,
        observe: Callable[[bool], None] | None = None,
        on_request: RequestHook | None = None,
        member_range: int = ad.MEMBER_RANGE,
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.use_ssl = parts.scheme.lower() == "ldaps"
        self.port = parts.port or (636 if self.use_ssl else 389)
        self.profile = profile
        self.settings = settings
        self.policy = policy or OutboundPolicy()
        self.resolver: Resolver = resolver or system_resolver
        self.scrubber = scrubber or Scrubber([password])
        self._password = password
        self._gate = gate
        self._observe = observe
        self._on_request = on_request
        self._connect_timeout = profile.connect_timeout or settings.connect_timeout
        # ldap3 packs the receive timeout as whole seconds.
        self._request_timeout = max(
            1, math.ceil(profile.request_timeout or settings.request_timeout)
        )
        self._pool = _Pool(settings.max_concurrency)
        self._closed = False
        #: Works for ``_run_shared`` that came in during this turn of the event loop, and the
        #: tasks sending the earlier ones.
        self._waiting: list[_Shared] = []
        self._sending: set[asyncio.Task[None]] = set()
        #: The pushed groups' object class and the attribute that holds their members.
        self._group_class = str(profile.group_class)
        self._member = profile.group_class.member_attribute
        self._ad = profile.active_directory
        #: The attribute that links an entry (and its folded key in a read entry).
        self._ida = "objectGUID" if self._ad else "entryUUID"
        self._idk = self._ida.casefold()
        #: Values of ``member`` asked for per range-retrieval request (Active Directory).
        self.member_range = member_range
        #: The Post-Read control every add carries, its value encoded once: ldap3 would build
        #: and BER-encode the same attribute list for each add (a tenth of an add's client CPU).
        read = post_read_control(self._account_attributes())
        self._post_read_request = (_POST_READ, False, bytes(read["controlValue"]))

    #: LDAP has no PATCH to refuse: every change is a modify.
    patch_refused = False
    #: The adds of many keys share trips to the connections' threads (``_run_shared``), like
    #: the operations of a SCIM Bulk request: the engine lets this many keys per connection
    #: run at once to fill them. The directory itself never refuses that.
    bulk_refused = False

    @property
    def bulk_operations(self) -> int:
        return ADDS_PER_TRIP

    def __repr__(self) -> str:
        return f"LdapConnector({self.url!r})"

    @property
    def _bases(self) -> list[str]:
        """Where accounts live: the people base, and the disabled base when entries move."""
        bases = [self.profile.people_base]
        if self.profile.disabled_base and self.profile.deactivation is Deactivation.MOVE:
            bases.append(self.profile.disabled_base)
        return bases

    @property
    def _batch(self) -> int:
        return max(1, self.settings.membership_batch_size)

    async def _addressed(self, operation: str, work: Callable[[ldap3.Connection], _T]) -> _T:
        """Run a change to an entry or group addressed by id. When it is gone (noSuchObject),
        the engine recreates it (``NotFoundError``) or, if the profile's ``onMissingEntry``
        is ``TASK``, stops with an error that opens a Task."""
        try:
            return await self._run(operation, work)
        except NotFoundError as exc:
            if self.profile.on_missing is not OnMissingEntry.TASK:
                raise
            raise PermanentError(
                f"{exc.message}; not created again (onMissingEntry is TASK)",
                status=404,
                detail=exc.detail,
            ) from None

    # -- connections -------------------------------------------------------------------------

    async def _address(self) -> str:
        """The host's address, once the outbound policy allowed every address it has."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                addresses = list(await self.resolver(self.host, self.port))
        except (TimeoutError, OSError) as exc:
            raise lx.LDAPSocketOpenError(f"cannot resolve {self.host}: {exc}") from exc
        reason = self.policy.refusal(self.host, addresses)
        if reason is not None:
            log.warning("outbound connection to %s refused: %s", self.host, reason)
            raise AppUnavailableError(
                f"LDAP connect: {self.host} is not allowed by the outbound policy"
            )
        return addresses[0]

    def _tls(self) -> ldap3.Tls:
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_data=self.profile.ca_pem,
            valid_names=[self.host],
        )

    def _open(self, address: str) -> ldap3.Connection:
        """A bound connection to ``address`` (run in a worker thread)."""
        tls = self._tls() if self.use_ssl or self.profile.start_tls else None
        server = ldap3.Server(
            address,
            port=self.port,
            use_ssl=self.use_ssl,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=self._connect_timeout,
        )
        conn = ldap3.Connection(
            server,
            user=self.profile.bind_dn,
            password=self._password,
            raise_exceptions=True,
            receive_timeout=self._request_timeout,
            auto_referrals=False,
            read_only=False,
            # Active Directory's ranged ``member`` is read here, range by range (ldap3's own
            # following trips over empty attributes).
            auto_range=not self._ad,
            return_empty_attributes=not self._ad,
        )
        try:
            conn.open()
            if self.profile.start_tls and not self.use_ssl:
                conn.start_tls()
            if not conn.bind():
                raise lx.LDAPBindError("bind refused")
        except BaseException:
            self._discard(conn)
            raise
        return conn

    async def _run(
        self,
        operation: str,
        work: Callable[[ldap3.Connection], _T],
        *,
        probing: bool = False,
        counted: bool = True,
    ) -> _T:
        """Run ``work`` on a pooled connection in a worker thread; errors as connector errors.

        A pooled connection the directory dropped (a restart) is replaced and ``work`` run
        once more: every operation here reads before it writes, so a repeat is harmless.
        ``counted``: the request goes to the metrics and the app's window of outcomes (off
        when the works inside are counted one by one, see ``_run_shared``).
        """
        if self._closed:
            raise TransientError("LDAP connector closed")
        loop = asyncio.get_running_loop()
        async with self._pool.slots, self._gated():
            started = time.perf_counter()
            status: int | None = None
            try:
                for attempt in (1, 2):
                    conn = self._pool.take()
                    fresh = conn is None
                    try:
                        if conn is None:
                            address = await self._address()
                            conn = await loop.run_in_executor(
                                self._pool.executor, self._open, address
                            )
                        result = await loop.run_in_executor(self._pool.executor, work, conn)
                    except lx.LDAPCommunicationError:
                        if conn is not None:
                            self._discard(conn)
                        if fresh or attempt == 2:
                            raise
                        continue
                    except lx.LDAPOperationResult as exc:
                        status = int(exc.result or 0)
                        if conn is not None:
                            self._pool.give(conn)
                        raise
                    except DownstreamError:
                        if conn is not None:
                            self._pool.give(conn)
                        raise
                    except BaseException:
                        if conn is not None:
                            self._discard(conn)
                        raise
                    self._pool.give(conn)
                    status = 0
                    if counted:
                        self._seen(False)
                    return result
                raise AssertionError("unreachable")  # pragma: no cover
            except Exception as exc:
                raise self._connector_error(exc, operation, probing=probing) from None
            finally:
                if counted:
                    self._report(operation, status, time.perf_counter() - started)

    def _connector_error(
        self, exc: Exception, operation: str, *, probing: bool = False
    ) -> DownstreamError:
        """``exc`` as the connector error the engine acts on, its texts scrubbed, and counted
        in the app's window of recent outcomes."""
        if isinstance(exc, DownstreamError):
            self._seen(True)
            exc.message = self.scrubber(exc.message, limit=_MAX_MESSAGE)
            exc.detail = self.scrubber(exc.detail, limit=MAX_DETAIL)
            exc.args = (exc.message,)
            return exc
        error = ldap_error(
            exc, operation, probing=probing, scrub=self.scrubber, directory=self.profile.directory
        )
        self._seen(isinstance(error, TransientError | AppUnavailableError))
        return error

    async def _run_shared(self, operation: str, work: Callable[[ldap3.Connection], _T]) -> _T:
        """``_run`` for an operation sent by many keys at once (the accounts' adds): the works
        waiting together are spread over the app's connections, each connection's share run
        one after another in one trip to a worker thread. A connection then goes from one add
        straight to the next instead of waiting for the event loop (and the GIL) between them;
        each work still gets its own result or error, as from ``_run``."""
        waiting = _Shared(work, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._share_out, operation)
        return await waiting.answer  # type: ignore[no-any-return]

    def _share_out(self, operation: str) -> None:
        """Split the works that came in during one turn of the loop over the connections."""
        waiting, self._waiting = self._waiting, []
        each = min(ADDS_PER_TRIP, math.ceil(len(waiting) / self._pool.size))
        for start in range(0, len(waiting), each):
            sending = asyncio.create_task(
                self._send_shared(operation, waiting[start : start + each])
            )
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _send_shared(self, operation: str, shared: list[_Shared]) -> None:
        def work(conn: ldap3.Connection) -> None:
            for one in shared:
                if one.done:  # sent before a dropped connection was replaced
                    continue
                started = time.perf_counter()
                try:
                    one.result = one.work(conn)
                    one.status = 0
                except lx.LDAPCommunicationError:
                    raise  # ``_run`` replaces the connection and runs the rest again
                except lx.LDAPOperationResult as exc:
                    one.error, one.status = exc, int(exc.result or 0)
                except Exception as exc:
                    one.error = exc
                one.done = True
                one.seconds = time.perf_counter() - started

        try:
            await self._run(operation, work, counted=False)  # each work is counted alone
        except Exception as exc:  # the connection failed: what was not sent fails with it
            for one in shared:
                if not one.done:
                    one.error, one.done, one.translated = exc, True, True
        finally:
            for one in shared:
                self._settle(operation, one)

    def _settle(self, operation: str, one: _Shared) -> None:
        if one.answer.done():
            return
        if not one.done:  # cancelled (the connector closed)
            one.answer.set_exception(TransientError("LDAP connector closed"))
            return
        self._report(operation, one.status, one.seconds)
        if one.error is None:
            self._seen(False)
            one.answer.set_result(one.result)
        elif one.translated:
            one.answer.set_exception(one.error)  # ``_run``'s own error, translated already
        else:
            one.answer.set_exception(self._connector_error(one.error, operation))

    @contextlib.asynccontextmanager
    async def _gated(self) -> AsyncIterator[None]:
        if self._gate is None:
            yield
            return
        async with self._gate():
            yield

    def _seen(self, failed: bool) -> None:
        if self._observe is not None:
            self._observe(failed)

    def _report(self, operation: str, status: int | None, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request("LDAP", operation, status, seconds)
        except Exception:  # a metrics hook must never fail a provisioning call
            log.exception("on_request hook failed")

    @staticmethod
    def _discard(conn: ldap3.Connection) -> None:
        close_quietly(conn)

    async def aclose(self) -> None:
        self._closed = True
        for conn in self._pool.drain():
            self._discard(conn)
        self._pool.executor.shutdown(wait=False, cancel_futures=True)

    # -- reading entries (worker threads) ----------------------------------------------------

    def _search_uuid(
        self, conn: ldap3.Connection, bases: Sequence[str], value: str, attributes: Sequence[str]
    ) -> tuple[str, dict[str, list[str]]] | None:
        """The entry whose id (entryUUID, or AD's objectGUID) is ``value`` under ``bases``:
        (DN, attributes)."""
        if not _is_uuid(value):
            return None
        for base in bases:
            found = self._search(conn, base, self._id_filter(value), attributes)
            if found:
                return found[0]
        return None

    def _id_filter(self, value: str) -> str:
        if self._ad:
            return ad.guid_filter(value)
        return f"(entryUUID={escape_filter_chars(value)})"

    @staticmethod
    def _search(
        conn: ldap3.Connection,
        base: str,
        query: str | ldap_wire.Filter,
        attributes: Sequence[str],
        scope: Literal["BASE", "LEVEL", "SUBTREE"] = "SUBTREE",
    ) -> list[tuple[str, dict[str, list[str]]]]:
        """Entries under ``base``; a filter is text, or built with ``ldap_wire`` (the
        searches for many values at once, which ldap3 would spend milliseconds parsing)."""
        try:
            if isinstance(query, bytes):
                answers = ldap_wire.search(conn, base, scope, query, attributes)
            else:
                conn.search(base, query, search_scope=scope, attributes=list(attributes))
                answers = conn.response or []
        except lx.LDAPNoSuchObjectResult:
            return []
        return [_entry(e) for e in answers if e.get("type") == "searchResEntry"]

    def _paged(
        self, conn: ldap3.Connection, base: str, query: str, attributes: Sequence[str]
    ) -> list[tuple[str, dict[str, list[str]]]]:
        try:
            entries = conn.extend.standard.paged_search(
                base, query, attributes=list(attributes), paged_size=1000, generator=False
            )
        except lx.LDAPNoSuchObjectResult:
            return []
        return [_entry(e) for e in entries or [] if e.get("type") == "searchResEntry"]

    @staticmethod
    def _post_read(conn: ldap3.Connection) -> dict[str, list[str]] | None:
        """The entry the last request's Post-Read control returned, if the directory
        sent it and it carries the entryUUID."""
        controls = (conn.result or {}).get("controls") or {}
        value = (controls.get(_POST_READ) or {}).get("value") or {}
        entry = _folded(value.get("result") or {})
        if not entry.get("entryuuid"):
            return None
        return entry

    def _account_attributes(self) -> list[str]:
        if self._ad:
            return ["objectGUID", "sAMAccountName", "userPrincipalName", "userAccountControl"]
        return _unique(["entryUUID", "uid", self.profile.match_attribute, "pwdAccountLockedTime"])

    def _remote_account(self, dn: str, entry: Mapping[str, list[str]]) -> RemoteAccount:
        if self._ad:
            names = entry.get("userprincipalname") or entry.get("samaccountname") or [dn]
        else:
            names = entry.get(self.profile.match_attribute.casefold()) or entry.get("uid") or [dn]
        match self.profile.deactivation:
            case Deactivation.DISABLE:
                active = not _uac(entry) & ad.ACCOUNTDISABLE
            case Deactivation.LOCK:
                active = not entry.get("pwdaccountlockedtime")
            case Deactivation.MOVE:
                active = not _under(dn, self.profile.disabled_base)
            case _:
                active = True
        return RemoteAccount(id=entry[self._idk][0], user_name=names[0], active=active)

    def _wanted(self, attrs: AccountAttributes) -> dict[str, list[str] | None]:
        if self._ad:
            return ad.ad_attributes(attrs)
        return _attributes(attrs, self.profile.match_attribute)

    def _dns_of(self, conn: ldap3.Connection, ids: Sequence[str]) -> dict[str, str]:
        """The current DN of each account id (entryUUID) that still names an entry; an id
        that is a DN (a member read back from a group) stands for itself."""
        found: dict[str, str] = {}
        uuids = [i for i in _unique(ids) if _is_uuid(i)]
        for value in ids:
            if not _is_uuid(value) and "=" in value:
                found[value] = value
        for chunk in _chunks(uuids, _FILTER_CHUNK):
            query: str | ldap_wire.Filter
            if self._ad:
                query = "(|" + "".join(self._id_filter(u) for u in chunk) + ")"
            else:
                query = ldap_wire.any_of(ldap_wire.equals("entryUUID", u) for u in chunk)
            for base in self._bases:
                for dn, entry in self._search(conn, base, query, [self._ida]):
                    found[entry[self._idk][0].lower()] = dn
        return {i: found[i.lower()] for i in ids if i.lower() in found} | {
            i: found[i] for i in ids if i in found
        }

    def _ids_of(self, conn: ldap3.Connection, dns: Sequence[str]) -> list[str]:
        """The entryUUID for each member DN; a DN naming no account stays a DN."""
        by_dn: dict[str, str] = {}
        if len(dns) <= _READ_EACH:
            for dn in dns:
                entries = self._search(conn, dn, "(objectClass=*)", [self._ida], "BASE")
                if entries and entries[0][1].get(self._idk):
                    by_dn[_norm(dn)] = entries[0][1][self._idk][0]
        else:
            for base in self._bases:
                for dn, entry in self._paged(conn, base, "(objectClass=*)", [self._ida]):
                    if entry.get(self._idk):
                        by_dn[_norm(dn)] = entry[self._idk][0]
        return [by_dn.get(_norm(dn), dn) for dn in dns]

    # -- connection --------------------------------------------------------------------------

    async def test_connection(self) -> Capabilities:
        """Bind, read the root DSE, and check both bases exist."""

        def work(conn: ldap3.Connection) -> Capabilities:
            root = self._search(
                conn,
                "",
                "(objectClass=*)",
                ["supportedLDAPVersion", "namingContexts", "supportedCapabilities"],
                "BASE",
            )
            if not root:
                raise AppUnavailableError("LDAP test: the root DSE cannot be read")
            is_ad = ad.AD_CAPABILITY in root[0][1].get("supportedcapabilities", [])
            if is_ad != self._ad:
                said = "activeDirectory" if self._ad else "openldap"
                raise AppUnavailableError(
                    f"LDAP test: the profile's directory is {said}, but the server "
                    + ("is not" if self._ad else "is")
                    + " Active Directory"
                )
            for name, base in (
                ("people", self.profile.people_base),
                ("groups", self.profile.groups_base),
                ("disabled", self.profile.disabled_base),
            ):
                if base is None:
                    continue
                if not self._search(conn, base, "(objectClass=*)", ["objectClass"], "BASE"):
                    raise AppUnavailableError(f"LDAP test: the {name} base DN does not exist")
            return Capabilities()

        return await self._run("test", work, probing=True)

    # -- accounts ----------------------------------------------------------------------------

    def _rdn(self, attrs: AccountAttributes) -> str:
        attribute, _, template = self.profile.dn_template.partition("=")
        known = {
            "userName": attrs.user_name,
            "givenName": attrs.given_name,
            "familyName": attrs.family_name,
            "displayName": attrs.display_name,
            "email": attrs.email,
            "employeeNumber": attrs.employee_number,
        }

        def fill(match: re.Match[str]) -> str:
            value = known.get(match.group(1))
            if not value:
                raise PermanentError(
                    f"The DN template needs {match.group(1)}, which the account has not",
                    status=400,
                )
            return str(value)

        value = re.sub(r"\$\{([A-Za-z]+)\}", fill, template)
        return f"{attribute}={escape_rdn(value)}"

    async def find_user(self, user_name: str) -> RemoteAccount | None:
        """The entry whose matching attribute equals ``user_name`` (exact value first)."""
        if self._ad:
            found = await self.find_users([user_name])
            return found.get(user_name)
        attribute = self.profile.match_attribute

        def work(conn: ldap3.Connection) -> RemoteAccount | None:
            query = f"(&(objectClass=*)({attribute}={escape_filter_chars(user_name)}))"
            loose = None
            for base in self._bases:
                for dn, entry in self._search(conn, base, query, self._account_attributes()):
                    if not entry.get(self._idk):
                        continue
                    values = entry.get(attribute.casefold(), [])
                    if user_name in values:
                        return self._remote_account(dn, entry)
                    loose = loose or self._remote_account(dn, entry)
            return loose

        return await self._run("search", work)

    @property
    def lookup_batch(self) -> int:
        """Names one search looks up before creates (a filter joined by ``|``, which every
        directory takes): the app's ``lookupBatchSize``, else 100."""
        return min(self.settings.lookup_batch_size or _FILTER_CHUNK, _FILTER_CHUNK)

    #: LDAP filters always take ``|``.
    or_filter_refused = False

    async def find_users(self, user_names: Sequence[str]) -> dict[str, RemoteAccount | None]:
        """The entries for many names in one search per base of the matching attribute: an
        exact value (else one equal but for case) settles a name, and a name is settled as
        absent only when every entry returned belongs to a name asked for (the directory may
        match more loosely than that); a name left out is looked up alone."""
        attribute = self.profile.match_attribute
        names = _unique(user_names)
        if not names:
            return {}
        if self._ad:
            return await self._find_ad_users(names)
        query = ldap_wire.all_of(
            [
                ldap_wire.present("objectClass"),
                ldap_wire.any_of(ldap_wire.equals(attribute, n) for n in names),
            ]
        )

        def work(conn: ldap3.Connection) -> dict[str, RemoteAccount | None]:
            entries = [
                (dn, entry)
                for base in self._bases
                for dn, entry in self._search(conn, base, query, self._account_attributes())
                if entry.get(self._idk)
            ]
            exact: dict[str, RemoteAccount] = {}
            folded: dict[str, RemoteAccount] = {}
            for dn, entry in entries:
                for value in entry.get(attribute.casefold(), []):
                    exact.setdefault(value, self._remote_account(dn, entry))
                    folded.setdefault(value.casefold(), self._remote_account(dn, entry))
            asked = {n.casefold() for n in names}
            complete = all(
                any(v.casefold() in asked for v in entry.get(attribute.casefold(), []))
                for _, entry in entries
            )
            found: dict[str, RemoteAccount | None] = {}
            for name in names:
                match = exact.get(name) or folded.get(name.casefold())
                if match is not None:
                    found[name] = match
                elif complete:
                    found[name] = None
            return found

        return await self._run("search", work)

    async def _find_ad_users(self, names: Sequence[str]) -> dict[str, RemoteAccount | None]:
        """Active Directory: a name is the ``userPrincipalName`` first, else the
        ``sAMAccountName`` its local part gives, but only on an account without a
        ``userPrincipalName`` (one with another is someone else's: ``ann@a.example`` is not
        ``ann@b.example``); both compare without case there. Every name is settled by the one
        search."""
        terms = []
        for name in names:
            terms.append(f"(userPrincipalName={escape_filter_chars(name)})")
            sam = ad.derived_sam(name)
            if sam is not None:
                terms.append(f"(sAMAccountName={escape_filter_chars(sam)})")
        query = f"(&(objectClass=user)(|{''.join(terms)}))"

        def work(conn: ldap3.Connection) -> dict[str, RemoteAccount | None]:
            by_upn: dict[str, RemoteAccount] = {}
            by_sam: dict[str, RemoteAccount] = {}
            for base in self._bases:
                for dn, entry in self._search(conn, base, query, self._account_attributes()):
                    if not entry.get(self._idk):
                        continue
                    account = self._remote_account(dn, entry)
                    for upn in entry.get("userprincipalname", []):
                        by_upn.setdefault(upn.casefold(), account)
                    if entry.get("userprincipalname"):
                        continue
                    for sam in entry.get("samaccountname", []):
                        by_sam.setdefault(sam.casefold(), account)
            found: dict[str, RemoteAccount | None] = {}
            for name in names:
                local = ad.derived_sam(name)
                found[name] = by_upn.get(name.casefold()) or (
                    by_sam.get(local.casefold()) if local is not None else None
                )
            return found

        return await self._run("search", work)

    async def get_user(self, id: str) -> RemoteAccount | None:
        def work(conn: ldap3.Connection) -> RemoteAccount | None:
            found = self._search_uuid(conn, self._bases, id, self._account_attributes())
            return None if found is None else self._remote_account(*found)

        return await self._run("search", work)

    async def create_user(self, attrs: AccountAttributes) -> RemoteAccount:
        """Add the entry; entryAlreadyExists raises ConflictError so the engine links it."""
        parent = self.profile.people_base
        if not attrs.active and self.profile.deactivation is Deactivation.MOVE:
            parent = self.profile.disabled_base or parent
        dn = f"{self._rdn(attrs)},{parent}"
        if self._ad:
            return await self._create_ad_user(dn, attrs)
        values = {k: v for k, v in _attributes(attrs, self.profile.match_attribute).items() if v}

        locking = not attrs.active and self.profile.deactivation is Deactivation.LOCK

        def work(conn: ldap3.Connection) -> RemoteAccount:
            read = None if locking else [self._post_read_request]
            ldap_wire.add(conn, dn, PERSON_CLASSES, values, read)
            if read is not None:
                # The directory answered with the new entry (RFC 4527): no read-back needed.
                answered = self._post_read(conn)
                if answered is not None:
                    return self._remote_account(dn, answered)
            if locking:
                conn.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [LOCKED])]})
            found = self._search(conn, dn, "(objectClass=*)", self._account_attributes(), "BASE")
            if not found or not found[0][1].get(self._idk):
                raise TransientError("LDAP add: the new entry cannot be read back")
            return self._remote_account(*found[0])

        return await self._run_shared("add", work)

    async def _create_ad_user(self, dn: str, attrs: AccountAttributes) -> RemoteAccount:
        """Add a ``user`` without a password: AD creates it disabled and PASSWD_NOTREQD
        (``userAccountControl`` 546). An active account then has ACCOUNTDISABLE cleared, the
        other bits as the directory set them."""
        values = {k: v for k, v in ad.ad_attributes(attrs).items() if v}
        enable = attrs.active and self.profile.deactivation is Deactivation.DISABLE

        def work(conn: ldap3.Connection) -> RemoteAccount:
            conn.add(dn, list(ad.USER_CLASSES), values)
            names = self._account_attributes()
            found = self._search(conn, dn, "(objectClass=*)", names, "BASE")
            if not found or not found[0][1].get(self._idk):
                raise TransientError("LDAP add: the new entry cannot be read back")
            dn_, entry = found[0]
            if enable or self.profile.deactivation is not Deactivation.DISABLE:
                dn_, entry = self._set_uac(conn, dn_, entry, disabled=False)
            return self._remote_account(dn_, entry)

        return await self._run("add", work)

    @staticmethod
    def _set_uac(
        conn: ldap3.Connection, dn: str, entry: dict[str, list[str]], *, disabled: bool
    ) -> tuple[str, dict[str, list[str]]]:
        """Set or clear ACCOUNTDISABLE in ``userAccountControl`` as read, other bits kept."""
        current = _uac(entry)
        wanted = ad.with_disabled(current, disabled)
        if wanted != current:
            conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(wanted)])]})
            entry = {**entry, "useraccountcontrol": [str(wanted)]}
        return dn, entry

    def _modify_account(
        self, conn: ldap3.Connection, user_id: str, attrs: AccountAttributes | None, active: bool
    ) -> RemoteAccount:
        """Bring the entry to ``attrs`` (when given) and ``active``: a modrdn when its RDN
        changes, one modify of the attributes that differ, then the deactivation state."""
        wanted = self._wanted(attrs) if attrs is not None else {}
        names = [*self._account_attributes(), *wanted]
        found = self._search_uuid(conn, self._bases, user_id, names)
        if found is None:
            raise NotFoundError("LDAP: the entry no longer exists", status=404)
        dn, entry = found
        rdn, parent = _split(dn)
        if attrs is not None:
            new_rdn = self._rdn(attrs)
            if _norm(new_rdn) != _norm(rdn):
                conn.modify_dn(dn, new_rdn, delete_old_dn=True)
                rdn, dn = new_rdn, f"{new_rdn},{parent}"
                again = self._search(conn, dn, "(objectClass=*)", names, "BASE")
                entry = again[0][1] if again else entry
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        for name, values in wanted.items():
            current = entry.get(name.casefold(), [])
            if values is None:
                if current:
                    changes[name] = [(ldap3.MODIFY_DELETE, [])]
            elif sorted(values) != sorted(current):
                changes[name] = [(ldap3.MODIFY_REPLACE, values)]
        if changes:
            conn.modify(dn, changes)
        dn, entry = self._set_state(conn, dn, entry, active)
        return self._remote_account(dn, entry)

    def _set_state(
        self, conn: ldap3.Connection, dn: str, entry: dict[str, list[str]], active: bool
    ) -> tuple[str, dict[str, list[str]]]:
        match self.profile.deactivation:
            case Deactivation.DISABLE:
                dn, entry = self._set_uac(conn, dn, entry, disabled=not active)
            case Deactivation.LOCK:
                locked = bool(entry.get("pwdaccountlockedtime"))
                if active and locked:
                    conn.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
                    entry = {**entry, "pwdaccountlockedtime": []}
                elif not active and not locked:
                    conn.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [LOCKED])]})
                    entry = {**entry, "pwdaccountlockedtime": [LOCKED]}
            case Deactivation.MOVE:
                target = self.profile.people_base if active else self.profile.disabled_base
                if target and not _under(dn, target):
                    rdn, _ = _split(dn)
                    conn.modify_dn(dn, rdn, new_superior=target)
                    dn = f"{rdn},{target}"
            case Deactivation.DELETE:
                if not active:
                    conn.delete(dn)
        return dn, entry

    async def replace_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount:
        return await self._addressed(
            "modify", lambda c: self._modify_account(c, id, attrs, attrs.active)
        )

    async def patch_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount | None:
        """The same as ``replace_user``: a modify sends only what changed either way."""
        return await self.replace_user(id, attrs)

    async def set_active(self, id: str, active: bool) -> None:
        def work(conn: ldap3.Connection) -> RemoteAccount:
            return self._modify_account(conn, id, None, active)

        deleting = not active and self.profile.deactivation is Deactivation.DELETE
        if deleting and self.profile.on_missing is OnMissingEntry.TASK:
            # Deactivating deletes the entry: one that is gone already needs no Task.
            with contextlib.suppress(NotFoundError):
                await self._run("modify", work)
            return
        await self._addressed("modify", work)

    async def delete_user(self, id: str) -> None:
        """Delete the entry; one that is already gone counts as deleted."""

        def work(conn: ldap3.Connection) -> None:
            found = self._search_uuid(conn, self._bases, id, [self._ida])
            if found is not None:
                with contextlib.suppress(lx.LDAPNoSuchObjectResult):
                    conn.delete(found[0])

        await self._run("delete", work)

    # -- groups ------------------------------------------------------------------------------

    def _group_name(self, dn: str) -> str:
        rdn, _ = _split(dn)
        return _unescape(rdn.partition("=")[2].strip())

    def _read_group(
        self, conn: ldap3.Connection, group_id: str
    ) -> tuple[str, list[str], bool] | None:
        """(DN, member DNs, whether it holds the placeholder) of the group, or None. Active
        Directory's members are read by range retrieval (its groups may be empty)."""
        names = [self._ida, "cn"] if self._ad else [self._ida, "cn", self._member]
        found = self._search_uuid(conn, [self.profile.groups_base], group_id, names)
        if found is None:
            return None
        dn, entry = found
        if self._ad:
            return dn, self._ranged_members(conn, dn), False
        members = [_OPTIONAL_UID.sub("", m) for m in entry.get(self._member.casefold(), [])]
        return (
            dn,
            [m for m in members if m.strip()],
            len(members) > len([m for m in members if m.strip()]),
        )

    def _ranged_members(self, conn: ldap3.Connection, dn: str) -> list[str]:
        """Every ``member`` value of the group, ``member_range`` values per request
        (``member;range=0-1499``, then from where the directory's answer ended), so a group
        larger than the server's MaxValRange is read whole."""
        members: list[str] = []
        start: int | None = 0
        step = max(1, self.member_range)
        while start is not None:
            wanted = f"{self._member};range={start}-{start + step - 1}"
            try:
                conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=[wanted])
            except lx.LDAPNoSuchObjectResult:
                break
            answer = next(
                (e for e in conn.response or [] if e.get("type") == "searchResEntry"), None
            )
            if answer is None:
                break
            values, start = ad.member_range(answer.get("raw_attributes") or {}, self._member)
            members += [bytes(v).decode("utf-8", errors="replace") for v in values]
        return members

    async def find_group(self, display_name: str) -> RemoteGroup | None:
        def work(conn: ldap3.Connection) -> RemoteGroup | None:
            name = escape_filter_chars(display_name)
            query = f"(&(objectClass={self._group_class})(cn={name}))"
            loose = None
            for dn, entry in self._search(conn, self.profile.groups_base, query, [self._ida, "cn"]):
                if not entry.get(self._idk):
                    continue
                group = RemoteGroup(entry[self._idk][0], self._group_name(dn), None)
                if group.display_name == display_name:
                    return group
                loose = loose or group
            return loose

        return await self._run("search", work)

    async def has_member(self, id: str, member_id: str) -> bool | None:
        """Never asked: a directory's group entries always carry their members."""
        return None

    async def groups_of(self, member_id: str) -> frozenset[str] | None:
        """Never asked: a directory's group entries always carry their members."""
        return None

    async def get_group(self, id: str) -> RemoteGroup | None:
        """The group with its members as account ids (entryUUIDs); a member DN naming no
        account under the bases is given as the DN."""

        def work(conn: ldap3.Connection) -> RemoteGroup | None:
            read = self._read_group(conn, id)
            if read is None:
                return None
            dn, members, _ = read
            return RemoteGroup(id, self._group_name(dn), frozenset(self._ids_of(conn, members)))

        return await self._run("search", work)

    async def create_group(self, display_name: str) -> RemoteGroup:
        """Add an empty group (holding only the placeholder member)."""
        dn = f"cn={escape_rdn(display_name)},{self.profile.groups_base}"

        if self._ad:
            # AD's groups may be empty; a global security group named like its source.
            values: dict[str, Any] = {
                "cn": display_name,
                "sAMAccountName": ad.group_account_name(display_name),
            }
        else:
            values = {"cn": display_name, self._member: [PLACEHOLDER]}

        def work(conn: ldap3.Connection) -> RemoteGroup:
            conn.add(dn, ["top", self._group_class], values)
            found = self._search(conn, dn, "(objectClass=*)", [self._ida], "BASE")
            if not found or not found[0][1].get(self._idk):
                raise TransientError("LDAP add: the new group cannot be read back")
            return RemoteGroup(found[0][1][self._idk][0], display_name, frozenset())

        return await self._run("add", work)

    async def rename_group(self, id: str, display_name: str) -> None:
        """Rename by modrdn (the old cn value goes)."""

        def work(conn: ldap3.Connection) -> None:
            read = self._read_group(conn, id)
            if read is None:
                raise NotFoundError("LDAP: the group no longer exists", status=404)
            if self._group_name(read[0]) != display_name:
                conn.modify_dn(read[0], f"cn={escape_rdn(display_name)}", delete_old_dn=True)

        await self._addressed("modrdn", work)

    async def delete_group(self, id: str) -> None:
        def work(conn: ldap3.Connection) -> None:
            read = self._read_group(conn, id)
            if read is not None:
                with contextlib.suppress(lx.LDAPNoSuchObjectResult):
                    conn.delete(read[0])

        await self._run("delete", work)

    # -- memberships -------------------------------------------------------------------------

    def _change_members(
        self,
        conn: ldap3.Connection,
        group_id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        only: bool = False,
    ) -> int:
        """Add and remove members (by account id) against what the group holds now; with
        ``only`` every member not in ``add`` goes. Returns the modify requests sent.

        Adds go first and the placeholder last, so the group is never left without a member
        (which ``groupOfNames`` and ``groupOfUniqueNames`` forbid).
        """
        read = self._read_group(conn, group_id)
        if read is None:
            raise NotFoundError("LDAP: the group no longer exists", status=404)
        dn, current, placeholder_held = read
        held = {_norm(m): m for m in current}
        dns = self._dns_of(conn, [*add, *remove])
        missing = [m for m in add if m not in dns]
        if missing:
            raise PermanentError(
                f"LDAP: {len(missing)} member(s) have no entry in the directory", status=400
            )
        wanted = {_norm(dns[m]): dns[m] for m in add}
        to_add = [dn_ for key, dn_ in wanted.items() if key not in held]
        if only:
            to_remove = [dn_ for key, dn_ in held.items() if key not in wanted]
        else:
            gone = {_norm(dns[m]) for m in remove if m in dns} - set(wanted)
            to_remove = [held[key] for key in gone if key in held]
        if not to_add and not to_remove:
            return 0
        left = len(held) + len(to_add) - len(to_remove)
        sent = 0
        for index, batch in enumerate(_chunks(to_add, self._batch)):
            change: list[tuple[str, list[str]]] = [(ldap3.MODIFY_ADD, list(batch))]
            if index == 0 and placeholder_held:
                change.append((ldap3.MODIFY_DELETE, [PLACEHOLDER]))
                placeholder_held = False
            self._modify_members(conn, dn, change)
            sent += 1
        batches = _chunks(to_remove, self._batch)
        for index, batch in enumerate(batches):
            change = [(ldap3.MODIFY_DELETE, list(batch))]
            last = index == len(batches) - 1
            if left <= 0 and last and not placeholder_held and not self._ad:
                change.insert(0, (ldap3.MODIFY_ADD, [PLACEHOLDER]))
            self._modify_members(conn, dn, change)
            sent += 1
        return sent

    def _modify_members(
        self, conn: ldap3.Connection, dn: str, change: list[tuple[str, list[str]]]
    ) -> None:
        """One modify of the group's members. Active Directory answers noSuchObject for a
        member DN that names no entry (the group was just read, so it is there): that is the
        request's fault, not a group to create again."""
        try:
            conn.modify(dn, {self._member: change})
        except lx.LDAPNoSuchObjectResult as exc:
            if not self._ad:
                raise
            raise PermanentError(
                "LDAP modify: a member names no entry in Active Directory",
                status=400,
                detail=self.scrubber(str(exc.message or ""), limit=MAX_DETAIL),
            ) from None

    async def patch_members(
        self,
        id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None = None,
    ) -> int:
        """Add and remove in modify batches of ``membership_batch_size`` values."""
        if not add and not remove:
            return 0
        return await self._addressed(
            "modify", lambda c: self._change_members(c, id, add=add, remove=remove)
        )

    async def remove_members(
        self, id: str, member_ids: Sequence[str], *, whole: GroupState | None = None
    ) -> None:
        """Take members out; a group that is gone holds nobody."""
        if not member_ids:
            return
        with contextlib.suppress(NotFoundError):
            await self._run(
                "modify", lambda c: self._change_members(c, id, add=[], remove=member_ids)
            )

    async def replace_members(
        self,
        id: str,
        display_name: str,
        member_ids: Sequence[str],
        *,
        recorded: Sequence[str] = (),
    ) -> int:
        """Make the group hold exactly ``member_ids`` (others, foreign DNs too, go)."""
        members = _unique(member_ids)
        return await self._addressed(
            "modify", lambda c: self._change_members(c, id, add=members, remove=(), only=True)
        )
