"""Least privilege over the API: every route declares one permission; each role is allowed or
refused (403 ``E0000006``, recorded in the system log) exactly as the domain's table says;
scoped roles list only what they may see; tokens expire; only a super admin manages tokens;
tokens made before roles existed are super admins.

The routes are enumerated from the app itself, so a new route without a permission, or a
write route declared with a read permission, fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.conftest import PG_URL

from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.domain.access import Grant, Kind, Permission, allows
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import tokens
from headwater.services.access import DENIED_EVENT
from headwater.testing.toolkit import (
    MovableClock,
    add_member,
    api_client,
    api_token,
    assert_okta_error,
    assign_group,
    create_group,
    create_user,
    events,
    make_runtime,
)
from headwater.testing.toolkit import (
    create_app as create_bookmark_app,
)

P = Permission
DUMMY = {
    "app_id": "0oaNoSuchApp00000000",
    "group_id": "00gNoSuchGroup000000",
    "user_id": "00uNoSuchUser0000000",
    "mapping_id": "gPmNoSuchMapping0000",
    "rule_id": "0prNoSuchRule0000000",
    "task_id": "tskNoSuchTask0000000",
    "token_id": "00TNoSuchToken000000",
    "source_id": "0srNoSuchSource00000",
    "name": "USER_PROVISIONING",
    "schema_id": "default",
    "import_id": "impNoSuchImport00000",
    "account_id": "umaNoSuchAccount0000",
    "hold_id": "imhNoSuchHold0000000",
}


def _permissions(route: RouteContext) -> list[tuple[Permission, str | None]]:
    """The permission dependencies of a route (its own and its parameters')."""
    found: list[tuple[Permission, str | None]] = []

    def walk(dependant: Any) -> None:
        for sub in dependant.dependencies:
            permission = getattr(sub.call, "permission", None)
            if permission is not None:
                found.append((permission, getattr(sub.call, "param", None)))
            walk(sub)

    walk(route.dependant)
    return found


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    permission: Permission
    param: str | None

    def url(self, ids: dict[str, str]) -> str:
        return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: ids[m[1]], self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not isinstance(route.original_route, APIRoute) or not path.startswith("/api/v1/"):
            continue
        declared = _permissions(route)
        assert len(declared) == 1, f"{path}: permissions {declared} (exactly one needed)"
        permission, param = declared[0]
        for method in sorted(route.methods or ()):
            found.append(Endpoint(method, path.removeprefix("/api/v1"), permission, param))
    return found


@pytest.fixture
def app(sqlite_runtime: Runtime) -> FastAPI:
    return create_app(sqlite_runtime, start_worker=False)


def test_every_route_declares_one_permission_fit_for_its_method(app: FastAPI) -> None:
    found = endpoints(app)
    assert len(found) > 60
    for endpoint in found:
        if endpoint.method == "GET":
            assert endpoint.permission.is_read or endpoint.permission == P.TOKENS_MANAGE, endpoint
        else:
            assert not endpoint.permission.is_read, endpoint
        kind = endpoint.permission.kind
        if kind != Kind.ORG and endpoint.param is not None:
            assert endpoint.param == {Kind.APP: "app_id", Kind.GROUP: "group_id"}[kind], endpoint
            assert "{" + endpoint.param + "}" in endpoint.path, endpoint


@dataclass
class World:
    runtime: Runtime
    app_in: str
    app_out: str
    group_in: str
    group_out: str
    user: str


@pytest.fixture
def world(runtime: Runtime) -> World:
    user = create_user(runtime, "taylor.smith@example.com")
    group_in = create_group(runtime, "Mine", [user])
    group_out = create_group(runtime, "Theirs", [user])
    app_in = create_bookmark_app(runtime, "Wiki")
    app_out = create_bookmark_app(runtime, "Payroll")
    assign_group(runtime, app_in, group_in)
    assign_group(runtime, app_out, group_out)
    return World(runtime, app_in, app_out, group_in, group_out, user)


GRANTS = {
    "SUPER_ADMIN": ((), ()),
    "READ_ONLY_ADMIN": ((), ()),
    "APP_ADMIN": (("app_in",), ()),
    "GROUP_MEMBERSHIP_ADMIN": ((), ("group_in",)),
}


def _grant(world: World, role: str) -> tuple[Grant, list[str], list[str]]:
    apps = [getattr(world, name) for name in GRANTS[role][0]]
    groups = [getattr(world, name) for name in GRANTS[role][1]]
    return Grant.of(role, apps, groups), apps, groups


@pytest.mark.parametrize("role", list(GRANTS))
def test_each_role_is_allowed_and_refused_as_the_table_says(world: World, role: str) -> None:
    grant, apps, groups = _grant(world, role)
    token = api_token(world.runtime, f"{role.lower()}-token", role=role, apps=apps, groups=groups)
    refused = 0
    with api_client(world.runtime, token) as client:
        for endpoint in endpoints(client.app):  # type: ignore[arg-type]
            if endpoint.path == "/api-tokens/current":
                continue  # would revoke this token: checked below
            for scoped in ("in", "out"):
                ids = dict(DUMMY)
                resource = None
                if endpoint.param is not None:
                    kind = "app" if endpoint.param == "app_id" else "group"
                    resource = getattr(world, f"{kind}_{scoped}")
                    ids[endpoint.param] = resource
                expected = allows(grant, endpoint.permission, resource)
                body: dict[str, Any] | None = None
                if endpoint.method not in ("GET", "DELETE"):
                    body = {}
                response = client.request(endpoint.method, endpoint.url(ids), json=body)
                what = f"{role} {endpoint} ({scoped}): {response.status_code} {response.text[:200]}"
                if expected:
                    assert response.status_code not in (401, 403), what
                    assert response.status_code < 500, what
                else:
                    assert_okta_error(response, 403, "E0000006")
                    summary = response.json()["errorSummary"]
                    assert summary == "You do not have permission to perform the requested action"
                    refused += 1
                if endpoint.param is None:
                    break
    denied = events(world.runtime, DENIED_EVENT)
    assert len(denied) == refused
    assert {event.actor["alternateId"] for event in denied} <= {f"{role.lower()}-token"}
    assert all(event.outcome_result == "FAILURE" for event in denied)
    if role == "SUPER_ADMIN":
        assert refused == 0
    else:
        assert refused > 10
    # Any token may revoke itself.
    with api_client(world.runtime, token) as client:
        assert client.delete("/api/v1/api-tokens/current").status_code == 204
        assert_okta_error(client.get("/api/v1/users"), 401, "E0000011")


def test_a_refusal_names_the_resource_and_changes_nothing(world: World) -> None:
    token = api_token(world.runtime, "wiki-admin", role="APP_ADMIN", apps=[world.app_in])
    with api_client(world.runtime, token) as client:
        response = client.post(f"/api/v1/apps/{world.app_out}/lifecycle/deactivate")
        assert_okta_error(response, 403, "E0000006")
        assert client.get(f"/api/v1/apps/{world.app_in}").json()["status"] == "ACTIVE"
        assert client.post(f"/api/v1/apps/{world.app_in}/lifecycle/deactivate").status_code == 200
    with api_client(world.runtime) as admin:
        assert admin.get(f"/api/v1/apps/{world.app_out}").json()["status"] == "ACTIVE"
    (denied,) = events(world.runtime, DENIED_EVENT)
    assert denied.targets[0]["id"] == world.app_out
    assert denied.debug["permission"] == "apps.write"
    assert f"POST /api/v1/apps/{world.app_out}/lifecycle/deactivate" in denied.debug["request"]


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {item.get("appInstanceId") or item["id"] for item in response.json()}


def test_scoped_lists_show_only_what_the_role_may_see(world: World) -> None:
    both_apps = {world.app_in, world.app_out}
    app_token = api_token(world.runtime, "apps", role="APP_ADMIN", apps=[world.app_in])
    with api_client(world.runtime, app_token) as client:
        assert _ids(client.get("/api/v1/apps")) == {world.app_in}
        assert _ids(client.get(f"/api/v1/groups/{world.group_in}/apps")) == {world.app_in}
        assert _ids(client.get(f"/api/v1/groups/{world.group_out}/apps")) == set()
        assert _ids(client.get(f"/api/v1/users/{world.user}/appLinks")) == {world.app_in}
        # the directory is read whole: whom to assign
        assert {world.group_in, world.group_out} <= _ids(client.get("/api/v1/groups"))
    group_token = api_token(
        world.runtime, "groups", role="GROUP_MEMBERSHIP_ADMIN", groups=[world.group_in]
    )
    with api_client(world.runtime, group_token) as client:
        assert _ids(client.get("/api/v1/groups")) == {world.group_in}
        assert _ids(client.get(f"/api/v1/users/{world.user}/groups")) == {world.group_in}
        assert_okta_error(client.get("/api/v1/apps"), 403, "E0000006")
        other = create_user(world.runtime, "alex.johnson@example.com")
        url = f"/api/v1/groups/{world.group_in}/users/{other}"
        assert client.put(url).status_code == 204
        assert client.delete(url).status_code == 204
        theirs = f"/api/v1/groups/{world.group_out}/users/{other}"
        assert_okta_error(client.put(theirs), 403, "E0000006")
    read_token = api_token(world.runtime, "auditor", role="READ_ONLY_ADMIN")
    with api_client(world.runtime, read_token) as client:
        assert both_apps <= _ids(client.get("/api/v1/apps"))
        assert client.get("/api/v1/logs").status_code == 200
        assert_okta_error(
            client.post("/api/v1/groups", json={"profile": {"name": "X"}}), 403, "E0000006"
        )


def test_only_a_super_admin_manages_tokens(world: World) -> None:
    victim = api_token(world.runtime, "victim")
    with world.runtime.database.read() as session:
        (victim_id,) = [row.id for row in tokens.list_tokens(session) if row.name == "victim"]
    for role in ("APP_ADMIN", "GROUP_MEMBERSHIP_ADMIN", "READ_ONLY_ADMIN"):
        _, apps, groups = _grant(world, role)
        token = api_token(world.runtime, role, role=role, apps=apps, groups=groups)
        with api_client(world.runtime, token) as client:
            assert_okta_error(client.get("/api/v1/api-tokens"), 403, "E0000006")
            assert_okta_error(client.get(f"/api/v1/api-tokens/{victim_id}"), 403, "E0000006")
            assert_okta_error(client.delete(f"/api/v1/api-tokens/{victim_id}"), 403, "E0000006")
    with api_client(world.runtime, victim) as client:
        assert client.get("/api/v1/users").status_code == 200
    with api_client(world.runtime) as admin:
        assert admin.delete(f"/api/v1/api-tokens/{victim_id}").status_code == 204


def test_a_token_expires_when_asked(world: World) -> None:
    token = api_token(world.runtime, "short", lifetime=timedelta(hours=1))
    forever = api_token(world.runtime, "forever")
    with api_client(world.runtime, token) as client, MovableClock() as clock:
        listed = {item["name"]: item for item in client.get("/api/v1/api-tokens").json()}
        assert listed["short"]["expiresAt"] is not None
        assert listed["forever"]["expiresAt"] is None
        clock.advance(timedelta(minutes=59))
        assert client.get("/api/v1/users").status_code == 200
        clock.advance(timedelta(minutes=2))
        assert_okta_error(client.get("/api/v1/users"), 401, "E0000011")
        client.headers["Authorization"] = f"SSWS {forever}"
        assert client.get("/api/v1/users").status_code == 200


@pytest.mark.parametrize(
    ("role", "apps", "groups", "cause"),
    [
        ("OWNER", [], [], "role: must be one of"),
        ("APP_ADMIN", [], [], "apps: a APP_ADMIN needs at least one"),
        ("APP_ADMIN", ["0oaNoSuchApp00000000"], [], "apps: no such id 0oaNoSuchApp00000000"),
        ("GROUP_MEMBERSHIP_ADMIN", [], ["00gNope"], "groups: no such id 00gNope"),
    ],
)
def test_a_token_with_a_bad_role_or_scope_is_refused(
    sqlite_runtime: Runtime, role: str, apps: list[str], groups: list[str], cause: str
) -> None:
    from headwater.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as raised:
        api_token(sqlite_runtime, "bad", role=role, apps=apps, groups=groups)
    assert any(c.startswith(cause) for c in raised.value.causes), raised.value.causes
    with sqlite_runtime.database.read() as session:
        assert [row.name for row in tokens.list_tokens(session)] == []


# --- Tokens made before roles existed ------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails like the other PostgreSQL tests
    name = f"hw_roles_{tmp_path.name[-20:]}".lower().replace("-", "_")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_tokens_from_before_roles_become_super_admins(empty_db_url: str, tmp_path: Path) -> None:
    old = Database(empty_db_url)
    upgrade(old, "0001")
    plaintext = "00" + "x" * 40
    with old.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_tokens (id, name, token_hash, token_prefix, created, "
                "last_updated) VALUES ('00Told', 'old', :hash, '00xxxx', :now, :now)"
            ),
            {"hash": tokens.hash_token(plaintext), "now": "2026-01-01 00:00:00+00:00"},
        )
    old.dispose()
    runtime = make_runtime(empty_db_url, tmp_path / "data")  # migrates to head
    try:
        with api_client(runtime, plaintext) as client:
            assert client.get("/api/v1/api-tokens").status_code == 200
            assert (
                client.post("/api/v1/groups", json={"profile": {"name": "Still"}}).status_code
                == 200
            )
        with runtime.database.read() as session:
            (row,) = tokens.list_tokens(session)
            assert (row.role, row.app_ids, row.group_ids) == ("SUPER_ADMIN", [], [])
    finally:
        runtime.close()


def test_membership_added_by_a_group_admin_is_attributed_to_its_token(world: World) -> None:
    token = api_token(
        world.runtime, "helpdesk", role="GROUP_MEMBERSHIP_ADMIN", groups=[world.group_in]
    )
    other = create_user(world.runtime, "jordan.lee@example.com")
    with api_client(world.runtime, token) as client:
        assert client.put(f"/api/v1/groups/{world.group_in}/users/{other}").status_code == 204
    (added,) = [
        event
        for event in events(world.runtime, "group.user_membership.add")
        if any(target["id"] == other for target in event.targets)
    ]
    assert added.actor["alternateId"] == "helpdesk"
    add_member(world.runtime, world.group_out, other)  # the toolkit (a super admin) may
