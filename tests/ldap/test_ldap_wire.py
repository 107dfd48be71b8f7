"""The hand-encoded add and search: byte for byte what ldap3 sends, and answered by a real slapd
exactly as ldap3's own requests are (results, Post-Read, refusals, broken connections)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import ldap3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.core import exceptions as lx
from ldap3.operation.add import add_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.convert import build_controls_list
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.asn1 import encode  # type: ignore[attr-defined]
from ldap3.utils.conv import escape_filter_chars

from headwater.connectors import ldap_wire
from headwater.testing.slapd import Slapd

_SCOPES: dict[Literal["BASE", "LEVEL", "SUBTREE"], int] = {"BASE": 0, "LEVEL": 1, "SUBTREE": 2}
_POST_READ = "1.3.6.1.1.13.2"


def _ldap3_message(
    message_id: int, kind: str, request: Any, controls: list[ldap_wire.Control] | None
) -> bytes:
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    built = build_controls_list(list(controls) if controls else None)
    if built is not None:
        message["controls"] = built
    return bytes(encode(message))


def _post_read(attributes: list[str]) -> ldap_wire.Control:
    control = post_read_control(attributes)
    return (_POST_READ, False, bytes(control["controlValue"]))


# Text as a directory holds it: any printable character, long enough that lengths take more
# than one octet (over 127 bytes) now and then.
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=160)
_names = st.sampled_from(["uid", "cn", "sn", "givenName", "mail", "title", "description"])
_message_ids = st.integers(min_value=1, max_value=2**31 - 1)
_controls = st.none() | st.lists(
    st.sampled_from(
        [
            _post_read(["entryUUID", "uid"]),
            ("1.2.840.113556.1.4.805", True, None),
            ("1.3.6.1.4.1.4203.1.10.2", False, b"\x30\x00"),
        ]
    ),
    min_size=1,
    max_size=2,
)


@settings(max_examples=150, deadline=None)
@given(
    message_id=_message_ids,
    dn=_text,
    attributes=st.dictionaries(_names, st.lists(_text, min_size=1, max_size=4), min_size=1),
    classes=st.lists(st.sampled_from(["top", "person", "inetOrgPerson"]), min_size=1),
    controls=_controls,
)
def test_an_add_is_encoded_as_ldap3_encodes_it(
    message_id: int,
    dn: str,
    attributes: dict[str, list[str]],
    classes: list[str],
    controls: list[ldap_wire.Control] | None,
) -> None:
    request = add_operation(
        dn, {**attributes, "objectClass": list(dict.fromkeys(classes))}, True, None
    )
    expected = _ldap3_message(message_id, "addRequest", request, controls)
    encoded = ldap_wire.message(
        message_id, ldap_wire.add_request(dn, classes, attributes), controls
    )
    assert encoded == expected


def test_a_value_past_64_kib_takes_a_three_octet_length() -> None:
    value = "x" * 70_000
    request = add_operation("cn=big", {"description": value, "objectClass": ["top"]}, True, None)
    encoded = ldap_wire.message(3, ldap_wire.add_request("cn=big", ["top"], {"description": value}))
    assert encoded == _ldap3_message(3, "addRequest", request, None)


def test_object_classes_are_not_passed_as_an_attribute() -> None:
    with pytest.raises(ValueError, match="object classes"):
        ldap_wire.add_request("cn=x", ["top"], {"objectClass": ["person"]})


def test_a_value_that_is_neither_text_nor_bytes_is_refused() -> None:
    with pytest.raises(TypeError, match="text or bytes"):
        ldap_wire.add_request("cn=x", ["top"], {"employeeNumber": [5]})  # type: ignore[list-item]


@settings(max_examples=150, deadline=None)
@given(
    message_id=_message_ids,
    base=_text,
    scope=st.sampled_from(["BASE", "LEVEL", "SUBTREE"]),
    attribute=_names,
    # ldap3's filter parser trims spaces around a value; the wire filter sends it as given.
    values=st.lists(_text.filter(lambda v: v == v.strip()), min_size=1, max_size=12),
    selection=st.lists(_names, max_size=4),
    with_presence=st.booleans(),
)
def test_a_search_for_any_of_many_values_is_encoded_as_ldap3_encodes_its_filter(
    message_id: int,
    base: str,
    scope: Literal["BASE", "LEVEL", "SUBTREE"],
    attribute: str,
    values: list[str],
    selection: list[str],
    with_presence: bool,
) -> None:
    # ldap3 parses text, whose special characters must be escaped; the wire filter takes values.
    terms = "".join(f"({attribute}={escape_filter_chars(v)})" for v in values)
    text = f"(|{terms})"
    query = ldap_wire.any_of(ldap_wire.equals(attribute, v) for v in values)
    if with_presence:
        text = f"(&(objectClass=*){text})"
        query = ldap_wire.all_of([ldap_wire.present("objectClass"), query])
    request = search_operation(
        base, text, _SCOPES[scope], ldap3.DEREF_ALWAYS, selection, 0, 0, False, True, True, None
    )
    expected = _ldap3_message(message_id, "searchRequest", request, None)
    encoded = ldap_wire.message(message_id, ldap_wire.search_request(base, scope, query, selection))
    assert encoded == expected


# --- against slapd -----------------------------------------------------------------------------


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def test_an_add_lands_in_the_directory_with_its_post_read_answer(slapd: Slapd) -> None:
    uid = _name("wire")
    dn = f"uid={uid},{slapd.people_base}"
    with slapd.connect() as conn:
        ldap_wire.add(
            conn,
            dn,
            ("top", "person", "organizationalPerson", "inetOrgPerson"),
            {"uid": uid, "cn": ["Zoë Wire"], "sn": "Wire", "mail": [f"{uid}@example.com"]},
            [_post_read(["entryUUID", "uid", "cn"])],
        )
        assert conn.result["result"] == 0
        answered = conn.result["controls"][_POST_READ]["value"]["result"]
        assert answered["uid"] == [uid] and answered["cn"] == ["Zoë Wire"]
        assert uuid.UUID(str(answered["entryUUID"][0]))

        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["cn", "mail"])
        assert conn.entries[0]["cn"].values == ["Zoë Wire"]
        assert conn.entries[0]["mail"].values == [f"{uid}@example.com"]


def test_an_add_the_directory_refuses_raises_what_ldap3_raises(slapd: Slapd) -> None:
    uid = _name("twice")
    dn = f"uid={uid},{slapd.people_base}"
    classes = ("top", "person", "inetOrgPerson")
    with slapd.connect() as conn:
        ldap_wire.add(conn, dn, classes, {"uid": uid, "cn": uid, "sn": uid})
        with pytest.raises(lx.LDAPEntryAlreadyExistsResult):
            ldap_wire.add(conn, dn, classes, {"uid": uid, "cn": uid, "sn": uid})
        with pytest.raises(lx.LDAPObjectClassViolationResult):
            ldap_wire.add(conn, f"uid={_name('nosn')},{slapd.people_base}", classes, {"cn": "x"})
        # The connection goes on answering after a refusal.
        ldap_wire.add(
            conn, f"uid={_name('after')},{slapd.people_base}", classes, {"cn": "a", "sn": "b"}
        )
        assert conn.result["result"] == 0


def test_a_search_finds_what_ldap3_finds(slapd: Slapd) -> None:
    names = [_name("find") for _ in range(5)]
    classes = ("top", "person", "inetOrgPerson")
    with slapd.connect() as conn:
        for name in names[:4]:
            ldap_wire.add(conn, f"uid={name},{slapd.people_base}", classes, {"cn": name, "sn": "s"})
        # A value with the filter's special characters needs no escaping here.
        odd = "a*(b)\\c"
        ldap_wire.add(conn, f"cn=odd{names[4]},{slapd.people_base}", classes, {"sn": odd})

        query = ldap_wire.all_of(
            [
                ldap_wire.present("objectClass"),
                ldap_wire.any_of(ldap_wire.equals("uid", n) for n in [*names[:4], "nobody"]),
            ]
        )
        found = ldap_wire.search(conn, slapd.people_base, "SUBTREE", query, ["uid", "title"])
        entries = [e for e in found if e["type"] == "searchResEntry"]
        assert sorted(e["attributes"]["uid"][0] for e in entries) == sorted(names[:4])
        # Attributes asked for and absent come back empty, as with ldap3's own searches.
        assert all(e["attributes"]["title"] == [] for e in entries)

        conn.search(slapd.people_base, f"(sn={escape_filter_chars(odd)})", attributes=["sn"])
        by_ldap3 = [e["dn"] for e in conn.response or [] if e["type"] == "searchResEntry"]
        by_wire = ldap_wire.search(
            conn, slapd.people_base, "SUBTREE", ldap_wire.equals("sn", odd), ["sn"]
        )
        assert [e["dn"] for e in by_wire if e["type"] == "searchResEntry"] == by_ldap3 != []


def test_a_search_under_a_missing_base_raises_no_such_object(slapd: Slapd) -> None:
    with slapd.connect() as conn, pytest.raises(lx.LDAPNoSuchObjectResult):
        ldap_wire.search(
            conn, f"ou=missing,{slapd.people_base}", "SUBTREE", ldap_wire.present("uid"), []
        )


def test_a_closed_connection_raises_a_communication_error(slapd: Slapd) -> None:
    with slapd.connect() as conn:
        conn.unbind()
        with pytest.raises(lx.LDAPCommunicationError):
            ldap_wire.add(conn, f"uid={_name('closed')},{slapd.people_base}", ["top"], {"cn": "x"})


def test_a_connection_the_directory_dropped_raises_a_communication_error(
    fresh_slapd: Slapd,
) -> None:
    with fresh_slapd.connect() as conn:
        fresh_slapd.stop()
        try:
            with pytest.raises(lx.LDAPCommunicationError):
                ldap_wire.search(
                    conn, fresh_slapd.people_base, "SUBTREE", ldap_wire.present("uid"), []
                )
        finally:
            fresh_slapd.start()
