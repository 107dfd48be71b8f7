"""The LDAP connector's Active Directory dialect against a real Samba AD DC: accounts linked by
objectGUID, userAccountControl, groups and range retrieval of their members, AD's errors."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import ldap3
import pytest
from ldap3.core import exceptions as lx

from headwater.connectors.ad import guid_text
from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    NotFoundError,
    PermanentError,
)
from headwater.connectors.ldap import LdapConnector, ldap_error
from headwater.connectors.outbound import OutboundPolicy
from headwater.domain.downstream import AccountAttributes
from headwater.domain.ldap import Deactivation, Directory, GroupClass, LdapProfile
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.samba import SambaDC

LOOPBACK = OutboundPolicy.from_text("127.0.0.0/8")
#: userAccountControl: NORMAL_ACCOUNT, PASSWD_NOTREQD, ACCOUNTDISABLE, DONT_EXPIRE_PASSWORD.
NORMAL, NOTREQD, DISABLED, DONT_EXPIRE = 0x200, 0x20, 0x2, 0x10000


def connector(
    samba: SambaDC,
    ou: str,
    *,
    password: str | None = None,
    member_range: int = 1500,
    batch: int = 100,
    **profile: object,
) -> LdapConnector:
    values: dict[str, object] = {
        "directory": Directory.ACTIVE_DIRECTORY,
        "bind_dn": samba.bind_dn,
        "people_base": f"OU=people,{ou}",
        "groups_base": f"OU=groups,{ou}",
        "disabled_base": f"OU=disabled,{ou}",
        "ca_pem": samba.ca_pem,
        "deactivation": Deactivation.DISABLE,
        "dn_template": "cn=${userName}",
        "match_attribute": "sAMAccountName",
        "group_class": GroupClass.GROUP,
    }
    values.update(profile)
    return LdapConnector(
        samba.url,
        password=samba.password if password is None else password,
        profile=LdapProfile(**values),  # type: ignore[arg-type]
        settings=ProvisioningSettings(membership_batch_size=batch, request_timeout=10),
        policy=LOOPBACK,
        member_range=member_range,
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def person(user_name: str, **changes: object) -> AccountAttributes:
    attrs = AccountAttributes(
        user_name=user_name,
        external_id="00u" + user_name,
        given_name="Ada",
        family_name="Lovelace",
        email=user_name,
        title="Engineer",
    )
    return replace(attrs, **changes)  # type: ignore[arg-type]


def read(samba: SambaDC, base: str, query: str) -> dict[str, Any]:
    """An independent read of the one entry matching ``query``: its DN under "dn", its
    objectGUID as text, and every other attribute as text values."""
    with samba.connect() as conn:
        conn.search(base, query, attributes=["*", "objectGUID", "whenChanged", "uSNChanged"])
        found = [e for e in conn.response or [] if e["type"] == "searchResEntry"]
        assert len(found) == 1, found
        raw = found[0]["raw_attributes"]
        values: dict[str, Any] = {
            k: [bytes(v).decode("utf-8", "replace") for v in raw[k]] for k in raw
        }
        values["objectGUID"] = guid_text(bytes(raw["objectGUID"][0]))
        values["dn"] = found[0]["dn"]
        return values


def uac(samba: SambaDC, ou: str, sam: str) -> int:
    return int(read(samba, ou, f"(sAMAccountName={sam})")["userAccountControl"][0])


async def test_connection_test_checks_the_dialect(samba: SambaDC, ad_ou: str) -> None:
    good = connector(samba, ad_ou)
    await good.test_connection()
    await good.aclose()
    openldap = connector(samba, ad_ou, directory=Directory.OPENLDAP)
    with pytest.raises(AppUnavailableError, match="is Active Directory"):
        await openldap.test_connection()
    await openldap.aclose()
    wrong = connector(samba, ad_ou, password="not-the-Passw0rd")
    with pytest.raises(AppUnavailableError) as caught:
        await wrong.test_connection()
    assert "not-the-Passw0rd" not in str(caught.value)
    await wrong.aclose()


async def test_create_find_update_and_link_by_object_guid(samba: SambaDC, ad_ou: str) -> None:
    ldap = connector(samba, ad_ou)
    sam = unique("ada")
    name = f"{sam}@hw.test"
    created = await ldap.create_user(person(name, display_name="Ada L."))
    assert created.user_name == name and created.active
    seen = read(samba, ad_ou, f"(sAMAccountName={sam})")
    assert seen["objectGUID"] == created.id
    assert seen["dn"] == f"CN={name},OU=people,{ad_ou}"
    assert seen["userPrincipalName"] == [name] and seen["mail"] == [name]
    assert seen["givenName"] == ["Ada"] and seen["sn"] == ["Lovelace"]
    assert "user" in seen["objectClass"]
    # Created as AD creates a user without a password (disabled, PASSWD_NOTREQD), then enabled.
    assert int(seen["userAccountControl"][0]) == NORMAL | NOTREQD
    assert await ldap.find_user(name) == created
    assert await ldap.find_users([name, "nobody@hw.test"]) == {
        name: created,
        "nobody@hw.test": None,
    }
    # Only what changed is sent: an unchanged replace writes nothing.
    before = seen["uSNChanged"]
    await ldap.replace_user(created.id, person(name, display_name="Ada L."))
    assert read(samba, ad_ou, f"(sAMAccountName={sam})")["uSNChanged"] == before
    await ldap.replace_user(created.id, person(name, display_name="Ada L.", title=None))
    seen = read(samba, ad_ou, f"(sAMAccountName={sam})")
    assert "title" not in seen and seen["uSNChanged"] != before
    # Someone renames and moves the entry: the objectGUID link holds.
    with samba.connect() as conn:
        conn.modify_dn(seen["dn"], "CN=Someone Else", new_superior=f"OU=groups,{ad_ou}")
    assert await ldap.get_user(created.id) is None  # outside the people base now
    with samba.connect() as conn:
        conn.modify_dn(
            f"CN=Someone Else,OU=groups,{ad_ou}",
            "CN=Someone Else",
            new_superior=f"OU=people,{ad_ou}",
        )
    account = await ldap.get_user(created.id)
    assert account is not None and account.id == created.id
    await ldap.replace_user(created.id, person(name, department="R&D"))
    seen = read(samba, ad_ou, f"(objectGUID=*)(sAMAccountName={sam})".join(["(&", ")"]))
    assert seen["dn"] == f"CN={name},OU=people,{ad_ou}"  # the template's name again
    assert seen["department"] == ["R&D"] and seen["objectGUID"] == created.id
    await ldap.delete_user(created.id)
    await ldap.delete_user(created.id)  # gone counts as deleted
    assert await ldap.get_user(created.id) is None
    with pytest.raises(NotFoundError):
        await ldap.replace_user(created.id, person(name))
    await ldap.aclose()


async def test_conflicts_link_by_sam_account_name_or_upn(samba: SambaDC, ad_ou: str) -> None:
    """An account that exists under another DN: AD refuses the add (sAMAccountName in use:
    entryAlreadyExists; userPrincipalName in use: constraintViolation), both a
    ConflictError, and find_user finds the account to link: by userPrincipalName, or by
    sAMAccountName when the account has no userPrincipalName. One whose userPrincipalName is
    another's is not linked by the local part."""
    ldap = connector(samba, ad_ou)
    user = ["top", "person", "organizationalPerson", "user"]
    sam, other, taken = unique("cl"), unique("up"), unique("tk")
    with samba.connect() as conn:
        conn.add(f"CN=Existing {sam},OU=people,{ad_ou}", user, {"sAMAccountName": sam})
        conn.add(
            f"CN=Existing {other},OU=people,{ad_ou}",
            user,
            {"sAMAccountName": unique("x"), "userPrincipalName": f"{other}@hw.test"},
        )
        conn.add(
            f"CN=Existing {taken},OU=people,{ad_ou}",
            user,
            {"sAMAccountName": taken, "userPrincipalName": f"{taken}@corp.example"},
        )
    with pytest.raises(ConflictError, match="AD error"):
        await ldap.create_user(person(f"{sam}@hw.test"))
    found = await ldap.find_user(f"{sam}@hw.test")
    assert found is not None and found.user_name == sam
    assert read(samba, ad_ou, f"(sAMAccountName={sam})")["objectGUID"] == found.id
    with pytest.raises(ConflictError, match="constraintViolation"):
        await ldap.create_user(person(f"{other}@hw.test"))
    found = await ldap.find_user(f"{other}@hw.test")
    assert found is not None and found.user_name == f"{other}@hw.test"
    # Someone else's sAMAccountName: not linked; the add is refused (a conflict left as is,
    # which the engine makes a Task), and a mapped sAMAccountName creates the account. (A UPN
    # in the domain's own realm would clash too: AD implies sAMAccountName@realm.)
    elsewhere = f"{taken}@example.org"
    assert await ldap.find_user(elsewhere) is None
    with pytest.raises(ConflictError):
        await ldap.create_user(person(elsewhere))
    mapped = unique("mp")
    created = await ldap.create_user(person(elsewhere, extra={"sAMAccountName": mapped}))
    assert read(samba, ad_ou, f"(sAMAccountName={mapped})")["objectGUID"] == created.id
    await ldap.aclose()


async def test_a_sam_account_name_that_cannot_fit_is_a_clear_error(
    samba: SambaDC, ad_ou: str
) -> None:
    ldap = connector(samba, ad_ou)
    long_name = "a-very-long-local-part-indeed@hw.test"
    with pytest.raises(PermanentError, match="at most 20 characters") as caught:
        await ldap.create_user(person(long_name))
    assert caught.value.status == 400
    # Mapped explicitly, it fits.
    mapped = unique("m")
    created = await ldap.create_user(person(long_name, extra={"sAMAccountName": mapped}))
    assert read(samba, ad_ou, f"(sAMAccountName={mapped})")["objectGUID"] == created.id
    with samba.connect() as conn:
        conn.search(ad_ou, "(sAMAccountName=a-very-long*)", attributes=["cn"])
        assert not [e for e in conn.response or [] if e["type"] == "searchResEntry"]
    await ldap.aclose()


async def test_deactivation_flips_only_the_disable_bit(samba: SambaDC, ad_ou: str) -> None:
    ldap = connector(samba, ad_ou)
    sam = unique("off")
    created = await ldap.create_user(person(f"{sam}@hw.test"))
    # Someone else sets another bit: it must survive deactivation and reactivation.
    dn = read(samba, ad_ou, f"(sAMAccountName={sam})")["dn"]
    with samba.connect() as conn:
        value = str(NORMAL | NOTREQD | DONT_EXPIRE)
        conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [value])]})
    await ldap.set_active(created.id, False)
    assert uac(samba, ad_ou, sam) == NORMAL | NOTREQD | DONT_EXPIRE | DISABLED
    account = await ldap.get_user(created.id)
    assert account is not None and not account.active
    await ldap.set_active(created.id, False)  # already disabled: nothing changes
    assert uac(samba, ad_ou, sam) == NORMAL | NOTREQD | DONT_EXPIRE | DISABLED
    await ldap.replace_user(created.id, person(f"{sam}@hw.test", active=True))
    assert uac(samba, ad_ou, sam) == NORMAL | NOTREQD | DONT_EXPIRE
    account = await ldap.get_user(created.id)
    assert account is not None and account.active
    # Created inactive: it stays as AD made it (disabled).
    sam2 = unique("new")
    inactive = await ldap.create_user(person(f"{sam2}@hw.test", active=False))
    assert not inactive.active
    assert uac(samba, ad_ou, sam2) == NORMAL | NOTREQD | DISABLED
    await ldap.aclose()


async def test_move_deactivation_works_in_ad_too(samba: SambaDC, ad_ou: str) -> None:
    ldap = connector(samba, ad_ou, deactivation=Deactivation.MOVE)
    sam = unique("mv")
    created = await ldap.create_user(person(f"{sam}@hw.test"))
    await ldap.set_active(created.id, False)
    seen = read(samba, ad_ou, f"(sAMAccountName={sam})")
    assert seen["dn"].endswith(f"OU=disabled,{ad_ou}")
    await ldap.set_active(created.id, True)
    seen = read(samba, ad_ou, f"(sAMAccountName={sam})")
    assert seen["dn"].endswith(f"OU=people,{ad_ou}") and seen["objectGUID"] == created.id
    await ldap.aclose()


async def test_groups_members_rename_and_drift(samba: SambaDC, ad_ou: str) -> None:
    ldap = connector(samba, ad_ou, batch=2)
    users = [await ldap.create_user(person(f"{unique('g')}@hw.test")) for _ in range(5)]
    ids = [u.id for u in users]
    name = unique("Engineering ")
    group = await ldap.create_group(name)
    assert (await ldap.find_group(name)) == replace(group, member_ids=None)
    with pytest.raises(ConflictError):
        await ldap.create_group(name)
    written = read(samba, ad_ou, f"(cn={name})")
    assert "group" in written["objectClass"] and written["objectGUID"] == group.id
    assert written["sAMAccountName"] == [name] and "member" not in written  # empty is allowed
    assert await ldap.patch_members(group.id, add=ids, remove=[]) == 3
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(ids)
    assert len(read(samba, ad_ou, f"(cn={name})")["member"]) == 5
    assert await ldap.patch_members(group.id, add=ids[:1], remove=ids[3:]) == 1
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(ids[:3])
    # memberOf is AD's own back-link.
    first = read(samba, ad_ou, f"(objectGUID=*)(cn={users[0].user_name})".join(["(&", ")"]))
    assert first["memberOf"] == [f"CN={name},OU=groups,{ad_ou}"]
    # Drift: someone adds a foreign member by hand; a replace removes it.
    foreign = unique("stranger")
    with samba.connect() as conn:
        conn.add(f"CN={foreign},{ad_ou}", ["top", "group"], {"sAMAccountName": foreign})
        conn.modify(
            f"CN={name},OU=groups,{ad_ou}",
            {"member": [(ldap3.MODIFY_ADD, [f"CN={foreign},{ad_ou}"])]},
        )
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids is not None and len(got.member_ids) == 4
    await ldap.replace_members(group.id, name, ids[1:2])
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(ids[1:2])
    await ldap.remove_members(group.id, ids)
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset()
    assert "member" not in read(samba, ad_ou, f"(cn={name})")  # no placeholder in AD
    renamed = unique("Platform ")
    await ldap.rename_group(group.id, renamed)
    got = await ldap.get_group(group.id)
    assert got is not None and got.display_name == renamed
    await ldap.delete_group(group.id)
    await ldap.delete_group(group.id)
    assert await ldap.get_group(group.id) is None
    await ldap.aclose()


async def test_members_beyond_one_range_are_read_whole(samba: SambaDC, ad_ou: str) -> None:
    """Samba answers every value it is asked for (it does not enforce MaxValRange), so the
    connector asks for 7 values per request here: 23 members take 4 ranges."""
    ldap = connector(samba, ad_ou, member_range=7, batch=50)
    users = [await ldap.create_user(person(f"{unique('r')}@hw.test")) for _ in range(23)]
    ids = [u.id for u in users]
    group = await ldap.create_group(unique("Big "))
    await ldap.patch_members(group.id, add=ids, remove=[])
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(ids)
    # Drift repair sees every member too: removing one that is in the last range works.
    await ldap.replace_members(group.id, "Big", ids[:-1])
    got = await ldap.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(ids[:-1])
    with samba.connect() as conn:
        conn.search(f"OU=groups,{ad_ou}", "(objectClass=group)", attributes=["member;range=0-*"])
        held = next(e for e in conn.response or [] if e["type"] == "searchResEntry")
        assert len(held["raw_attributes"]["member;range=0-*"]) == 22
    await ldap.aclose()


async def test_ad_refusals_are_typed_and_scrubbed(samba: SambaDC, ad_ou: str) -> None:
    """AD's refusals carry an extended error code: a member DN naming nothing (noSuchObject on
    the group) and a system attribute (constraintViolation) are bad requests, and
    unwillingToPerform with a code is the request's fault, not an unavailable app; the bind
    password never shows."""
    ldap = connector(samba, ad_ou)
    group = await ldap.create_group(unique("Refusing "))
    foreign = f"CN=nobody-{uuid.uuid4().hex[:6]},{ad_ou}"
    with pytest.raises(PermanentError) as caught:
        await ldap.patch_members(group.id, add=[foreign], remove=[])
    assert caught.value.status == 400 and not isinstance(caught.value, NotFoundError)
    assert "names no entry" in caught.value.message
    sam = unique("sys")
    created = await ldap.create_user(person(f"{sam}@hw.test"))
    system = {"whenCreated": "20200101000000.0Z"}
    with pytest.raises(PermanentError) as caught:
        await ldap.replace_user(created.id, person(f"{sam}@hw.test", extra=system))
    assert caught.value.status == 400
    assert "constraintViolation (19), AD error 0000202F" in caught.value.message
    assert samba.password not in f"{caught.value.message} {caught.value.detail}"
    # A real unwillingToPerform: removing, from a group with members, a member DN that
    # names nothing.
    await ldap.patch_members(group.id, add=[created.id], remove=[])
    with samba.connect() as conn, pytest.raises(lx.LDAPUnwillingToPerformResult) as refused:
        conn.modify(
            f"CN={group.display_name},OU=groups,{ad_ou}",
            {"member": [(ldap3.MODIFY_DELETE, [foreign])]},
        )
    error = ldap_error(refused.value, "modify", directory=Directory.ACTIVE_DIRECTORY)
    assert isinstance(error, PermanentError) and error.status == 400
    assert "AD error" in error.message and not isinstance(error, AppUnavailableError)
    assert isinstance(ldap_error(refused.value, "modify"), AppUnavailableError)  # OpenLDAP's
    await ldap.aclose()
