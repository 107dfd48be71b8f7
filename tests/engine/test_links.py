"""Links made in a batch are written as the rows an ORM object each would have written: the
same columns, and ``last_pushed`` SQL NULL when never given but JSON ``null`` when given as
None. A link already recorded is changed in place. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from headwater import clock
from headwater.db import tables as t
from headwater.domain.states import LinkState, SyncState
from headwater.engine.links import Links, NewLink
from headwater.runtime import Runtime
from headwater.testing.toolkit import create_scim_app, create_users

_COLUMNS = (
    "external_id, user_name, state, sync_state, last_error, last_pushed IS NULL, "
    "last_sync IS NULL, status_changed IS NULL, deprovision_started IS NULL"
)


def _rows(runtime: Runtime, app_id: str) -> dict[str, tuple[Any, ...]]:
    with runtime.database.read() as session:
        result = session.execute(
            text(f"SELECT user_id, {_COLUMNS} FROM app_user_links WHERE app_id = :app"),
            {"app": app_id},
        )
        return {row[0]: tuple(row[1:]) for row in result}


def test_new_links_are_the_rows_orm_objects_write(runtime: Runtime) -> None:
    made, failed, orm_made, orm_failed = create_users(runtime, 4)
    app_id = create_scim_app(runtime, "http://scim.test/scim/v2", enabled=False)
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        # The rows as an ORM object each wrote them: a new account's (``last_pushed`` given as
        # None, which is JSON null), and a failure's before any account (never given).
        session.add(
            t.AppUserLink(
                app_id=app_id,
                user_id=orm_made,
                state=LinkState.ACTIVE,
                sync_state=SyncState.SYNCHRONIZED,
                created=now,
                last_updated=now,
                external_id="ext-1",
                user_name="made",
                status_changed=now,
                deprovision_started=None,
                last_pushed=None,
                last_sync=now,
                last_error=None,
            )
        )
        session.add(
            t.AppUserLink(
                app_id=app_id,
                user_id=orm_failed,
                state=LinkState.NONE,
                sync_state=SyncState.ERROR,
                created=now,
                last_updated=now,
                last_error="refused",
            )
        )
    with runtime.database.transaction() as session:
        links = Links.load(session, app_id, [made, failed])
        link = links.upsert(
            made,
            external_id="ext-1",
            user_name="made",
            state=LinkState.ACTIVE,
            last_pushed=None,
            sync_state=SyncState.SYNCHRONIZED,
            last_sync=now,
            last_error=None,
        )
        assert isinstance(link, NewLink)
        links.upsert(failed, sync_state=SyncState.ERROR, last_error="refused")
        links.write()
    rows = _rows(runtime, app_id)
    assert rows[made][:2] == ("ext-1", "made")
    assert rows[made][2:] == rows[orm_made][2:]
    assert rows[failed] == rows[orm_failed]
    assert rows[made][5] is not None and not rows[made][5]  # JSON null, not SQL NULL
    assert rows[failed][5]  # never given: SQL NULL


def test_a_recorded_link_is_changed_in_place(runtime: Runtime) -> None:
    (user,) = create_users(runtime, 1)
    app_id = create_scim_app(runtime, "http://scim.test/scim/v2", enabled=False)
    with runtime.database.transaction() as session:
        links = Links.load(session, app_id, [user])
        links.upsert(user, external_id="ext-9", state=LinkState.ACTIVE, last_pushed={"a": 1})
        links.write()
    with runtime.database.transaction() as session:
        links = Links.load(session, app_id, [user])
        link = links.get(user)
        assert isinstance(link, t.AppUserLink)
        links.upsert(user, sync_state=SyncState.OUT_OF_SYNC, last_error="later")
        links.write()
    with runtime.database.read() as session:
        row = session.get(t.AppUserLink, (app_id, user))
        assert row is not None
        assert (row.external_id, row.state, row.sync_state, row.last_error) == (
            "ext-9",
            LinkState.ACTIVE,
            SyncState.OUT_OF_SYNC,
            "later",
        )
        assert row.last_pushed == {"a": 1}
