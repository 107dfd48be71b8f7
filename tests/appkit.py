"""Helpers for the apps API tests: directory rows written straight to the database (the users
and groups routes are tested on their own), the outbox read back, SQL statements counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, event, select

from headwater import clock, ids
from headwater.db import tables as t
from headwater.runtime import Runtime


def add_user(runtime: Runtime, login: str, status: str = "ACTIVE", **profile: Any) -> str:
    now = clock.utcnow()
    user_id = ids.new_id("00u")
    full = {"login": login, "email": login, "firstName": "Test", "lastName": login, **profile}
    with runtime.database.transaction() as session:
        session.add(
            t.User(
                id=user_id,
                status=status,
                login=login,
                login_lower=login.lower(),
                email_lower=login.lower(),
                profile=full,
                created=now,
                last_updated=now,
            )
        )
    return user_id


def add_group(runtime: Runtime, name: str, members: list[str] | None = None) -> str:
    now = clock.utcnow()
    group_id = ids.new_id("00g")
    with runtime.database.transaction() as session:
        session.add(
            t.Group(
                id=group_id,
                type="OKTA_GROUP",
                name=name,
                name_lower=name.lower(),
                name_scope="okta",
                profile={"name": name},
                created=now,
                last_updated=now,
            )
        )
        session.flush()
        for user_id in members or []:
            session.add(t.Membership(group_id=group_id, user_id=user_id, created=now))
    return group_id


def add_link(runtime: Runtime, app_id: str, user_id: str, **values: Any) -> None:
    """A recorded downstream account, as the engine would write it."""
    now = clock.utcnow()
    row = {"external_id": None, "state": "NONE", "sync_state": "SYNCING", **values}
    with runtime.database.transaction() as session:
        session.add(
            t.AppUserLink(app_id=app_id, user_id=user_id, created=now, last_updated=now, **row)
        )


def create_app(client: TestClient, label: str = "Wiki", **extra: Any) -> dict[str, Any]:
    body = {
        "name": "bookmark",
        "label": label,
        "signOnMode": "BOOKMARK",
        "settings": {"app": {"url": "https://wiki.example.com"}},
        **extra,
    }
    response = client.post("/api/v1/apps", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def user_keys(runtime: Runtime, app_id: str) -> set[str]:
    """Subjects of the (app, user) keys waiting in the outbox."""
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.ReconcileKey.subject_id).where(
                t.ReconcileKey.app_id == app_id, t.ReconcileKey.kind == "user"
            )
        ).scalars()
        return set(rows)


def clear_keys(runtime: Runtime) -> None:
    with runtime.database.transaction() as session:
        session.execute(delete(t.ReconcileKey))


def event_rows(runtime: Runtime, prefix: str = "") -> list[t.Event]:
    """Events in publication order, detached from their session."""
    with runtime.database.read() as session:
        rows = list(
            session.execute(
                select(t.Event).where(t.Event.event_type.startswith(prefix)).order_by(t.Event.id)
            ).scalars()
        )
        session.expunge_all()
        return rows


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement the engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = runtime.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def error_code(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/json")
    code: str = response.json()["errorCode"]
    return code
