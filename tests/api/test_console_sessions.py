"""Console sessions live on the server: a copied cookie stops working after sign-out, after the
admin's password changes, after the admin is removed, after 30 idle minutes and 8 hours after
sign-in (both settings, bounded). Time is moved with the toolkit's ``MovableClock``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from headwater.config import Settings
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import admins
from headwater.testing.toolkit import (
    ADMIN,
    MovableClock,
    console_client,
    console_csrf,
    console_sign_in,
    count_rows,
    create_admin,
    event_types,
)


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    create_admin(runtime)
    return create_app(runtime, start_worker=False)


@pytest.fixture
def victim(app: FastAPI) -> Iterator[TestClient]:
    """The admin, signed in."""
    with console_client(app) as client:
        assert console_sign_in(client).status_code == 303
        assert client.get("/console/people").status_code == 200
        yield client


def stolen(app: FastAPI, victim: TestClient) -> TestClient:
    """Another browser holding a copy of the victim's cookie."""
    thief = TestClient(app, client=("203.0.113.9", 4444), follow_redirects=False)
    for cookie in victim.cookies.jar:
        thief.cookies.set(cookie.name, cookie.value or "", domain=cookie.domain, path=cookie.path)
    return thief


def signed_in(client: TestClient) -> bool:
    response = client.get("/console/people")
    if response.status_code == 303:
        assert response.headers["location"].startswith("/console/login")
        return False
    assert response.status_code == 200, response.text[:300]
    return True


def test_the_cookie_holds_no_identity_and_the_table_no_secret(
    runtime: Runtime, victim: TestClient
) -> None:
    cookie = victim.cookies["hw_console"]
    with runtime.database.read() as session:
        (stored,) = session.execute(select(t.ConsoleSession.id)).scalars()
        admin_id = session.execute(select(t.Admin.id)).scalar_one()
    assert admin_id not in cookie and ADMIN not in cookie
    assert stored not in cookie  # the stored value is a hash of what the cookie carries
    assert len(stored) == 64


def test_a_stolen_cookie_stops_working_after_sign_out(
    app: FastAPI, runtime: Runtime, victim: TestClient
) -> None:
    with stolen(app, victim) as thief:
        assert signed_in(thief)
        csrf = console_csrf(victim)
        assert victim.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
        assert not signed_in(victim)
        assert not signed_in(thief)
    assert count_rows(runtime, t.ConsoleSession) == 0


def test_a_stolen_cookie_stops_working_after_a_password_change(
    app: FastAPI, runtime: Runtime, victim: TestClient
) -> None:
    with stolen(app, victim) as thief:
        assert signed_in(thief)
        with runtime.database.transaction() as session:
            admins.set_password(session, ADMIN, "another-long-password")
        assert not signed_in(thief)
        assert not signed_in(victim)
        assert console_sign_in(thief, ADMIN, "another-long-password").status_code == 303
        assert signed_in(thief)
    assert "user.account.update_password" in event_types(runtime)


def test_a_stolen_cookie_stops_working_when_the_admin_is_removed(
    app: FastAPI, runtime: Runtime, victim: TestClient
) -> None:
    with stolen(app, victim) as thief:
        with runtime.database.transaction() as session:
            admins.delete_admin(session, ADMIN)
        assert not signed_in(thief)
    assert count_rows(runtime, t.ConsoleSession) == 0


def test_idle_sessions_end(app: FastAPI, victim: TestClient) -> None:
    with stolen(app, victim) as thief, MovableClock() as clock:
        for _ in range(4):  # active: every 20 minutes, for 80 minutes
            clock.advance(timedelta(minutes=20))
            assert signed_in(victim)
        clock.advance(timedelta(minutes=29))
        assert signed_in(thief)
        clock.advance(timedelta(minutes=31))
        assert not signed_in(thief)
        assert not signed_in(victim)


def test_sessions_end_at_their_lifetime_however_active(app: FastAPI, victim: TestClient) -> None:
    with stolen(app, victim) as thief, MovableClock() as clock:
        for _ in range(7 * 4 + 3):  # 7 h 45 min, a request every 15 minutes
            clock.advance(timedelta(minutes=15))
            assert signed_in(thief)
        clock.advance(timedelta(minutes=14))
        assert signed_in(thief)
        clock.advance(timedelta(minutes=2))
        assert not signed_in(thief)
        assert not signed_in(victim)


def test_timeouts_are_settings(runtime: Runtime) -> None:
    runtime.settings.console_idle_minutes = 5
    runtime.settings.console_session_hours = 1
    create_admin(runtime)
    app = create_app(runtime, start_worker=False)
    with console_client(app) as client, MovableClock() as clock:
        assert console_sign_in(client).status_code == 303
        clock.advance(timedelta(minutes=4))
        assert signed_in(client)
        clock.advance(timedelta(minutes=6))
        assert not signed_in(client)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("console_idle_minutes", 0),
        ("console_idle_minutes", 1441),
        ("console_session_hours", 0),
        ("console_session_hours", 169),
    ],
)
def test_timeout_settings_are_bounded(name: str, value: int) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({name: value})


def test_each_sign_in_has_its_own_session(
    app: FastAPI, runtime: Runtime, victim: TestClient
) -> None:
    with console_client(app, address="198.51.100.7") as other:
        assert console_sign_in(other).status_code == 303
        assert other.cookies["hw_console"] != victim.cookies["hw_console"]
        csrf = console_csrf(other)
        assert other.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
    assert signed_in(victim)
    assert count_rows(runtime, t.ConsoleSession) == 1
    assert event_types(runtime, "user.session.start") == ["user.session.start"] * 2
