"""The requests Headwater sends by the thousand, encoded by hand and sent through ldap3's
own connection: the add, and the search for any of many values.

ldap3 builds every request as pyasn1 objects and encodes them with pyasn1's generic BER
encoder: about 290 µs of CPU for one account's add with its Post-Read control, two thirds of
what the whole add costs the client, and milliseconds for a search whose filter names a hundred
accounts (the filter string is parsed first). Here their bytes are written directly (RFC 4511
§4.5.1 and §4.7; BER with definite lengths, as ldap3 writes them), about 15 µs for an add. A
filter is built from values, not parsed from text, so no value needs escaping.

Everything else stays ldap3's: the socket, TLS, message ids, reading and decoding the answer,
and the exceptions a failure raises, so the connector treats these requests exactly like
``Connection.add`` and ``Connection.search``. The tests check the bytes against ldap3's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NewType

import ldap3
from ldap3.core import exceptions as lx

#: BER tags (RFC 4511 appendix B): universal types, the add request's application tag, the
#: message's context-specific controls.
_BOOLEAN, _INTEGER, _OCTET_STRING = 0x01, 0x02, 0x04
_SEQUENCE, _SET = 0x30, 0x31
_ENUMERATED = 0x0A
_SEARCH_REQUEST = 0x63  # [APPLICATION 3], constructed
_ADD_REQUEST = 0x68  # [APPLICATION 8], constructed
_CONTROLS = 0xA0  # [0], constructed
#: Filter choices (RFC 4511 §4.5.1.7): and, or, equalityMatch (constructed), present.
_AND, _OR, _EQUALITY, _PRESENT = 0xA0, 0xA1, 0xA3, 0x87
_SCOPES = {"BASE": 0, "LEVEL": 1, "SUBTREE": 2}
#: derefAliases: ldap3's default, derefAlways.
_DEREF_ALWAYS = 3

#: An encoded search filter.
Filter = NewType("Filter", bytes)

#: A control as ldap3 takes it: (OID, criticality, encoded value or None).
Control = tuple[str, bool, bytes | None]
#: Attribute values as ldap3's ``add`` takes them: one value or a sequence of them.
Values = str | bytes | Sequence[str | bytes]


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _octets(value: str | bytes) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:  # bytes(5) would be five zero bytes, not "5"
        raise TypeError(f"an LDAP value is text or bytes, not {type(value).__name__}")
    return _tlv(_OCTET_STRING, raw)


def _integer(value: int) -> bytes:
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _as_list(values: Values) -> Sequence[str | bytes]:
    return [values] if isinstance(values, str | bytes) else values


def add_request(dn: str, object_classes: Sequence[str], attributes: Mapping[str, Values]) -> bytes:
    """The AddRequest protocol op: the given attributes in order, then ``objectClass`` (as
    ``Connection.add`` orders them)."""
    if any(name.lower() == "objectclass" for name in attributes):
        raise ValueError("pass object classes apart from the attributes")
    listed: Iterable[tuple[str, Sequence[str | bytes]]] = [
        *((name, _as_list(values)) for name, values in attributes.items()),
        ("objectClass", list(dict.fromkeys(object_classes))),
    ]
    encoded = b"".join(
        _tlv(_SEQUENCE, _octets(name) + _tlv(_SET, b"".join(_octets(v) for v in values)))
        for name, values in listed
    )
    return _tlv(_ADD_REQUEST, _octets(dn) + _tlv(_SEQUENCE, encoded))


def equals(attribute: str, value: str | bytes) -> Filter:
    """``(attribute=value)``, the value as it is (nothing to escape)."""
    return Filter(_tlv(_EQUALITY, _octets(attribute) + _octets(value)))


def present(attribute: str) -> Filter:
    """``(attribute=*)``."""
    return Filter(_tlv(_PRESENT, attribute.encode("utf-8")))


def any_of(filters: Iterable[Filter]) -> Filter:
    """``(|…)``."""
    return Filter(_tlv(_OR, b"".join(filters)))


def all_of(filters: Iterable[Filter]) -> Filter:
    """``(&…)``."""
    return Filter(_tlv(_AND, b"".join(filters)))


def search_request(
    base: str,
    scope: Literal["BASE", "LEVEL", "SUBTREE"],
    query: Filter,
    attributes: Sequence[str],
) -> bytes:
    """The SearchRequest protocol op, with ldap3's defaults: aliases always dereferenced, no
    size or time limit, values wanted as well as types."""
    selection = b"".join(_octets(a) for a in attributes)
    return _tlv(
        _SEARCH_REQUEST,
        _octets(base)
        + _tlv(_ENUMERATED, bytes((_SCOPES[scope],)))
        + _tlv(_ENUMERATED, bytes((_DEREF_ALWAYS,)))
        + _integer(0)
        + _integer(0)
        + _tlv(_BOOLEAN, b"\x00")
        + query
        + _tlv(_SEQUENCE, selection),
    )


def _control(oid: str, critical: bool, value: bytes | None) -> bytes:
    content = _octets(oid)
    if critical:  # DEFAULT FALSE: left out when false, as ldap3 leaves it
        content += _tlv(_BOOLEAN, b"\xff")
    if value is not None:
        content += _octets(value)
    return _tlv(_SEQUENCE, content)


def message(message_id: int, operation: bytes, controls: Sequence[Control] | None = None) -> bytes:
    """The LDAPMessage envelope: id, protocol op, controls when there are any."""
    content = _integer(message_id) + operation
    if controls:
        content += _tlv(_CONTROLS, b"".join(_control(*c) for c in controls))
    return _tlv(_SEQUENCE, content)


def add(
    conn: ldap3.Connection,
    dn: str,
    object_classes: Sequence[str],
    attributes: Mapping[str, Values],
    controls: Sequence[Control] | None = None,
) -> None:
    """``conn.add(dn, object_classes, attributes, controls=controls)``: the answer lands in
    ``conn.result``."""
    request: dict[str, Any] = {"type": "addRequest", "entry": dn, "controls": controls}
    operation = add_request(dn, object_classes, attributes)
    _exchange(conn, request, operation, controls, search=False)


def search(
    conn: ldap3.Connection,
    base: str,
    scope: Literal["BASE", "LEVEL", "SUBTREE"],
    query: Filter,
    attributes: Sequence[str],
) -> list[dict[str, Any]]:
    """``conn.search(base, …, search_scope=scope, attributes=attributes)`` with an encoded
    filter: the answers (entries and references), also in ``conn.response``."""
    request = {
        "type": "searchRequest",
        "base": base,
        "scope": _SCOPES[scope],
        "attributes": list(attributes),
    }
    operation = search_request(base, scope, query, attributes)
    return _exchange(conn, request, operation, None, search=True)


def _exchange(
    conn: ldap3.Connection,
    request: dict[str, Any],
    operation: bytes,
    controls: Sequence[Control] | None,
    *,
    search: bool,
) -> list[dict[str, Any]]:
    """Send one request on a connection with ``raise_exceptions`` and read its answer the way
    ldap3 does: a refusal raises ``LDAPOperationResult``, a broken socket an
    ``LDAPCommunicationError``."""
    if not conn.raise_exceptions:
        raise ValueError("hand-encoded requests report failures by exceptions only")
    strategy: Any = conn.strategy
    with conn.connection_lock:
        if not conn.listening or conn.socket is None:
            conn.last_error = "unable to send message, socket is not open"
            raise lx.LDAPSocketOpenError(conn.last_error)
        message_id = conn.server.next_message_id()
        # What ldap3 keeps of a request in flight: it reads the requested attributes back to
        # fill in empty ones, and the rest for referrals (not followed here).
        conn.request = request
        conn.last_error = ""
        strategy._outstanding[message_id] = request
        try:
            conn.socket.sendall(message(message_id, operation, controls))
        except OSError as exc:
            strategy._outstanding.pop(message_id, None)
            conn.last_error = f"socket sending error {exc}"
            raise lx.LDAPSocketSendError(conn.last_error) from exc
        if search:
            return list(strategy.post_send_search(message_id))
        strategy.post_send_single_response(message_id)
        return []
