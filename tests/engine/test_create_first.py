"""``lookupBeforeCreate: false``: a new account is created without a look-up; one the app
already has is answered 409 (RFC 7644 §3.3), then looked up by userName and linked, never
duplicated. Against scim2-server, alone and inside Bulk requests, on SQLite and PostgreSQL;
through the fault proxy, answers lost after the app applied a create still converge to one
account each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi.testclient import TestClient

from headwater.db import tables as t
from headwater.domain.ldap import LDAP_APP_NAME
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    ScimReader,
    Sent,
    assert_okta_error,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    creates_per_user_name,
    due_now,
    events,
    ok,
    proxied_scim_server,
)

PEOPLE = 30
TAKEN = "user00007@example.com"


def _user_lookups(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.method == "GET" and s.resource == "Users"]


def _linked(runtime: Runtime) -> list[str]:
    """Account events that say an existing account was linked."""
    return [e.display_message for e in events(runtime, "application.provision.user.verify_exists")]


def test_an_existing_account_is_linked_after_its_create_is_refused(
    runtime: Runtime, downstream: InProcessScim
) -> None:
    """One POST per new account and no look-up; the taken userName gets 409, then one GET by
    userName, and its account is linked and brought to the desired attributes."""
    users = create_users(runtime, PEOPLE)
    taken = downstream.scim.create_user(TAKEN, name={"givenName": "Someone", "familyName": "Else"})
    group = create_group(runtime, "Everyone", users)
    app_id = create_scim_app(runtime, downstream.base_url, lookup_before_create=False)
    downstream.transport.clear()
    assign_group(runtime, app_id, group)
    converge(runtime)

    by_name = downstream.scim.by_user_name()
    assert len(by_name) == PEOPLE
    assert by_name[TAKEN]["id"] == taken
    assert by_name[TAKEN]["name"]["givenName"] != "Someone", "linked and updated"
    sent = downstream.transport.sent
    posts = [s for s in sent if s.method == "POST" and s.resource == "Users"]
    assert len(posts) == PEOPLE
    refused = [s for s in posts if s.status == 409]
    assert [s.body["userName"] for s in refused] == [TAKEN]
    lookups = _user_lookups(sent)
    assert len(lookups) == 1 and TAKEN.replace("@", "%40") in lookups[0].query
    assert sent.index(refused[0]) < sent.index(lookups[0]), "POST first, then the look-up"
    assert len(_linked(runtime)) == 1
    with runtime.database.read() as session:
        links = session.query(t.AppUserLink).filter_by(app_id=app_id).all()
        assert {link.external_id for link in links} == {u["id"] for u in by_name.values()}


def test_the_default_still_looks_up_first(runtime: Runtime, downstream: InProcessScim) -> None:
    """Without the setting every new account is looked up before its POST, and nothing gets
    409."""
    users = create_users(runtime, 5)
    downstream.scim.create_user("user00002@example.com")
    group = create_group(runtime, "Everyone", users)
    app_id = create_scim_app(runtime, downstream.base_url)
    downstream.transport.clear()
    assign_group(runtime, app_id, group)
    converge(runtime)
    sent = downstream.transport.sent
    assert len(_user_lookups(sent)) == 5
    posts = [s for s in sent if s.method == "POST" and s.resource == "Users"]
    assert len(posts) == 4 and all(s.status == 201 for s in posts)
    assert len(downstream.scim.by_user_name()) == 5


@pytest.fixture
async def bulk_downstream(runtime: Runtime) -> AsyncIterator[InProcessScim]:
    server = InProcessScim(bulk=True).serve(runtime)
    yield server
    await server.aclose()


def test_inside_bulk_requests_the_refused_operation_is_looked_up_and_linked(
    runtime: Runtime, bulk_downstream: InProcessScim
) -> None:
    """The creates go in Bulk requests with no look-up before them (batched look-ups set, and
    not sent); the one operation answered 409 is looked up afterwards and linked."""
    downstream = bulk_downstream
    users = create_users(runtime, PEOPLE)
    taken = downstream.scim.create_user(TAKEN)
    group = create_group(runtime, "Everyone", users)
    app_id = create_scim_app(
        runtime, downstream.base_url, lookup_before_create=False, lookup_batch_size=50
    )
    downstream.transport.clear()
    assign_group(runtime, app_id, group)
    converge(runtime)

    by_name = downstream.scim.by_user_name()
    assert len(by_name) == PEOPLE and by_name[TAKEN]["id"] == taken
    sent = downstream.transport.sent
    bulks = [s for s in sent if s.method == "POST" and s.resource == "Bulk"]
    assert bulks and not [s for s in sent if s.method == "POST" and s.resource == "Users"]
    created = [
        op["data"]["userName"]
        for s in bulks
        for op in s.body["Operations"]
        if op["method"] == "POST" and op["path"] == "/Users"
    ]
    assert sorted(created) == sorted(by_name)
    lookups = _user_lookups(sent)
    assert len(lookups) == 1 and TAKEN.replace("@", "%40") in lookups[0].query
    assert sent.index(bulks[0]) < sent.index(lookups[0]), "the Bulk create first, then the look-up"
    assert len(_linked(runtime)) == 1
    with runtime.database.read() as session:
        links = session.query(t.AppUserLink).filter_by(app_id=app_id).all()
        assert {link.external_id for link in links} == {u["id"] for u in by_name.values()}


def test_ldap_apps_refuse_create_first(client: TestClient, runtime: Runtime) -> None:
    """A directory refuses a second entry at the same DN only, not at the same matching
    attribute: creating first could duplicate, so the setting is refused and nothing
    changes."""
    app = ok(client.post("/api/v1/apps", json={"name": LDAP_APP_NAME, "label": "Directory"}))
    url = f"/api/v1/apps/{app['id']}/provisioning/settings"
    before = ok(client.get(url))
    response = client.put(url, json={"lookupBeforeCreate": False, "maxConcurrency": 3})
    body = assert_okta_error(response, 400, "E0000001", "lookupBeforeCreate")
    assert "LDAP" in body["errorCauses"][0]["errorSummary"]
    assert ok(client.get(url)) == before
    assert ok(client.put(url, json={"lookupBeforeCreate": True}))["lookupBeforeCreate"] is True


def test_the_setting_is_validated_stored_and_shown(client: TestClient, runtime: Runtime) -> None:
    app_id = create_scim_app(runtime, "http://127.0.0.1:9/scim/v2", enabled=False)
    url = f"/api/v1/apps/{app_id}/provisioning/settings"
    assert ok(client.get(url))["lookupBeforeCreate"] is True
    for bad in ("false", 0, None, [False]):
        response = client.put(url, json={"lookupBeforeCreate": bad})
        assert_okta_error(response, 400, "E0000001", "lookupBeforeCreate: must be true or false")
    assert ok(client.get(url))["lookupBeforeCreate"] is True
    assert ok(client.put(url, json={"lookupBeforeCreate": False}))["lookupBeforeCreate"] is False
    assert ok(client.get(url))["lookupBeforeCreate"] is False
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/apps/{app_id}/provisioning/settings"]["put"]["requestBody"]
    documented = body["content"]["application/json"]["schema"]["properties"]
    assert documented["lookupBeforeCreate"] == {"type": "boolean"}
    assert set(documented) == set(ok(client.get(url)))


def test_the_plan_says_how_creates_are_sent(client: TestClient, runtime: Runtime) -> None:
    users = create_users(runtime, 2)
    group = create_group(runtime, "Everyone", users)
    app_id = create_scim_app(runtime, "http://127.0.0.1:9/scim/v2", enabled=False)
    assign_group(runtime, app_id, group)
    plan = ok(client.get(f"/api/v1/apps/{app_id}/plan"))
    assert plan["summary"] == {"CREATE_ACCOUNT": 2}
    assert plan["accountCreates"] == "LOOK_UP_FIRST"
    ok(
        client.put(
            f"/api/v1/apps/{app_id}/provisioning/settings", json={"lookupBeforeCreate": False}
        )
    )
    plan = ok(client.get(f"/api/v1/apps/{app_id}/plan"))
    assert plan["accountCreates"] == "CREATE_FIRST"
    assert plan["summary"] == {"CREATE_ACCOUNT": 2}


# -- faults ------------------------------------------------------------------------------------

#: Long enough for the backoffs of these tests (their retries start at 20 ms).
HORIZON = 30.0


@pytest.mark.parametrize("bulk", [False, True], ids=["single requests", "bulk"])
def test_lost_answers_and_server_errors_converge_without_duplicates(
    fast_runtime: Runtime, bulk: bool
) -> None:
    """A third of the creates are applied by the app and their answers lost (the connection
    reset, or a 500 sent in place of the 201), and a tenth of all requests fail before
    reaching it: the retried creates get 409 and are linked; every account exists once and
    is linked to the user it stands for."""
    runtime = fast_runtime
    users = create_users(runtime, 60)
    group = create_group(runtime, "Everyone", users)
    with proxied_scim_server(seed=17, bulk=bulk) as (server, proxy):
        scim = ScimReader(server.base_url)
        scim.create_user("user00011@example.com")
        app_id = create_scim_app(runtime, proxy.base_url, "Faulty", lookup_before_create=False)
        writes = r"/Bulk$" if bulk else r"/Users$"
        rules = [
            proxy.reset(method="POST", path=writes, probability=0.2, seed=1, after_upstream=True),
            proxy.status(
                500, method="POST", path=writes, probability=0.15, seed=2, after_upstream=True
            ),
            proxy.mixed(0.1, seed=3, kinds=("500", "503", "reset")),
        ]
        assign_group(runtime, app_id, group)
        converge(runtime, timeout=120, horizon=HORIZON, settled=False)
        for rule in rules:
            proxy.remove(rule)
        due_now(runtime)
        converge(runtime, timeout=60, horizon=HORIZON)

        by_name = scim.by_user_name()
        assert len(by_name) == 60
        assert all(account["active"] for account in by_name.values())
        assert max(creates_per_user_name(proxy).values()) == 1
        lost = [e for e in proxy.requests("POST", writes) if e.fault and e.upstream_status]
        assert lost, "no answer was lost after the app applied the request"
        assert len(_linked(runtime)) >= 2, "the taken account and at least one lost answer"
        with runtime.database.read() as session:
            links = session.query(t.AppUserLink).filter_by(app_id=app_id).all()
            assert len(links) == 60
            assert {link.external_id for link in links} == {u["id"] for u in by_name.values()}
            assert all(link.state == "ACTIVE" for link in links)
