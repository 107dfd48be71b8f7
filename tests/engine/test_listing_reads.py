"""A full reconcile reads accounts back from one listing of the app (``engine.listing``): drift
is found and repaired as with one read per account, a converged app costs only the listing's
pages, an account the listing leaves out is read alone, and a listing that fails leaves every
account to its own read. The downstream is a real scim2-server (in process, or a subprocess
behind the fault proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from headwater.db import outbox
from headwater.db import tables as t
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    InProcessScim,
    RecordingTransport,
    ScimReader,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    proxied_scim_server,
)

USERS = 12
PAGE = 5


def _full_reconcile(runtime: Runtime, app_id: str, *, survey: bool = True) -> None:
    """What the schedule enqueues: every key observing, and the survey of the app."""
    with runtime.database.transaction() as session:
        outbox.enqueue_app(session, app_id, observe=True)
        if survey:
            outbox.enqueue_keys(session, [(app_id, KeyKind.IMPORT, app_id)])
    converge(runtime)


def _login(i: int) -> str:
    return f"user{i:05d}@example.com"


def _app(runtime: Runtime, base_url: str, *, list_reads: bool = True) -> str:
    group = create_group(runtime, "Everyone")
    create_users(runtime, USERS, group_ids=[group])
    app_id = create_scim_app(runtime, base_url, "Listed", list_reads=list_reads)
    assign_group(runtime, app_id, group)
    converge(runtime)
    return app_id


def _reads(transport: RecordingTransport) -> tuple[int, int]:
    """Listing pages (look-ups by userName left out) and reads by id sent."""
    listed = [s for s in transport.requests("GET", resource="Users") if "filter" not in s.query]
    return len(listed), transport.count("GET", resource="Users/{id}")


@pytest.mark.parametrize("list_reads", [True, False], ids=["listing", "one-read-each"])
def test_drift_is_repaired_alike_from_the_listing_and_from_reads_one_by_one(
    runtime: Runtime, list_reads: bool
) -> None:
    """Deactivated by hand: reactivated. Deleted by hand: created again. An attribute changed
    by hand is not read back by either way (the planner compares the mapping with what it last
    pushed), so both leave it: the listing changes what is read, never what is decided."""
    downstream = InProcessScim(max_results=PAGE).serve(runtime)
    app_id = _app(runtime, downstream.base_url, list_reads=list_reads)
    scim = downstream.scim
    accounts = scim.by_user_name()
    deactivated, deleted, retitled = (accounts[_login(i)]["id"] for i in (0, 1, 2))
    scim.change_user(deactivated, active=False)
    scim.delete_user(deleted)
    scim.change_user(retitled, title="Set by hand")
    downstream.transport.clear()

    _full_reconcile(runtime, app_id)

    after = scim.by_user_name()
    assert after[_login(0)]["active"] is True and after[_login(0)]["id"] == deactivated
    assert after[_login(1)]["id"] != deleted and after[_login(1)]["active"] is True
    assert after[_login(2)].get("title") == "Set by hand"
    assert len(after) == USERS
    writes = sorted((s.method, s.resource) for s in downstream.transport.writes())
    assert writes == [("PATCH", "Users/{id}"), ("POST", "Users")]
    pages, by_id = _reads(downstream.transport)
    if list_reads:
        # One listing (3 pages of 5) read back the accounts and served the survey; only the
        # account the listing did not return was read alone (404: lost, so created again).
        assert (pages, by_id) == (3, 1)
    else:
        assert by_id == USERS and pages == 3  # the survey's own listing
    with runtime.database.read() as session:
        assert session.execute(select(t.UnmanagedAccount)).first() is None


def test_a_converged_app_costs_only_the_listing(runtime: Runtime) -> None:
    downstream = InProcessScim(max_results=PAGE).serve(runtime)
    app_id = _app(runtime, downstream.base_url)
    hand_made = downstream.scim.create_user("by.hand@example.com")
    downstream.transport.clear()

    _full_reconcile(runtime, app_id)

    assert downstream.transport.writes() == []
    # 13 accounts in pages of 5, listed once for the read-back and the survey alike.
    assert _reads(downstream.transport) == (3, 0)
    with runtime.database.read() as session:
        found = session.execute(select(t.UnmanagedAccount.external_id)).scalars().all()
    assert found == [hand_made]

    # A reconcile asked for later is not answered by the listing read before it.
    downstream.scim.change_user(downstream.scim.by_user_name()[_login(3)]["id"], active=False)
    downstream.transport.clear()
    _full_reconcile(runtime, app_id, survey=False)
    assert [(s.method, s.resource) for s in downstream.transport.writes()] == [
        ("PATCH", "Users/{id}")
    ]
    assert downstream.scim.by_user_name()[_login(3)]["active"] is True
    assert _reads(downstream.transport) == (3, 0)


def test_a_listing_longer_than_the_reads_it_saves_is_given_up(runtime: Runtime) -> None:
    """The app holds many more accounts than Headwater knew of: the first page announces
    more pages than there are accounts to read, and each account is read alone."""
    downstream = InProcessScim(max_results=PAGE).serve(runtime)
    app_id = _app(runtime, downstream.base_url)
    for i in range(60):
        downstream.scim.create_user(f"by.hand.{i:02d}@example.com")
    downstream.transport.clear()

    _full_reconcile(runtime, app_id, survey=False)

    assert _reads(downstream.transport) == (1, USERS)
    assert downstream.transport.writes() == []


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Runtime, ScimServerProcess, FaultProxyThread]]:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hw.db'}", tmp_path)
    try:
        with proxied_scim_server() as (server, proxy):
            yield runtime, server, proxy
    finally:
        runtime.close()


def _sent(proxy: FaultProxyThread) -> tuple[int, int, int]:
    """Listing pages, reads by id and writes that reached the proxy."""
    writes = sum(proxy.count(method) for method in ("POST", "PUT", "PATCH", "DELETE"))
    return proxy.count("GET", r"/Users$"), proxy.count("GET", r"/Users/[^/]+$"), writes


def test_an_account_the_listing_leaves_out_is_read_alone(
    proxied: tuple[Runtime, ScimServerProcess, FaultProxyThread],
) -> None:
    runtime, server, proxy = proxied
    app_id = _app(runtime, proxy.base_url)
    reader = ScimReader(server.base_url)
    skipped = reader.by_user_name()[_login(4)]["id"]
    proxy.leave_out_of_listings([skipped])
    proxy.clear_log()

    _full_reconcile(runtime, app_id, survey=False)

    pages, by_id, writes = _sent(proxy)
    assert (by_id, writes) == (1, 0), "read alone, found: nothing to repair"
    assert pages >= 1
    assert reader.by_user_name()[_login(4)]["id"] == skipped


def test_a_listing_that_fails_leaves_each_account_to_its_own_read(
    proxied: tuple[Runtime, ScimServerProcess, FaultProxyThread],
) -> None:
    runtime, server, proxy = proxied
    app_id = _app(runtime, proxy.base_url)
    reader = ScimReader(server.base_url)
    deactivated = reader.by_user_name()[_login(7)]["id"]
    reader.change_user(deactivated, active=False)
    proxy.status(500, method="GET", path=r"/Users$")
    proxy.clear_log()

    _full_reconcile(runtime, app_id, survey=False)

    pages, by_id, writes = _sent(proxy)
    assert pages == 1, "the listing is not tried again in the same pass"
    assert by_id == USERS
    assert writes == 1  # the account deactivated by hand, reactivated
    assert reader.by_user_name()[_login(7)]["active"] is True
    with runtime.database.read() as session:
        assert session.execute(select(t.Task)).first() is None
