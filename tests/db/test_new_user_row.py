"""A new user is written with one Core INSERT and then attached to the session as if read back
(``directory._insert_new_user``): the object a create returns must behave like a loaded one,
on both databases. Reading it costs no SQL, a change to it in the same transaction is written,
and a login already taken is Okta's 400 with nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.errors import InvalidRequest
from headwater.runtime import Runtime
from headwater.services import directory


def _profile(login: str) -> dict[str, Any]:
    return {"login": login, "email": login, "firstName": "Ann", "lastName": "Lee"}


@contextmanager
def _statements(runtime: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(runtime.database.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", note)


def test_the_created_user_is_loaded_and_its_changes_are_written(runtime: Runtime) -> None:
    with runtime.database.transaction() as session:
        user = directory.create_user(session, SYSTEM, _profile("Ann@Example.com"))
        assert inspect(user).persistent
        assert user not in session.dirty
        with _statements(runtime) as seen:
            read = (user.id, user.login_lower, user.profile["lastName"], user.created)
            assert user.source_id is None and user.source_document is None
        assert seen == [], "reading the new user went back to the database"
        assert read[1] == "ann@example.com"
        user.profile = {**user.profile, "title": "Engineer"}
        user.source_document = {"userName": "ann"}
    with runtime.database.read() as session:
        stored = session.get(t.User, user.id)
        assert stored is not None
        assert stored.profile["title"] == "Engineer"
        assert stored.source_document == {"userName": "ann"}
        assert stored.created == user.created.replace(tzinfo=stored.created.tzinfo)


def test_a_taken_login_is_refused_and_nothing_is_written(runtime: Runtime) -> None:
    with runtime.database.transaction() as session:
        directory.create_user(session, SYSTEM, _profile("ann@example.com"))
    with (
        pytest.raises(InvalidRequest) as refused,
        runtime.database.transaction() as session,
    ):
        directory.create_user(session, SYSTEM, _profile("bob@example.com"))
        directory.create_user(session, SYSTEM, _profile("ANN@example.com"))
    assert refused.value.causes == [directory.LOGIN_TAKEN]
    with runtime.database.read() as session:
        logins = session.execute(select(t.User.login_lower)).scalars().all()
        events = session.execute(select(func.count()).select_from(t.Event)).scalar()
    assert logins == ["ann@example.com"], "the refused transaction kept a user"
    assert events == 2, "only the first create's events are kept"
