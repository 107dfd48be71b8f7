"""The system log: Okta's LogEvent shape, eventType names, filters, keyword search and paging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from headwater import clock
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import USER_PASSWORD, assert_okta_error, links, ok


def _logs(client: TestClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/logs?{quote(query, safe='=&')}")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


@pytest.fixture
def story(client: TestClient) -> dict[str, str]:
    """Ann is created, joins Accounting, is suspended; Bob is created staged.

    Told through the API, not the services: the log must show the API token as the actor."""

    def profile(login: str) -> dict[str, str]:
        first = login.partition("@")[0].title()
        return {"login": login, "email": login, "firstName": first, "lastName": "Tester"}

    credentials = {"password": {"value": USER_PASSWORD}}
    body = {"profile": profile("ann@example.com"), "credentials": credentials}
    ann = ok(client.post("/api/v1/users", json=body))["id"]
    body = {"profile": profile("bob@example.com")}
    bob = ok(client.post("/api/v1/users?activate=false", json=body))["id"]
    group = ok(client.post("/api/v1/groups", json={"profile": {"name": "Accounting"}}))["id"]
    ok(client.put(f"/api/v1/groups/{group}/users/{ann}"), 204)
    ok(client.post(f"/api/v1/users/{ann}/lifecycle/suspend"))
    return {"ann": ann, "bob": bob, "group": group}


def test_events_have_okta_shape(client: TestClient, story: dict[str, str]) -> None:
    events = _logs(client)
    assert [e["eventType"] for e in events] == [
        "system.api_token.create",
        "user.lifecycle.create",
        "user.lifecycle.activate",
        "user.lifecycle.create",
        "group.lifecycle.create",
        "group.user_membership.add",
        "user.lifecycle.suspend",
    ]
    add = events[5]
    assert set(add) >= {
        "uuid", "published", "eventType", "version", "severity", "legacyEventType",
        "displayMessage", "actor", "client", "outcome", "target", "transaction",
        "debugContext", "authenticationContext", "securityContext",
    }  # fmt: skip
    assert (add["version"], add["severity"], add["legacyEventType"]) == ("0", "INFO", None)
    assert add["outcome"] == {"result": "SUCCESS", "reason": None}
    assert add["actor"]["type"] == "Token" and add["actor"]["alternateId"] == "test-token"
    assert [(x["id"], x["type"]) for x in add["target"]] == [
        (story["ann"], "User"),
        (story["group"], "UserGroup"),
    ]
    assert add["target"][0]["alternateId"] == "ann@example.com"
    assert add["published"].endswith("Z") and len(add["published"]) == 24
    assert isinstance(add["debugContext"]["debugData"], dict)


FILTER_CASES: list[tuple[str, int]] = [
    ('filter=eventType eq "user.lifecycle.create"', 2),
    ('filter=eventType sw "group."', 2),
    ('filter=eventType eq "user.lifecycle.create" or eventType eq "group.lifecycle.create"', 3),
    ('filter=outcome.result eq "SUCCESS" and severity eq "INFO"', 7),
    ('filter=actor.alternateId eq "test-token" and eventType co "suspend"', 1),
    ("q=accounting", 2),
    ("q=ann suspend", 1),
    ("q=nothing-like-this", 0),
    ("limit=2&sortOrder=DESCENDING", 2),
]


def test_filters(client: TestClient, story: dict[str, str], subtests: pytest.Subtests) -> None:
    for query, expected in FILTER_CASES:
        with subtests.test(msg=query):
            assert len(_logs(client, query)) == expected


def test_target_id_filter(client: TestClient, story: dict[str, str]) -> None:
    ann = _logs(client, f'filter=target.id eq "{story["ann"]}"')
    assert [e["eventType"] for e in ann] == [
        "user.lifecycle.create",
        "user.lifecycle.activate",
        "group.user_membership.add",
        "user.lifecycle.suspend",
    ]
    both = _logs(
        client,
        f'filter=target.id eq "{story["group"]}" and eventType eq "group.user_membership.add"',
    )
    assert len(both) == 1
    prefix = client.get("/api/v1/logs?" + quote('filter=target.id sw "00u"', safe="="))
    assert_okta_error(prefix, 400, "E0000001")


def test_since_until_and_default_window(
    client: TestClient, runtime: Runtime, story: dict[str, str]
) -> None:
    old = clock.utcnow() - timedelta(days=8)
    # Time travel, written directly: no service backdates an event.
    with runtime.database.transaction() as session:
        session.execute(
            update(t.Event)
            .where(t.Event.event_type == "system.api_token.create")
            .values(published=old)
        )
    assert len(_logs(client)) == 6
    since = clock.format_okta(old - timedelta(minutes=1))
    until = clock.format_okta(old + timedelta(minutes=1))
    assert len(_logs(client, f"since={since}")) == 7
    assert [e["eventType"] for e in _logs(client, f"since={since}&until={until}")] == [
        "system.api_token.create"
    ]
    assert_okta_error(client.get("/api/v1/logs?since=yesterday"), 400, "E0000001")
    assert_okta_error(client.get("/api/v1/logs?sortOrder=SIDEWAYS"), 400, "E0000001")


def test_paging_both_ways_and_polling(client: TestClient, story: dict[str, str]) -> None:
    everything = [e["uuid"] for e in _logs(client)]
    for order, expected in (("ASCENDING", everything), ("DESCENDING", everything[::-1])):
        seen: list[str] = []
        url = f"/api/v1/logs?limit=3&sortOrder={order}&until=2999-01-01T00:00:00Z"
        while url:
            response = client.get(url)
            seen += [e["uuid"] for e in response.json()]
            url = links(response).get("next", "")
        assert seen == expected
    poll = client.get("/api/v1/logs?limit=100")
    cursor_url = links(poll)["next"]
    assert client.get(cursor_url).json() == []
    assert "next" in links(client.get(cursor_url))
    client.post(f"/api/v1/users/{story['ann']}/lifecycle/unsuspend")
    assert [e["eventType"] for e in client.get(cursor_url).json()] == ["user.lifecycle.unsuspend"]


def test_bad_parameters_are_400(client: TestClient) -> None:
    for query in ("filter=eventType eq", 'filter=nope eq "x"', "after=%00", "limit=many"):
        assert_okta_error(client.get(f"/api/v1/logs?{quote(query, safe='=%')}"), 400, "E0000001")
    assert client.get("/api/v1/logs?limit=5000").status_code == 200
