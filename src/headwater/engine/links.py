"""The recorded links between users and their downstream accounts (``AppUserLink``), for one
app's batch: read in one query, changed in memory, written by :meth:`Links.write`.

Links that already exist are the session's ORM rows (their changes are flushed with the
transaction). Links made in this batch (a batch of creates: one per account) are plain
:class:`NewLink` records, inserted by one ``executemany`` of a constant statement: an ORM
object each, and its unit-of-work flush, cost more than the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import insert, null, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.db.rowsets import any_of
from headwater.domain.states import LinkState, SyncState

__all__ = ["Link", "Links", "NewLink"]

#: One statement for every batch's new links (compiled once, then taken from the cache).
_INSERT = insert(t.AppUserLink)


@dataclass(slots=True)
class NewLink:
    """A link made in this batch, not yet written: the columns of ``AppUserLink``."""

    app_id: str
    user_id: str
    state: str
    sync_state: str
    created: datetime
    last_updated: datetime
    external_id: str | None = None
    user_name: str | None = None
    last_pushed: dict[str, Any] | None = None
    last_sync: datetime | None = None
    last_error: str | None = None
    status_changed: datetime | None = None
    deprovision_started: datetime | None = None
    #: ``last_pushed`` was given (None then means JSON ``null``, as the ORM writes it; never
    #: given, the column is SQL NULL).
    pushed_given: bool = False

    def row(self) -> dict[str, Any]:
        """The row to insert: every field but ``pushed_given``, which only decides between
        JSON ``null`` and SQL NULL for ``last_pushed``."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pushed_given"}
        if not self.pushed_given and self.last_pushed is None:
            row["last_pushed"] = null()
        return row


Link = t.AppUserLink | NewLink


class Links:
    def __init__(self, session: Session, app_id: str, rows: dict[str, t.AppUserLink]) -> None:
        self._session = session
        self._app_id = app_id
        self._rows: dict[str, Link] = dict(rows)
        self._new: list[NewLink] = []
        self._written = False

    @classmethod
    def load(cls, session: Session, app_id: str, user_ids: Iterable[str]) -> Links:
        wanted = sorted(set(user_ids))
        rows: dict[str, t.AppUserLink] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(t.AppUserLink).where(
                t.AppUserLink.app_id == app_id, any_of(t.AppUserLink.user_id, chunk)
            )
            rows.update((row.user_id, row) for row in session.execute(query).scalars())
        return cls(session, app_id, rows)

    def get(self, user_id: str) -> Link | None:
        return self._rows.get(user_id)

    def upsert(self, user_id: str, **values: Any) -> Link:
        """Create the link if needed and set ``values``; a state change stamps
        ``status_changed``."""
        link = self._rows.get(user_id)
        now = clock.utcnow()
        assert not (self._written and (link is None or isinstance(link, NewLink))), (
            "a new link changed after the batch's links were written"
        )
        if link is None:
            link = NewLink(
                app_id=self._app_id,
                user_id=user_id,
                state=LinkState.NONE,
                sync_state=SyncState.SYNCING,
                created=now,
                last_updated=now,
            )
            self._new.append(link)
            self._rows[user_id] = link
        if "state" in values and values["state"] != link.state:
            link.status_changed = now
            if values["state"] != LinkState.DEPROVISIONING:
                link.deprovision_started = None
        for name, value in values.items():
            setattr(link, name, value)
        if isinstance(link, NewLink) and "last_pushed" in values:
            link.pushed_given = True
        link.last_updated = now
        return link

    def write(self) -> None:
        """Insert the links made in this batch (after their last change: later statements of
        the transaction read them); the changed ORM rows are flushed with the session."""
        self._written = True
        if self._new:
            self._session.connection().execute(_INSERT, [link.row() for link in self._new])
