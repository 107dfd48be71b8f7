"""Input no database can store, or that could never be rendered again, is refused with Okta's
400 naming the field, and nothing is stored: every later read still answers.

Bodies are sent as raw bytes, because a JSON encoder will not write a lone surrogate."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from headwater.db.events import SYSTEM
from headwater.domain.settings import check_changes
from headwater.errors import InvalidRequest
from headwater.runtime import Runtime
from headwater.services import apps, assignments, connections
from headwater.testing.toolkit import (
    assert_okta_error,
    create_app,
    create_group,
    create_user,
    ok,
    row_counts,
)

SURROGATE = '"\\ud800"'
BAD = "\ud800"


def _nested(depth: int) -> str:
    """A JSON value nested ``depth`` levels deep (arrays), as text."""
    return "[" * depth + "]" * depth


def _send(client: TestClient, method: str, url: str, body: str) -> Any:
    return client.request(
        method, url, content=body.encode(), headers={"Content-Type": "application/json"}
    )


@pytest.fixture
def ids(runtime: Runtime) -> dict[str, str]:
    return {
        "app": create_app(runtime),
        "group": create_group(runtime, "Staff"),
        "user": create_user(runtime, "ann@example.com"),
    }


#: (what, profile value as JSON text, the field the error must name)
BAD_PROFILES = [
    ("a lone surrogate", '{"x": ' + SURROGATE + "}", "profile.x: must be valid Unicode text"),
    ("a lone surrogate in a key", '{"a\\udc00": 1}', "profile: keys must be valid Unicode"),
    ("nested 250 deep", '{"x": ' + _nested(250) + "}", "nested more than"),
    ("nested 20 deep", '{"x": ' + _nested(20) + "}", "profile.x.0.0"),
    ("too many keys", json.dumps({f"k{i}": i for i in range(1001)}), "profile: must have at most"),
    ("too large", json.dumps({"x": ["y" * 1000] * 70}), "profile: must be at most 65536 bytes"),
    ("too large a number", '{"x": 1e400}', "profile.x: must be a finite number"),
]


@pytest.mark.parametrize(
    ("what", "profile", "cause"), BAD_PROFILES, ids=[b[0] for b in BAD_PROFILES]
)
@pytest.mark.parametrize("where", ["group", "new app user", "app user update"])
def test_an_unstorable_assignment_profile_is_refused_and_reads_keep_working(
    client: TestClient,
    runtime: Runtime,
    ids: dict[str, str],
    where: str,
    what: str,
    profile: str,
    cause: str,
) -> None:
    app, group, user = ids["app"], ids["group"], ids["user"]
    if where == "app user update":
        ok(client.post(f"/api/v1/apps/{app}/users", json={"id": user, "profile": {"a": 1}}))
    before = row_counts(runtime)
    requests: dict[str, tuple[str, str, str]] = {
        "group": ("PUT", f"/api/v1/apps/{app}/groups/{group}", '{"profile": @}'),
        "new app user": ("POST", f"/api/v1/apps/{app}/users", f'{{"id": "{user}", "profile": @}}'),
        "app user update": ("POST", f"/api/v1/apps/{app}/users/{user}", '{"profile": @}'),
    }
    method, url, template = requests[where]
    response = _send(client, method, url, template.replace("@", profile))
    body = assert_okta_error(response, 400, "E0000001")
    summaries = " ".join(c["errorSummary"] for c in body["errorCauses"])
    assert cause in summaries, summaries
    assert row_counts(runtime) == before
    assert ok(client.get(f"/api/v1/apps/{app}/groups")) == []
    listed = ok(client.get(f"/api/v1/apps/{app}/users"))
    assert [u["profile"] for u in listed] == ([{"a": 1}] if where == "app user update" else [])


def test_a_merged_app_user_profile_is_bounded_too(client: TestClient, ids: dict[str, str]) -> None:
    """Each update fits, but together they would pass the bound: the last one is refused."""
    app, user = ids["app"], ids["user"]
    url = f"/api/v1/apps/{app}/users/{user}"
    ok(client.post(f"/api/v1/apps/{app}/users", json={"id": user}))
    for part in range(2):
        keys = {f"k{part}_{i}": i for i in range(500)}
        ok(client.post(url, json={"profile": keys}))
    refused = client.post(url, json={"profile": {"one": "more"}})
    assert_okta_error(refused, 400, "E0000001", "profile: must have at most 1000 keys")
    assert len(ok(client.get(url))["profile"]) == 1000


Use = Callable[[Session, Runtime, dict[str, str]], Any]

#: (what, a use-case call, the cause expected): what the console and the CLI reach without the
#: API's check of whole bodies.
USE_CASES: list[tuple[str, Use, str]] = [
    (
        "group assignment",
        lambda s, r, i: assignments.assign_group(
            s, SYSTEM, i["app"], i["group"], assignments.GroupAssignmentSpec(profile={"x": BAD})
        ),
        "profile.x: must be valid Unicode text",
    ),
    (
        "direct assignment",
        lambda s, r, i: assignments.assign_user(
            s, SYSTEM, i["app"], i["user"], assignments.UserAssignmentSpec(profile={BAD: 1})
        ),
        "profile: keys must be valid Unicode text",
    ),
    (
        "app user name",
        lambda s, r, i: assignments.assign_user(
            s, SYSTEM, i["app"], i["user"], assignments.UserAssignmentSpec(user_name=BAD)
        ),
        "credentials.userName: must be valid Unicode text",
    ),
    (
        "app label",
        lambda s, r, i: apps.replace_app(s, SYSTEM, i["app"], apps.AppSpec(BAD, "bookmark")),
        "label: must be valid Unicode text",
    ),
    (
        "app document",
        lambda s, r, i: apps.create_app(
            s, SYSTEM, apps.AppSpec("A", "a", None, {"licensing": {"x": [BAD]}}), activate=True
        ),
        "licensing.x.0: must be valid Unicode text",
    ),
    (
        "settings",
        lambda s, r, i: apps.update_settings(
            s, SYSTEM, i["app"], check_changes({"user_name_template": "${source.login}\x00"})
        ),
        "userNameTemplate: must not contain NUL characters",
    ),
    (
        "connection secret",
        lambda s, r, i: connections.prepare_connection(
            s,
            r.secrets,
            i["app"],
            connections.ConnectionSpec("TOKEN", "https://scim.example.com", {"token": BAD}),
        ),
        "profile.token: must be valid Unicode text",
    ),
]


@pytest.mark.parametrize(("what", "use", "cause"), USE_CASES, ids=[u[0] for u in USE_CASES])
def test_use_cases_refuse_what_the_api_would(
    runtime: Runtime, ids: dict[str, str], what: str, use: Use, cause: str
) -> None:
    before = row_counts(runtime)
    with pytest.raises(InvalidRequest) as refused, runtime.database.transaction() as session:
        use(session, runtime, ids)
    assert cause in refused.value.causes[0]
    assert row_counts(runtime) == before


APP = '{"label": "Wiki", "signOnMode": "BOOKMARK", "settings": {"app": {"url": "https://w.example.com"}%s}%s}'

#: (what, app body, the cause expected)
BAD_APPS = [
    (
        "surrogate label",
        '{"label": '
        + SURROGATE
        + ', "signOnMode": "BOOKMARK", "settings": {"app": {"url": "https://w.example.com"}}}',
        "label: must be valid Unicode text",
    ),
    (
        "NUL label",
        '{"label": "x\\u0000", "signOnMode": "BOOKMARK", "settings": {"app": {"url": "https://w.example.com"}}}',
        "label: must not contain NUL",
    ),
    (
        "surrogate in settings",
        APP % (', "x": ' + SURROGATE, ""),
        "settings.x: must be valid Unicode text",
    ),
    ("deep visibility", APP % ("", ', "visibility": {"x": ' + _nested(40) + "}"), "visibility.x"),
    ("deep body", APP % ("", ', "profile": ' + _nested(300)), "nested more than 64 levels"),
    (
        "large profile",
        APP % ("", ', "profile": ' + json.dumps({"x": "y" * 300_000})),
        "profile: must be at most",
    ),
]


@pytest.mark.parametrize(("what", "body", "cause"), BAD_APPS, ids=[b[0] for b in BAD_APPS])
def test_an_unstorable_app_is_refused(
    client: TestClient, runtime: Runtime, what: str, body: str, cause: str
) -> None:
    app = create_app(runtime)
    for method, url in (("POST", "/api/v1/apps"), ("PUT", f"/api/v1/apps/{app}")):
        assert_okta_error(_send(client, method, url, body), 400, "E0000001", cause)
    assert [a["label"] for a in ok(client.get("/api/v1/apps"))] == ["Wiki"]


Request = Callable[[TestClient, dict[str, str]], Any]

#: (what, request, the cause expected) for everything else that is stored or echoed.
OTHERS: list[tuple[str, Request, str]] = [
    (
        "connection token",
        lambda c, i: _send(
            c,
            "POST",
            f"/api/v1/apps/{i['app']}/connections/default?activate=false",
            '{"baseUrl": "https://scim.example.com", "profile": {"authScheme": "TOKEN", "token": '
            + SURROGATE
            + "}}",
        ),
        "profile.token: must be valid Unicode text",
    ),
    (
        "connection baseUrl",
        lambda c, i: _send(
            c,
            "POST",
            f"/api/v1/apps/{i['app']}/connections/default?activate=false",
            '{"baseUrl": "https://scim.example.com/\\u0000", "profile": {"authScheme": "NONE"}}',
        ),
        "baseUrl: must not contain NUL",
    ),
    (
        "app user name",
        lambda c, i: _send(
            c,
            "POST",
            f"/api/v1/apps/{i['app']}/users",
            f'{{"id": "{i["user"]}", "credentials": {{"userName": {SURROGATE}}}}}',
        ),
        "credentials.userName: must be valid Unicode text",
    ),
    (
        "push mapping name",
        lambda c, i: _send(
            c,
            "POST",
            f"/api/v1/apps/{i['app']}/group-push/mappings",
            f'{{"sourceGroupId": "{i["group"]}", "targetGroupName": {SURROGATE}}}',
        ),
        "targetGroupName: must be valid Unicode text",
    ),
    (
        "settings",
        lambda c, i: _send(
            c,
            "PUT",
            f"/api/v1/apps/{i['app']}/provisioning/settings",
            f'{{"userNameTemplate": {SURROGATE}}}',
        ),
        "userNameTemplate: must be valid Unicode text",
    ),
    (
        "a cursor beyond any priority",
        lambda c, i: c.get(f"/api/v1/apps/{i['app']}/groups", params={"after": "9" * 25 + ".00g"}),
        "after: invalid cursor",
    ),
    (
        "a query string",
        lambda c, i: c.get(f"/api/v1/apps/{i['app']}/users", params={"q": "a\x00"}),
        "q: must not contain NUL",
    ),
    (
        "a path id",
        lambda c, i: c.get(f"/api/v1/apps/{i['app']}/users/00u%00"),
        "user_id: must not contain NUL",
    ),
]


@pytest.mark.parametrize(("what", "call", "cause"), OTHERS, ids=[o[0] for o in OTHERS])
def test_other_unstorable_input_is_refused(
    client: TestClient, runtime: Runtime, ids: dict[str, str], what: str, call: Request, cause: str
) -> None:
    before = row_counts(runtime)
    assert_okta_error(call(client, ids), 400, "E0000001", cause)
    assert row_counts(runtime) == before
