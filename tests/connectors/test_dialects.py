"""Dialects as data: each profile's wire forms, read by the SCIM connector only; 501 answers;
and what an app announces of itself. Against scim2-server in process (what was sent), and
against django-scim2 and scim2-server behind the fault proxy as real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest

from headwater.connectors.auth import BearerTokenAuth
from headwater.connectors.errors import PermanentError
from headwater.connectors.scim import ScimConnector
from headwater.domain.capabilities import Capabilities, PatchSupport, parse_service_provider_config
from headwater.domain.dialects import PROFILES, DialectName, GroupWrites, MemberRemoval, OpCase
from headwater.domain.downstream import AccountAttributes, GroupState
from headwater.domain.settings import ProvisioningSettings, with_changes
from headwater.errors import InvalidRequest
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.servers import ScimServer, server_process
from headwater.testing.toolkit import (
    InProcessScim,
    ScimReader,
    loopback_transport,
    require_scim_server,
)

TOKEN = "dialect-token"


def settings(name: DialectName, **changes: Any) -> ProvisioningSettings:
    return replace(ProvisioningSettings(dialect=name), **changes)


def patches(harness: InProcessScim) -> list[list[dict[str, Any]]]:
    return [s.body["Operations"] for s in harness.transport.sent if s.method == "PATCH"]


# -- settings: profiles and switches ---------------------------------------------------------


def test_a_profile_writes_its_switches_and_a_switch_makes_the_dialect_custom() -> None:
    aws = with_changes(ProvisioningSettings(), {"dialect": DialectName.AWS_IDENTITY_CENTER})
    assert aws.switches() == PROFILES[DialectName.AWS_IDENTITY_CENTER]
    assert (aws.group_members_returned, aws.members_replace) == (False, False)
    custom = with_changes(aws, {"member_removal": MemberRemoval.VALUE_LIST})
    assert custom.dialect is DialectName.CUSTOM
    # custom starts from the profile it leaves
    assert custom.switches().members_returned is False
    assert custom.switches().member_removal is MemberRemoval.VALUE_LIST
    with pytest.raises(InvalidRequest, match="memberRemoval: can only be set with dialect"):
        with_changes(aws, {"dialect": DialectName.RFC7644, "member_removal": "filter"})


def test_rows_stored_before_dialects_keep_their_switches() -> None:
    stored = {"membership_method": "PUT", "group_members_returned": False}
    loaded = ProvisioningSettings.from_json(stored)
    assert loaded.dialect is DialectName.CUSTOM
    assert loaded.switches().group_writes is GroupWrites.PUT
    assert ProvisioningSettings.from_json({}).switches() == PROFILES[DialectName.RFC7644]


# -- wire forms ------------------------------------------------------------------------------


async def test_entra_style_removes_by_value_list_with_capitalised_ops(
    harness: InProcessScim,
) -> None:
    scim = harness.connector(settings(DialectName.ENTRA_STYLE))
    group = await scim.create_group("Entra")
    harness.transport.clear()
    with pytest.raises(PermanentError):  # scim2-server refuses the value-list form (400)
        await scim.patch_members(group.id, add=["a"], remove=["x", "y"])
    assert patches(harness) == [
        [
            {"op": "Remove", "path": "members", "value": [{"value": "x"}, {"value": "y"}]},
            {"op": "Add", "path": "members", "value": [{"value": "a"}]},
        ]
    ]


async def test_custom_string_booleans(harness: InProcessScim) -> None:
    scim = harness.connector(
        settings(DialectName.CUSTOM, boolean_encoding="string", patch_op_case=OpCase.CAPITALISED)
    )
    account = await scim.create_user(AccountAttributes("sam@example.com", "00uS"))
    harness.transport.clear()
    await scim.set_active(account.id, False)  # scim2-server takes either
    assert patches(harness) == [[{"op": "Replace", "path": "active", "value": "False"}]]


async def test_aws_caps_changes_at_100_and_never_replaces_whole(harness: InProcessScim) -> None:
    scim = harness.connector(settings(DialectName.AWS_IDENTITY_CENTER, membership_batch_size=500))
    group = await scim.create_group("Aws")
    members = [f"m{n:03}" for n in range(250)]
    harness.transport.clear()
    assert await scim.patch_members(group.id, add=members, remove=[]) == 3
    assert [len(ops[0]["value"]) for ops in patches(harness)] == [100, 100, 50]

    harness.transport.clear()
    # A full push: the recorded members no longer wanted go, the wanted ones are added.
    sent = await scim.replace_members(group.id, "Aws", members[:120], recorded=members[100:])
    assert sent == 3
    ops = [op for batch in patches(harness) for op in batch]
    assert {op["op"] for op in ops} == {"add", "remove"}
    assert "replace" not in str(patches(harness))
    got = await scim.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(members[:120])


async def test_put_only_groups_change_by_put_of_the_whole_group(harness: InProcessScim) -> None:
    """Hidden members and PUT only: the group as wanted travels with the change."""
    scim = harness.connector(
        settings(DialectName.CUSTOM, membership_method="PUT", group_members_returned=False)
    )
    group = await scim.create_group("Whole")
    harness.transport.clear()
    whole = GroupState("Whole", ("a", "b"))
    assert await scim.patch_members(group.id, add=["b"], remove=["c"], whole=whole) == 1
    assert [s.method for s in harness.transport.sent] == ["GET", "PUT"]
    assert harness.transport.sent[-1].body["members"] == [{"value": "a"}, {"value": "b"}]
    empty = await scim.create_group("Empty")  # read without members: unknown
    with pytest.raises(PermanentError, match="does not return their members"):
        await scim.patch_members(empty.id, add=["d"], remove=[])


# -- member checks (members hidden on read) ----------------------------------------------------


async def test_the_member_filter_tells_whether_one_account_is_in_a_group(
    harness: InProcessScim,
) -> None:
    aws = harness.connector(settings(DialectName.AWS_IDENTITY_CENTER))
    ann = await aws.create_user(AccountAttributes("ann@example.org", "00uA"))
    bob = await aws.create_user(AccountAttributes("bob@example.org", "00uB"))
    group = await aws.create_group("Checked")
    await aws.patch_members(group.id, add=[ann.id], remove=[])
    harness.transport.clear()
    assert await aws.has_member(group.id, ann.id) is True
    assert await aws.has_member(group.id, bob.id) is False
    assert await aws.has_member(group.id, "no-such-account") is False
    sent = harness.transport.sent[0]
    wanted = f'id eq "{group.id}" and members eq "{ann.id}"'
    assert sent.method == "GET" and wanted in unquote(sent.query)
    # No route, no request.
    rfc = harness.connector(settings(DialectName.RFC7644))
    harness.transport.clear()
    assert await rfc.has_member(group.id, ann.id) is None
    assert await rfc.groups_of(ann.id) is None
    assert harness.transport.sent == []


@pytest.fixture(scope="module")
def scimmy() -> Iterator[ScimServer]:
    require_scim_server("scimmy")
    with server_process("scimmy", bearer_token=TOKEN) as server:
        yield server


async def test_an_accounts_groups_are_read_from_the_account(scimmy: ScimServer) -> None:
    """scimmy lists a user's groups (and leaves the attribute out when there are none)."""
    connector = ScimConnector(
        scimmy.base_url,
        auth=BearerTokenAuth(TOKEN),
        settings=settings(
            DialectName.CUSTOM,
            group_members_returned=False,
            members_replace=False,
            member_check="user-groups",
        ),
        transport=loopback_transport(),
    )
    ann = await connector.create_user(AccountAttributes("ann@example.org", "00uA"))
    bob = await connector.create_user(AccountAttributes("bob@example.org", "00uB"))
    one, two = await connector.create_group("One"), await connector.create_group("Two")
    await connector.patch_members(one.id, add=[ann.id], remove=[])
    await connector.patch_members(two.id, add=[ann.id], remove=[])
    assert await connector.groups_of(ann.id) == frozenset({one.id, two.id})
    assert await connector.groups_of(bob.id) == frozenset()
    assert await connector.groups_of("no-such-account") == frozenset()
    assert await connector.has_member(one.id, ann.id) is None
    # A full push overwrites the whole membership here: no check is needed, none is sent.
    overwriting = ScimConnector(
        scimmy.base_url,
        auth=BearerTokenAuth(TOKEN),
        settings=settings(
            DialectName.CUSTOM, group_members_returned=False, member_check="user-groups"
        ),
        transport=loopback_transport(),
    )
    assert await overwriting.groups_of(ann.id) is None
    await connector.aclose()
    await overwriting.aclose()


# -- 501 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[ScimServerProcess, FaultProxyThread]]:
    with (
        ScimServerProcess() as server,
        FaultProxyThread(server.base_url, seed=5) as proxy,
    ):
        yield server, proxy


@pytest.fixture
async def through_proxy(
    proxied: tuple[ScimServerProcess, FaultProxyThread],
) -> AsyncIterator[tuple[ScimConnector, FaultProxyThread]]:
    _, proxy = proxied
    proxy.clear()
    proxy.clear_log()
    connector = ScimConnector(
        proxy.base_url, auth=None, settings=ProvisioningSettings(), transport=loopback_transport()
    )
    yield connector, proxy
    proxy.clear()
    await connector.aclose()


async def test_501_to_a_patch_is_done_by_put_at_once_and_remembered(
    through_proxy: tuple[ScimConnector, FaultProxyThread],
) -> None:
    scim, proxy = through_proxy
    group = await scim.create_group("Put me")
    users = [(await scim.create_user(AccountAttributes(f"p{n}@x.org", f"e{n}"))).id for n in (1, 2)]
    proxy.put_only_groups()
    whole = GroupState("Put me", tuple(users))
    await scim.patch_members(group.id, add=users, remove=[], whole=whole)
    assert scim.patch_refused
    assert [r.method for r in proxy.requests(path_regex=r"/Groups/")][-4:] == [
        "PATCH",
        "GET",
        "PUT",
        "GET",
    ]
    got = await scim.get_group(group.id)
    assert got is not None and got.member_ids == frozenset(users)
    # A connector built with what was learned goes straight to PUT.
    learned = Capabilities().patch_refused(datetime.now(UTC))
    again = ScimConnector(
        proxy.base_url,
        auth=None,
        settings=ProvisioningSettings(),
        transport=loopback_transport(),
        capabilities=learned,
    )
    proxy.clear_log()
    await again.patch_members(group.id, add=[], remove=users[:1])
    assert "PATCH" not in [r.method for r in proxy.requests()]
    await again.aclose()


async def test_501_to_an_account_patch_is_done_by_put_of_the_whole_account(
    proxied: tuple[ScimServerProcess, FaultProxyThread],
    through_proxy: tuple[ScimConnector, FaultProxyThread],
) -> None:
    """Deactivation is never lost to a 501: the account is read and PUT back with ``active``
    changed (every other attribute kept), and the refusal is remembered."""
    server, _ = proxied
    scim, proxy = through_proxy
    attrs = AccountAttributes("q@x.org", "eq", given_name="Quinn", title="Clerk")
    account = await scim.create_user(attrs)
    proxy.put_only_users()
    proxy.clear_log()
    await scim.set_active(account.id, False)
    assert scim.patch_refused
    assert [r.method for r in proxy.requests(path_regex=r"/Users/")] == ["PATCH", "GET", "PUT"]
    held = ScimReader(server.base_url).user("q@x.org")
    assert held is not None and held["active"] is False
    assert held["title"] == "Clerk" and held["name"]["givenName"] == "Quinn"

    # A profile update by PATCH goes the same way.
    proxy.clear_log()
    changed = await scim.patch_user(account.id, replace(attrs, title="Head clerk"))
    assert changed is not None and changed.id == account.id
    assert [r.method for r in proxy.requests(path_regex=r"/Users/")] == ["PATCH", "PUT"]

    # What was learned sends accounts straight to PUT.
    learned = ScimConnector(
        proxy.base_url,
        auth=None,
        settings=ProvisioningSettings(),
        transport=loopback_transport(),
        capabilities=Capabilities().patch_refused(datetime.now(UTC)),
    )
    proxy.clear_log()
    await learned.set_active(account.id, True)
    await learned.patch_user(account.id, attrs)
    assert "PATCH" not in [r.method for r in proxy.requests()]
    held = ScimReader(server.base_url).user("q@x.org")
    assert held is not None and held["active"] is True and held["title"] == "Clerk"
    await learned.aclose()


async def test_a_put_that_keeps_the_account_active_is_an_error(
    through_proxy: tuple[ScimConnector, FaultProxyThread],
) -> None:
    scim, proxy = through_proxy
    account = await scim.create_user(AccountAttributes("r@x.org", "er"))
    proxy.put_only_users()
    proxy.status(200, {"id": account.id, "userName": "r@x.org", "active": True}, method="PUT")
    with pytest.raises(PermanentError, match="kept active=True"):
        await scim.set_active(account.id, False)
    assert not scim.patch_refused


async def test_admin_override_beats_the_announcement(
    through_proxy: tuple[ScimConnector, FaultProxyThread],
) -> None:
    _, proxy = through_proxy
    wrong = Capabilities(patch=False, read_at="2026-01-01T00:00:00+00:00")
    connector = ScimConnector(
        proxy.base_url,
        auth=None,
        settings=ProvisioningSettings(patch_support=PatchSupport.SUPPORTED),
        transport=loopback_transport(),
        capabilities=wrong,
    )
    assert connector.dialect.group_writes is GroupWrites.PATCH
    announced_only = ScimConnector(
        proxy.base_url,
        auth=None,
        settings=ProvisioningSettings(),
        transport=loopback_transport(),
        capabilities=wrong,
    )
    assert announced_only.dialect.group_writes is GroupWrites.PUT
    await connector.aclose()
    await announced_only.aclose()


# -- capabilities ------------------------------------------------------------------------------


async def test_service_provider_config_is_read(harness: InProcessScim) -> None:
    small = InProcessScim("small.test", max_results=7)
    connector = small.connector()
    capabilities = await connector.test_connection()
    assert capabilities.patch is True and capabilities.filter_max_results == 7
    assert capabilities.read_at is not None
    await small.aclose()


def test_announcements_are_read_leniently_and_bounded() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    parsed = parse_service_provider_config(
        {
            "PATCH": {"supported": "false"},
            "bulk": {"supported": True, "maxOperations": "50", "maxPayloadSize": 10**12},
            "filter": {"supported": True, "maxResults": -3},
            "etag": "yes",
        },
        when,
    )
    assert parsed.patch is False and parsed.bulk is True
    assert parsed.bulk_max_operations == 50 and parsed.bulk_max_payload_size == 1_000_000_000
    assert parsed.filter_max_results is None and parsed.etag is None
    assert Capabilities.from_json(parsed.to_json()) == parsed
    assert Capabilities.from_json({"patch": "no", "filter_max_results": True}) == Capabilities()


# -- django-scim2: only the value-list removal works -------------------------------------------


@pytest.fixture(scope="module")
def django() -> Iterator[ScimServer]:
    require_scim_server("django-scim2")
    with server_process("django-scim2", bearer_token=TOKEN) as server:
        yield server


async def test_django_scim2_removes_members_in_the_entra_style_dialect(
    django: ScimServer,
) -> None:
    def connector(name: DialectName) -> ScimConnector:
        return ScimConnector(
            django.base_url,
            auth=BearerTokenAuth(TOKEN),
            settings=settings(name),
            transport=loopback_transport(),
        )

    rfc, entra = connector(DialectName.RFC7644), connector(DialectName.ENTRA_STYLE)
    user = await rfc.create_user(AccountAttributes("dj@example.org", "00uD"))
    group = await rfc.create_group("Dialects")
    await rfc.patch_members(group.id, add=[user.id], remove=[])
    # RFC 7644's filter form: 501, permanent, and a PUT is ignored by this app: said plainly.
    with pytest.raises(PermanentError, match="choose the app's dialect"):
        await rfc.remove_members(group.id, [user.id])
    assert not rfc.patch_refused
    await entra.remove_members(group.id, [user.id])
    got = await entra.get_group(group.id)
    assert got is not None and got.member_ids == frozenset()
    await rfc.aclose()
    await entra.aclose()
