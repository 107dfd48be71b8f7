"""Batched look-ups and SCIM Bulk in the connector, against scim2-server (which implements
filters joined by ``or`` and ``/Bulk``); refusals come from the fault proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from headwater.connectors.errors import ConflictError, NotFoundError, TransientError
from headwater.connectors.scim import ScimConnector
from headwater.domain.capabilities import BulkLimits, BulkSupport, Capabilities, bulk_limits
from headwater.domain.downstream import AccountAttributes
from headwater.domain.settings import ProvisioningSettings, check_changes
from headwater.errors import InvalidRequest
from headwater.testing.toolkit import InProcessScim, loopback_transport, proxied_scim_server

BULK = Capabilities(bulk=True, bulk_max_operations=1000, bulk_max_payload_size=1_048_576)


@pytest.fixture
async def bulk_server() -> AsyncIterator[InProcessScim]:
    server = InProcessScim(bulk=True)
    yield server
    await server.aclose()


def account(name: str) -> AccountAttributes:
    return AccountAttributes(name, f"ext-{name}", given_name="Ann", family_name=name)


# -- batched look-ups ------------------------------------------------------------------------


async def test_find_users_answers_many_names_in_one_request(harness: InProcessScim) -> None:
    plain = harness.connector()
    for name in ("ann", "bob", 'quote"d'):
        await plain.create_user(account(name))
    scim = harness.connector(ProvisioningSettings(lookup_batch_size=50))
    harness.transport.clear()
    found = await scim.find_users(["ann", "bob", 'quote"d', "nobody", "ann"])
    assert len(harness.transport.sent) == 1
    assert {n: (a.user_name if a else None) for n, a in found.items()} == {
        "ann": "ann",
        "bob": "bob",
        'quote"d': 'quote"d',
        "nobody": None,
    }
    assert 'userName eq "ann" or userName eq "bob"' in harness.transport.sent[0].query.replace(
        "%20", " "
    ).replace("%22", '"')


async def test_find_users_is_off_by_default(scim: ScimConnector, harness: InProcessScim) -> None:
    assert scim.lookup_batch == 0
    assert await scim.find_users(["ann", "bob"]) == {}
    assert harness.transport.sent == []


@pytest.mark.parametrize("scim_options", [{"max_results": 3}], indirect=True)
async def test_find_users_within_max_results(harness: InProcessScim) -> None:
    """The app grants 3 results a page: no look-up asks for more names than that."""
    scim = harness.connector(
        ProvisioningSettings(lookup_batch_size=100),
        capabilities=Capabilities(filter=True, filter_max_results=3),
    )
    assert scim.lookup_batch == 3


async def test_a_refused_or_filter_is_remembered() -> None:
    with proxied_scim_server() as (_server, proxy):
        proxy.refuse_or_filters()
        async with ScimConnector(
            proxy.base_url,
            auth=None,
            settings=ProvisioningSettings(lookup_batch_size=20),
            transport=loopback_transport(),
        ) as scim:
            await scim.create_user(account("ann"))
            assert await scim.find_users(["ann", "bob"]) == {}
            assert scim.or_filter_refused and scim.lookup_batch == 0
            # One by one still works.
            assert (await scim.find_user("ann")) is not None
            assert await scim.find_users(["ann", "bob"]) == {}
        assert len(proxy.requests("GET", r"/Users$")) == 2


async def test_a_remembered_refusal_looks_up_one_by_one(harness: InProcessScim) -> None:
    scim = harness.connector(
        ProvisioningSettings(lookup_batch_size=20),
        capabilities=Capabilities(or_filter_refused_at="2026-11-30T00:00:00+00:00"),
    )
    assert scim.lookup_batch == 0


# -- Bulk ------------------------------------------------------------------------------------


async def test_writes_made_together_go_in_one_bulk_request(bulk_server: InProcessScim) -> None:
    scim = bulk_server.connector(capabilities=BULK)
    assert scim.bulk_operations == 1000
    created = await asyncio.gather(*(scim.create_user(account(f"u{n}")) for n in range(20)))
    assert [c.user_name for c in created] == [f"u{n}" for n in range(20)]
    assert bulk_server.transport.count("POST", resource="Bulk") == 1
    assert bulk_server.transport.count("POST", resource="Users") == 0
    bulk = bulk_server.transport.requests("POST", resource="Bulk")[0].body
    assert "failOnErrors" not in bulk
    assert {op["bulkId"] for op in bulk["Operations"]} == {f"h{n}" for n in range(1, 21)}
    # Each id is the app's own: the accounts are there.
    for c in created:
        assert (await scim.get_user(c.id)) == c
    await asyncio.gather(
        scim.set_active(created[0].id, False),
        scim.replace_user(created[1].id, account("u1-renamed")),
        scim.patch_user(created[2].id, account("u2")),
    )
    assert bulk_server.transport.count("POST", resource="Bulk") == 2
    assert (await scim.get_user(created[0].id)).active is False  # type: ignore[union-attr]
    assert (await scim.get_user(created[1].id)).user_name == "u1-renamed"  # type: ignore[union-attr]


async def test_each_operation_fails_as_it_would_alone(bulk_server: InProcessScim) -> None:
    scim = bulk_server.connector(capabilities=BULK)
    await scim.create_user(account("taken"))
    group = await scim.create_group("G")
    results = await asyncio.gather(
        scim.create_user(account("taken")),
        scim.create_user(account("fresh")),
        scim.patch_members("missing-group", add=["x"], remove=[]),
        scim.patch_members(group.id, add=["someone"], remove=[]),
        scim.delete_user("missing-user"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ConflictError) and results[0].status == 409
    assert not isinstance(results[1], BaseException) and results[1].user_name == "fresh"
    assert isinstance(results[2], NotFoundError)
    assert results[3] == 1 and results[4] is None
    # Two set-up writes, then the five together.
    assert bulk_server.transport.count("POST", resource="Bulk") == 3
    # Nothing but Bulk wrote.
    assert {s.resource for s in bulk_server.transport.writes()} == {"Bulk"}


async def test_bulk_stays_within_max_operations_and_payload(harness: InProcessScim) -> None:
    scim = harness.connector(
        capabilities=Capabilities(bulk=True, bulk_max_operations=7, bulk_max_payload_size=4096)
    )
    await asyncio.gather(*(scim.create_user(account(f"user{n:03}")) for n in range(30)))
    bulks = harness.transport.requests("POST", resource="Bulk")
    assert len(bulks) >= 5
    for sent in bulks:
        assert len(sent.body["Operations"]) <= 7
        assert (
            len(sent.headers.get("content-length", "0"))
            and int(sent.headers["content-length"]) <= 4096
        )
    assert sum(len(s.body["Operations"]) for s in bulks) == 30


async def test_an_admin_turns_bulk_off(bulk_server: InProcessScim) -> None:
    scim = bulk_server.connector(
        ProvisioningSettings(bulk_support=BulkSupport.UNSUPPORTED), capabilities=BULK
    )
    assert scim.bulk_operations == 0
    await asyncio.gather(*(scim.create_user(account(f"u{n}")) for n in range(3)))
    assert bulk_server.transport.count("POST", resource="Bulk") == 0


async def test_a_refused_bulk_sends_each_write_alone() -> None:
    with proxied_scim_server(bulk=True) as (_server, proxy):
        proxy.refuse_bulk()
        async with ScimConnector(
            proxy.base_url,
            auth=None,
            settings=ProvisioningSettings(),
            transport=loopback_transport(),
            capabilities=BULK,
        ) as scim:
            created = await asyncio.gather(*(scim.create_user(account(f"u{n}")) for n in range(4)))
            assert len({c.id for c in created}) == 4
            assert scim.bulk_refused and scim.bulk_operations == 0
            await scim.create_user(account("later"))
        assert len(proxy.requests("POST", r"/Bulk$")) == 1
        assert len(proxy.requests("POST", r"/Users$")) == 5


async def test_a_failed_bulk_request_fails_each_operation_transiently() -> None:
    with proxied_scim_server(bulk=True) as (_server, proxy):
        proxy.status(503, method="POST", path=r"/Bulk$", times=1)
        async with ScimConnector(
            proxy.base_url,
            auth=None,
            settings=ProvisioningSettings(),
            transport=loopback_transport(),
            capabilities=BULK,
        ) as scim:
            results = await asyncio.gather(
                *(scim.create_user(account(f"u{n}")) for n in range(3)), return_exceptions=True
            )
            assert all(isinstance(r, TransientError) and r.status == 503 for r in results)
            assert not scim.bulk_refused
            again = await asyncio.gather(*(scim.create_user(account(f"u{n}")) for n in range(3)))
            assert len({a.id for a in again}) == 3


# -- settings --------------------------------------------------------------------------------


def test_settings_are_checked_and_bounded() -> None:
    assert check_changes({"lookup_batch_size": 200, "bulk_support": "unsupported"}) == {
        "lookup_batch_size": 200,
        "bulk_support": BulkSupport.UNSUPPORTED,
    }
    for bad in ({"lookup_batch_size": 201}, {"lookup_batch_size": -1}, {"bulk_support": "yes"}):
        with pytest.raises(InvalidRequest):
            check_changes(bad)
    stored = ProvisioningSettings.from_json({"lookup_batch_size": 5000, "bulk_support": 3})
    assert (stored.lookup_batch_size, stored.bulk_support) == (200, BulkSupport.ANNOUNCED)


def test_bulk_limits_follow_the_announcement_and_the_setting() -> None:
    refused = replace(BULK, bulk_refused_at="2026-11-30T00:00:00+00:00")
    silent = Capabilities()
    assert bulk_limits(BULK, BulkSupport.ANNOUNCED) == BulkLimits(1000, 1_048_576)
    assert bulk_limits(BULK, BulkSupport.UNSUPPORTED) is None
    assert bulk_limits(refused, BulkSupport.ANNOUNCED) is None
    assert bulk_limits(refused, BulkSupport.SUPPORTED) == BulkLimits(1000, 1_048_576)
    assert bulk_limits(silent, BulkSupport.ANNOUNCED) is None
    assert bulk_limits(silent, BulkSupport.SUPPORTED) == BulkLimits(100, 1_048_576)
    huge = Capabilities(bulk=True, bulk_max_operations=10**9, bulk_max_payload_size=10**9)
    assert bulk_limits(huge, BulkSupport.ANNOUNCED) == BulkLimits(1000, 10**9)
    tiny = Capabilities(bulk=True, bulk_max_operations=1, bulk_max_payload_size=10**6)
    assert bulk_limits(tiny, BulkSupport.ANNOUNCED) is None
