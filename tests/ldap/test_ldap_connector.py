"""The LDAP connector against a real slapd: accounts, groups, members, errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ldap3
import pytest

from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from headwater.connectors.ldap import LOCKED, LdapConnector
from headwater.connectors.outbound import OutboundPolicy
from headwater.domain.downstream import AccountAttributes
from headwater.domain.ldap import Deactivation, GroupClass, LdapProfile, OnMissingEntry
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.slapd import Slapd, make_ca, slapd_missing
from headwater.testing.toolkit import IN_CI

LOOPBACK = OutboundPolicy.from_text("127.0.0.0/8")


def connector(
    server: Slapd,
    *,
    password: str | None = None,
    policy: OutboundPolicy = LOOPBACK,
    batch: int = 100,
    **profile: object,
) -> LdapConnector:
    values: dict[str, object] = {
        "bind_dn": server.root_dn,
        "people_base": server.people_base,
        "groups_base": server.groups_base,
        "disabled_base": server.disabled_base,
    }
    values.update(profile)
    return LdapConnector(
        server.url,
        password=server.root_password if password is None else password,
        profile=LdapProfile(**values),  # type: ignore[arg-type]
        settings=ProvisioningSettings(membership_batch_size=batch, request_timeout=5),
        policy=policy,
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def person(user_name: str, **changes: object) -> AccountAttributes:
    attrs = AccountAttributes(
        user_name=user_name,
        external_id="00u" + user_name,
        given_name="Ada",
        family_name="Lovelace",
        email=f"{user_name}@example.org",
        title="Engineer",
    )
    return replace(attrs, **changes)  # type: ignore[arg-type]


def entry(server: Slapd, query: str, base: str | None = None) -> dict[str, list[str]]:
    """An independent read: (DN under key "dn") and every attribute, operational too."""
    with server.connect() as conn:
        conn.search(base or server.suffix, query, attributes=["*", "+"])
        assert len(conn.entries) == 1, conn.entries
        found = conn.entries[0]
        values = {k: [str(v) for v in found[k].values] for k in found.entry_attributes}
        values["dn"] = [found.entry_dn]
        return values


async def test_connection_test_checks_credentials_and_bases(slapd: Slapd) -> None:
    good = connector(slapd)
    await good.test_connection()
    await good.aclose()
    wrong = connector(slapd, password="not-the-password")
    with pytest.raises(AppUnavailableError) as caught:
        await wrong.test_connection()
    assert "not-the-password" not in str(caught.value)
    await wrong.aclose()
    missing = connector(slapd, groups_base=f"ou=nowhere,{slapd.suffix}")
    with pytest.raises(AppUnavailableError, match="groups base DN does not exist"):
        await missing.test_connection()
    await missing.aclose()


async def test_outbound_policy_applies_to_the_directory_host(slapd: Slapd) -> None:
    denied = connector(slapd, policy=OutboundPolicy())
    with pytest.raises(AppUnavailableError, match="outbound policy"):
        await denied.test_connection()
    await denied.aclose()


async def test_account_create_find_update_and_link_by_entry_uuid(slapd: Slapd) -> None:
    ldap = connector(slapd)
    name = unique("ada")
    created = await ldap.create_user(person(name))
    assert created.user_name == name and created.active
    seen = entry(slapd, f"(uid={name})")
    assert seen["entryUUID"] == [created.id]
    assert seen["dn"] == [f"uid={name},{slapd.people_base}"]
    assert seen["mail"] == [f"{name}@example.org"] and seen["cn"] == ["Ada Lovelace"]
    found = await ldap.find_user(name)
    assert found == created
    with pytest.raises(ConflictError):
        await ldap.create_user(person(name))
    # Someone renames the entry: the link (entryUUID) holds.
    with slapd.connect() as conn:
        conn.modify_dn(f"uid={name},{slapd.people_base}", f"cn={name}")
    renamed = unique("ada")
    await ldap.replace_user(created.id, person(renamed, title=None, department="R&D"))
    seen = entry(slapd, f"(entryUUID={created.id})")
    assert seen["dn"] == [f"uid={renamed},{slapd.people_base}"]
    assert "title" not in seen and seen["departmentNumber"] == ["R&D"]
    assert (await ldap.get_user(created.id)) is not None
    await ldap.delete_user(created.id)
    await ldap.delete_user(created.id)  # gone counts as deleted
    assert await ldap.get_user(created.id) is None
    with pytest.raises(NotFoundError):
        await ldap.replace_user(created.id, person(renamed))
    await ldap.aclose()


async def test_only_changed_attributes_are_sent(slapd: Slapd) -> None:
    ldap = connector(slapd)
    name = unique("mod")
    created = await ldap.create_user(person(name))
    before = entry(slapd, f"(uid={name})")["modifyTimestamp"]
    await ldap.replace_user(created.id, person(name))  # nothing changed: no modify
    assert entry(slapd, f"(uid={name})")["modifyTimestamp"] == before
    await ldap.aclose()


#: Every mode but DISABLE (Active Directory's: tests/ldap/test_ad_connector.py).
@pytest.mark.parametrize("mode", [m for m in Deactivation if m is not Deactivation.DISABLE])
async def test_deactivation_and_reactivation(slapd: Slapd, mode: Deactivation) -> None:
    ldap = connector(slapd, deactivation=mode)
    name = unique("off")
    created = await ldap.create_user(person(name))
    await ldap.set_active(created.id, False)
    if mode is Deactivation.DELETE:
        assert await ldap.get_user(created.id) is None
        with pytest.raises(NotFoundError):
            await ldap.set_active(created.id, True)
        await ldap.aclose()
        return
    account = await ldap.get_user(created.id)
    assert account is not None and not account.active
    seen = entry(slapd, f"(uid={name})")
    if mode is Deactivation.LOCK:
        assert seen["pwdAccountLockedTime"] == [LOCKED]
    else:
        assert seen["dn"] == [f"uid={name},{slapd.disabled_base}"]
    await ldap.replace_user(created.id, person(name, active=True))
    account = await ldap.get_user(created.id)
    assert account is not None and account.active
    seen = entry(slapd, f"(uid={name})")
    assert "pwdAccountLockedTime" not in seen
    assert seen["dn"] == [f"uid={name},{slapd.people_base}"]
    await ldap.aclose()


@pytest.mark.parametrize(
    "group_class", [GroupClass.GROUP_OF_NAMES, GroupClass.GROUP_OF_UNIQUE_NAMES]
)
async def test_groups_members_rename_and_drift(slapd: Slapd, group_class: GroupClass) -> None:
    ldap = connector(slapd, batch=2, group_class=group_class)
    attribute = group_class.member_attribute
    users = [await ldap.create_user(person(unique("m"))) for _ in range(5)]
    ids = [u.id for u in users]
    name = unique("Engineering ")
    group = await ldap.create_group(name)
    assert (await ldap.find_group(name)) is not None
    with pytest.raises(ConflictError):
        await ldap.create_group(name)
    assert await ldap.patch_members(group.id, add=ids, remove=[]) == 3
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(ids)
    written = entry(slapd, f"(entryUUID={group.id})")
    assert group_class.value in written["objectClass"] and len(written[attribute]) == 5
    assert await ldap.patch_members(group.id, add=ids[:1], remove=ids[3:]) == 1
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(ids[:3])
    # memberOf (overlay) follows the member values.
    if "memberof" in slapd.overlays and group_class is GroupClass.GROUP_OF_NAMES:
        held = entry(slapd, f"(entryUUID={ids[0]})")["memberOf"]
        assert held == [f"cn={name},{slapd.groups_base}"]
    # Drift: someone adds a foreign member by hand; a replace removes it.
    foreign = f"cn=stranger,{slapd.suffix}"
    with slapd.connect() as conn:
        conn.modify(f"cn={name},{slapd.groups_base}", {attribute: [(ldap3.MODIFY_ADD, [foreign])]})
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids is not None and foreign in read.member_ids
    await ldap.replace_members(group.id, name, ids[1:2])
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(ids[1:2])
    await ldap.remove_members(group.id, ids)
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset()
    assert entry(slapd, f"(entryUUID={group.id})")[attribute] == [""]  # the placeholder
    renamed = unique("Platform ")
    await ldap.rename_group(group.id, renamed)
    read = await ldap.get_group(group.id)
    assert read is not None and read.display_name == renamed
    await ldap.delete_group(group.id)
    await ldap.delete_group(group.id)
    assert await ldap.get_group(group.id) is None
    await ldap.remove_members(group.id, ids)  # a group that is gone holds nobody
    await ldap.aclose()


async def test_a_group_of_the_other_class_is_not_linked(slapd: Slapd) -> None:
    """A same-named group of the other object class is not taken for a pushed group."""
    plain = connector(slapd)
    unique_names = connector(slapd, group_class=GroupClass.GROUP_OF_UNIQUE_NAMES)
    name = unique("Mixed ")
    await plain.create_group(name)
    assert await unique_names.find_group(name) is None
    assert await plain.find_group(name) is not None
    await plain.aclose()
    await unique_names.aclose()


@pytest.mark.parametrize("setting", list(OnMissingEntry))
async def test_a_missing_entry_is_lost_or_a_task(slapd: Slapd, setting: OnMissingEntry) -> None:
    """noSuchObject on a change: NotFoundError (the engine creates it again) or, with
    onMissingEntry TASK, a permanent error (the engine opens a Task)."""
    ldap = connector(slapd, on_missing=setting)
    user_name = unique("gone")
    account = await ldap.create_user(person(user_name))
    group = await ldap.create_group(unique("Gone "))
    with slapd.connect() as conn:
        conn.delete(f"uid={user_name},{slapd.people_base}")
        conn.search(slapd.groups_base, f"(entryUUID={group.id})")
        conn.delete(conn.entries[0].entry_dn)
    changes = [
        ldap.replace_user(account.id, person(user_name, title="Boss")),
        ldap.set_active(account.id, False),
        ldap.rename_group(group.id, unique("Renamed ")),
        ldap.patch_members(group.id, add=[account.id], remove=[]),
        ldap.replace_members(group.id, "x", []),
    ]
    for change in changes:
        with pytest.raises(PermanentError) as caught:
            await change
        lost = isinstance(caught.value, NotFoundError)
        assert lost is (setting is OnMissingEntry.RECREATE)
        assert caught.value.status == 404
    await ldap.remove_members(group.id, [account.id])  # a group that is gone holds nobody
    await ldap.delete_user(account.id)  # as does a deleted entry
    await ldap.aclose()


async def test_accounts_are_looked_up_many_at_a_time(
    slapd: Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One search settles many names before creates; an add answers with the new entry
    (Post-Read), so no search follows it."""
    ldap = connector(slapd)
    assert ldap.lookup_batch == 100 and not ldap.or_filter_refused
    first, second, absent = unique("look"), unique("look"), unique("absent")
    searches: list[str] = []
    search = ldap3.Connection.search

    def counted(self: ldap3.Connection, base: str, *args: Any, **kwargs: Any) -> Any:
        searches.append(base)
        return search(self, base, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, "search", counted)
    created = await ldap.create_user(person(first))
    assert searches == []
    monkeypatch.undo()
    assert created.user_name == first and created.active
    await ldap.create_user(person(second))
    found = await ldap.find_users([first, second.upper(), absent, first])
    assert set(found) == {first, second.upper(), absent}
    exact, loose = found[first], found[second.upper()]
    assert exact is not None and exact.id == created.id
    assert loose is not None and loose.user_name == second
    assert found[absent] is None
    assert await ldap.find_users([]) == {}
    await ldap.aclose()


async def test_large_group_maps_members_back(slapd: Slapd) -> None:
    ldap = connector(slapd, batch=50)
    ids = [(await ldap.create_user(person(unique("big")))).id for _ in range(40)]
    group = await ldap.create_group(unique("Big "))
    assert await ldap.patch_members(group.id, add=ids, remove=[]) == 1
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(ids)
    await ldap.aclose()


async def test_a_member_without_an_entry_stops_a_change_of_many_before_any_modify(
    slapd: Slapd,
) -> None:
    """Members' DNs are read a hundred at a time; one whose entry is gone stops the change
    before anything is sent, and without it the members go in modify batches."""
    ldap = connector(slapd, batch=100)
    ids = [(await ldap.create_user(person(unique("many")))).id for _ in range(250)]
    group = await ldap.create_group(unique("Many "))
    gone = await ldap.create_user(person(unique("gone")))
    with slapd.connect() as conn:
        conn.delete(f"uid={gone.user_name},{slapd.people_base}")
    with pytest.raises(PermanentError, match="1 member"):
        await ldap.patch_members(group.id, add=[*ids, gone.id], remove=[])
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(), "nothing was sent"

    assert await ldap.patch_members(group.id, add=ids, remove=[]) == 3
    read = await ldap.get_group(group.id)
    assert read is not None and read.member_ids == frozenset(ids)
    await ldap.aclose()


async def test_schema_refusals_are_tasks_with_scrubbed_messages(slapd: Slapd) -> None:
    ldap = connector(slapd)
    bad = person(unique("bad"), extra={"noSuchAttribute": slapd.root_password})
    with pytest.raises(PermanentError) as caught:
        await ldap.create_user(bad)
    assert caught.value.status == 400
    assert slapd.root_password not in str(caught.value)
    await ldap.aclose()


async def test_a_stopped_directory_is_transient_and_a_restart_recovers(
    fresh_slapd: Slapd,
) -> None:
    ldap = connector(fresh_slapd)
    created = await ldap.create_user(person(unique("r")))
    fresh_slapd.stop()
    with pytest.raises(TransientError):
        await ldap.get_user(created.id)
    with pytest.raises(AppUnavailableError, match="cannot connect"):
        await ldap.test_connection()
    fresh_slapd.start()
    assert await ldap.get_user(created.id) is not None
    await ldap.aclose()


async def test_adds_made_at_once_share_trips_and_each_gets_its_own_answer(slapd: Slapd) -> None:
    """Forty creates at once go out in one trip per connection, one after another on it; a
    name already taken is that one create's conflict, and every add is counted as a request."""
    requests: list[tuple[str, int | None]] = []
    ldap = LdapConnector(
        slapd.url,
        password=slapd.root_password,
        profile=connector(slapd).profile,
        settings=ProvisioningSettings(request_timeout=5),
        policy=LOOPBACK,
        on_request=lambda kind, operation, status, seconds: requests.append((operation, status)),
    )
    assert ldap.bulk_operations > 1 and not ldap.bulk_refused
    taken = unique("taken")
    await ldap.create_user(person(taken))
    trips: list[str] = []
    run = ldap._run

    async def counted(operation: str, work: Any, **options: Any) -> Any:
        trips.append(operation)
        return await run(operation, work, **options)

    ldap._run = counted  # type: ignore[method-assign]
    names = [unique("shared") for _ in range(39)]
    answers = await asyncio.gather(
        *(ldap.create_user(person(n)) for n in [*names[:20], taken, *names[20:]]),
        return_exceptions=True,
    )
    assert isinstance(answers[20], ConflictError)
    created = [a for a in answers if not isinstance(a, BaseException)]
    assert sorted(a.user_name for a in created) == sorted(names)
    assert len({a.id for a in created}) == 39
    connections = ldap.settings.max_concurrency
    assert trips == ["add"] * connections, "one trip per connection"
    adds = [r for r in requests if r[0] == "add"]
    assert len(adds) == 41 and adds.count(("add", 68)) == 1  # entryAlreadyExists
    for name in names[:3]:
        assert entry(slapd, f"(uid={name})")["uid"] == [name]
    # More at once than the connections' trips hold: no trip carries more than its share.
    trips.clear()
    more = await asyncio.gather(*(ldap.create_user(person(unique("more"))) for _ in range(100)))
    assert len({a.id for a in more}) == 100
    assert len(trips) == -(-100 // ldap.bulk_operations)
    await ldap.aclose()


async def test_adds_made_at_once_against_a_stopped_directory_fail_each_then_recover(
    fresh_slapd: Slapd,
) -> None:
    ldap = connector(fresh_slapd)
    await ldap.create_user(person(unique("warm")))  # a pooled connection, dropped below
    fresh_slapd.stop()
    names = [unique("down") for _ in range(12)]
    answers = await asyncio.gather(
        *(ldap.create_user(person(n)) for n in names), return_exceptions=True
    )
    assert all(isinstance(a, TransientError) for a in answers), answers
    fresh_slapd.start()
    again = await asyncio.gather(*(ldap.create_user(person(n)) for n in names))
    assert sorted(a.user_name for a in again) == sorted(names)
    await ldap.aclose()


@pytest.fixture(scope="module")
def tls_slapd() -> Iterator[Slapd]:
    problem = slapd_missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"slapd is required in CI: {problem}")
        pytest.skip(problem)
    with Slapd(tls=True) as server:
        yield server


@pytest.mark.parametrize("kind", ["ldaps", "starttls"])
async def test_tls_with_a_ca_made_at_test_time(tls_slapd: Slapd, kind: str, tmp_path: Path) -> None:
    ldaps = kind == "ldaps"

    def tls_connector(ca_pem: str | None) -> LdapConnector:
        ldap = connector(tls_slapd, ca_pem=ca_pem, start_tls=not ldaps)
        if ldaps:
            ldap = LdapConnector(
                tls_slapd.ldaps_url,
                password=tls_slapd.root_password,
                profile=ldap.profile,
                settings=ldap.settings,
                policy=LOOPBACK,
            )
        return ldap

    good = tls_connector(tls_slapd.ca_pem)
    await good.test_connection()
    created = await good.create_user(person(unique("tls")))
    assert await good.get_user(created.id) is not None
    # The hand-encoded add above and search here go through the TLS socket as ldap3's do.
    assert await good.find_users([created.user_name]) == {created.user_name: created}
    await good.aclose()
    other_ca, _, _ = make_ca(tmp_path, "Some other CA")
    wrong = tls_connector(other_ca)
    with pytest.raises(AppUnavailableError, match="TLS"):
        await wrong.test_connection()
    await wrong.aclose()
