"""Fewer requests per account: the accounts of a batch looked up together (a filter joined by
``or``), and writes gathered into SCIM Bulk requests, against scim2-server (which implements
both). Each operation's outcome is recorded as a single request's would be. Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from headwater.db import tables as t
from headwater.domain.capabilities import Capabilities
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    ScimReader,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    creates_per_user_name,
    proxied_scim_server,
    push_group,
    unassign_group,
)

PEOPLE = 120
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def _capabilities(runtime: Runtime, app_id: str) -> Capabilities:
    with runtime.database.read() as session:
        row = session.get(t.App, app_id)
        assert row is not None
        return Capabilities.from_json(row.capabilities)


def _lookups(server: InProcessScim) -> list[str]:
    return [s.query for s in server.transport.requests("GET", resource="Users")]


def test_new_accounts_are_looked_up_in_batches(runtime: Runtime, downstream: InProcessScim) -> None:
    """One look-up per 50 new accounts, then one POST each: at most 1.05 requests per
    account. An account already in the app is linked, not created again."""
    users = create_users(runtime, PEOPLE)
    downstream.scim.create_user("user00007@example.com")
    group = create_group(runtime, "Everyone", users)
    app_id = create_scim_app(runtime, downstream.base_url, lookup_batch_size=50)
    downstream.transport.clear()
    assign_group(runtime, app_id, group)
    converge(runtime)
    names = [u["userName"] for u in downstream.scim.users()]
    assert len(names) == len(set(names)) == PEOPLE
    lookups = _lookups(downstream)
    assert all("%20or%20" in query for query in lookups)
    assert len(lookups) == 3  # 120 accounts in batches of at most 50
    assert downstream.transport.count("POST", resource="Users") == PEOPLE - 1
    sent = len(downstream.transport.sent)
    assert sent / PEOPLE <= 1.05


def test_a_refused_or_filter_falls_back_and_is_remembered(runtime: Runtime) -> None:
    users = create_users(runtime, 30)
    group = create_group(runtime, "Everyone", users)
    with proxied_scim_server() as (server, proxy):
        proxy.refuse_or_filters()
        app_id = create_scim_app(runtime, proxy.base_url, lookup_batch_size=50)
        assign_group(runtime, app_id, group)
        converge(runtime)
        assert len(ScimReader(server.base_url).users()) == 30
        assert _capabilities(runtime, app_id).or_filter_refused_at is not None
        refused = [e for e in proxy.requests("GET", r"/Users$") if e.fault]
        assert len(refused) >= 1
        # Later batches ask one name at a time.
        before = len(proxy.requests("GET", r"/Users$"))
        more = create_users(runtime, 5, start=100, group_ids=[group])
        converge(runtime)
        after = proxy.requests("GET", r"/Users$")[before:]
        assert len(after) == len(more) and not any(e.fault for e in after)
        assert max(creates_per_user_name(proxy).values()) == 1


@pytest.fixture
async def bulk_downstream(runtime: Runtime) -> AsyncIterator[InProcessScim]:
    server = InProcessScim(bulk=True).serve(runtime)
    yield server
    await server.aclose()


def test_bulk_creates_pushes_and_deactivates(
    runtime: Runtime, bulk_downstream: InProcessScim
) -> None:
    """Creates, pushed memberships and deactivations go in Bulk requests; the downstream
    ends exactly as with single requests."""
    downstream = bulk_downstream
    users = create_users(runtime, PEOPLE)
    group = create_group(runtime, "Everyone", users)
    team = create_group(runtime, "Team", users[:40])
    app_id = create_scim_app(
        runtime, downstream.base_url, lookup_batch_size=100, mass_change_threshold=0
    )
    assert _capabilities(runtime, app_id).bulk is True
    downstream.transport.clear()
    assign_group(runtime, app_id, group)
    push_group(runtime, app_id, team)
    converge(runtime)
    scim = downstream.scim
    by_name = scim.by_user_name()
    assert len(by_name) == PEOPLE and all(u["active"] for u in by_name.values())
    assert scim.members("Team") == {f"user{i:05d}@example.com" for i in range(40)}
    writes = downstream.transport.writes()
    bulks = [w for w in writes if w.resource == "Bulk"]
    assert bulks and len(writes) - len(bulks) <= 2  # the pushed group's own create, at most
    assert len(writes) < PEOPLE / 10
    for sent in bulks:
        assert "failOnErrors" not in sent.body
    downstream.transport.clear()
    unassign_group(runtime, app_id, group)
    converge(runtime)
    accounts = scim.users()
    assert len(accounts) == PEOPLE and not any(a["active"] for a in accounts)
    assert scim.members("Team") == set()
    writes = downstream.transport.writes()
    assert writes and all(w.resource == "Bulk" for w in writes)
    assert len(writes) < PEOPLE / 10


def test_bulk_conflict_links_the_account(runtime: Runtime) -> None:
    """The look-up misses an account that is there (a search index behind, say): its create,
    one operation of a Bulk request, gets 409; that account is looked up again and linked,
    the others are created, and nothing is duplicated."""
    users = create_users(runtime, 10)
    group = create_group(runtime, "Everyone", users)
    with proxied_scim_server(bulk=True) as (server, proxy):
        scim = ScimReader(server.base_url)
        taken = scim.create_user("user00003@example.com")
        app_id = create_scim_app(runtime, proxy.base_url, lookup_batch_size=50)
        empty = {"schemas": [LIST_RESPONSE], "totalResults": 0, "Resources": []}
        proxy.status(200, empty, method="GET", path=r"/Users$", times=1)
        assign_group(runtime, app_id, group)
        converge(runtime)
        by_name = scim.by_user_name()
        assert len(by_name) == 10 and by_name["user00003@example.com"]["id"] == taken
        answers = [e.upstream_body or b"" for e in proxy.requests("POST", r"/Bulk$")]
        assert any(b'"409"' in answer for answer in answers)
        assert max(creates_per_user_name(proxy).values()) == 1
        with runtime.database.read() as session:
            links = session.query(t.AppUserLink).filter_by(app_id=app_id).all()
            assert {link.external_id for link in links} == {u["id"] for u in by_name.values()}


def test_a_refused_bulk_falls_back_and_is_remembered(runtime: Runtime) -> None:
    users = create_users(runtime, 20)
    group = create_group(runtime, "Everyone", users)
    with proxied_scim_server(bulk=True) as (server, proxy):
        proxy.refuse_bulk()
        app_id = create_scim_app(runtime, proxy.base_url)
        assign_group(runtime, app_id, group)
        converge(runtime)
        assert len(ScimReader(server.base_url).users()) == 20
        assert _capabilities(runtime, app_id).bulk_refused_at is not None
        bulks = len(proxy.requests("POST", r"/Bulk$"))
        create_users(runtime, 5, start=100, group_ids=[group])
        converge(runtime)
        assert len(proxy.requests("POST", r"/Bulk$")) == bulks
        assert len(ScimReader(server.base_url).users()) == 25
