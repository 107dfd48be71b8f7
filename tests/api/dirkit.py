"""Helpers for the directory API tests: users and groups made through the API, apps and
assignments written straight to the database (their routes are tested on their own), the
outbox and table sizes read back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select

from headwater import clock, ids
from headwater.db import tables as t
from headwater.runtime import Runtime

PASSWORD = "Correct-Horse-42"


def profile(login: str, **extra: Any) -> dict[str, Any]:
    first = login.partition("@")[0].title()
    return {"login": login, "email": login, "firstName": first, "lastName": "Tester", **extra}


def create_user(
    client: TestClient,
    login: str,
    *,
    activate: bool | None = None,
    password: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"profile": profile(login, **extra)}
    if password is not None:
        body["credentials"] = {"password": {"value": password}}
    query = "" if activate is None else f"?activate={str(activate).lower()}"
    response = client.post(f"/api/v1/users{query}", json=body)
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


def create_group(client: TestClient, name: str, description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"profile": {"name": name}}
    if description is not None:
        body["profile"]["description"] = description
    response = client.post("/api/v1/groups", json=body)
    assert response.status_code == 200, response.text
    group: dict[str, Any] = response.json()
    return group


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an Okta error object with JSON content type; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["errorCode"] == code, body
    assert set(body) == {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}
    return body


def make_app(runtime: Runtime, label: str = "Wiki") -> str:
    now = clock.utcnow()
    app_id = ids.new_id("0oa")
    with runtime.database.transaction() as session:
        session.add(
            t.App(
                id=app_id,
                name="scim",
                label=label,
                status="ACTIVE",
                sign_on_mode=None,
                document={},
                provisioning={},
                created=now,
                last_updated=now,
            )
        )
    return app_id


def assign_group(runtime: Runtime, app_id: str, group_id: str, priority: int = 0) -> None:
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        session.add(
            t.AppGroupAssignment(
                app_id=app_id,
                group_id=group_id,
                priority=priority,
                profile={},
                created=now,
                last_updated=now,
            )
        )


def assign_user(runtime: Runtime, app_id: str, user_id: str) -> None:
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        session.add(
            t.AppUserAssignment(
                app_id=app_id, user_id=user_id, profile={}, created=now, last_updated=now
            )
        )


def add_mapping(
    runtime: Runtime, app_id: str, source: str | None, target: str | None = None
) -> str:
    now = clock.utcnow()
    mapping_id = ids.new_id("gPm")
    with runtime.database.transaction() as session:
        session.add(
            t.PushMapping(
                id=mapping_id,
                app_id=app_id,
                source_group_id=source,
                target_group_id=target,
                status="ACTIVE",
                created=now,
                last_updated=now,
            )
        )
    return mapping_id


def add_app_group(runtime: Runtime, app_id: str, name: str) -> str:
    now = clock.utcnow()
    group_id = ids.new_id("00g")
    with runtime.database.transaction() as session:
        session.add(
            t.Group(
                id=group_id,
                type="APP_GROUP",
                name=name,
                name_lower=name.lower(),
                name_scope=app_id,
                profile={"name": name},
                app_id=app_id,
                external_id=f"ext-{name}",
                created=now,
                last_updated=now,
            )
        )
    return group_id


def keys(runtime: Runtime) -> set[tuple[str, str, str]]:
    """Every (app, kind, subject) waiting in the outbox."""
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.ReconcileKey.app_id, t.ReconcileKey.kind, t.ReconcileKey.subject_id)
        ).all()
        return {(row[0], row[1], row[2]) for row in rows}


def clear_keys(runtime: Runtime) -> None:
    with runtime.database.transaction() as session:
        session.execute(delete(t.ReconcileKey))


def counts(runtime: Runtime) -> dict[str, int]:
    """Row counts of every directory-side table (to prove a rejected request changed nothing)."""
    tables = [t.User, t.Group, t.Membership, t.Event, t.EventTarget, t.ReconcileKey, t.ApiToken]
    with runtime.database.read() as session:
        return {
            table.__tablename__: int(
                session.execute(select(func.count()).select_from(table)).scalar_one()
            )
            for table in tables
        }


def event_types(runtime: Runtime, target_id: str | None = None) -> list[str]:
    query = select(t.Event.event_type).order_by(t.Event.id)
    if target_id is not None:
        query = query.join(t.EventTarget, t.EventTarget.event_id == t.Event.id).where(
            t.EventTarget.target_id == target_id
        )
    with runtime.database.read() as session:
        return list(session.execute(query).scalars())


def user_row(runtime: Runtime, user_id: str) -> t.User | None:
    with runtime.database.read() as session:
        row = session.get(t.User, user_id)
        if row is not None:
            session.expunge(row)
        return row


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement run inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = runtime.database.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def link_targets(response: Any) -> dict[str, str]:
    """``rel`` to URL for every ``Link`` header of a response."""
    links = {}
    for header in response.headers.get_list("link"):
        url, _, rel = header.partition(";")
        links[rel.split("=")[1].strip('"')] = url.strip().strip("<>")
    return links
