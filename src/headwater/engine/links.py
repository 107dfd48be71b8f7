"""The recorded links between users and their downstream accounts (``AppUserLink``), for one
app's batch: read in one query, changed in memory, written by the transaction's flush (one
batched INSERT for new links, batched UPDATEs for changed ones)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.domain.states import LinkState, SyncState

__all__ = ["Links"]


class Links:
    def __init__(self, session: Session, app_id: str, rows: dict[str, t.AppUserLink]) -> None:
        self._session = session
        self._app_id = app_id
        self._rows = rows

    @classmethod
    def load(cls, session: Session, app_id: str, user_ids: Iterable[str]) -> Links:
        wanted = sorted(set(user_ids))
        rows: dict[str, t.AppUserLink] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(t.AppUserLink).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.user_id.in_(chunk)
            )
            rows.update((row.user_id, row) for row in session.execute(query).scalars())
        return cls(session, app_id, rows)

    def get(self, user_id: str) -> t.AppUserLink | None:
        return self._rows.get(user_id)

    def upsert(self, user_id: str, **values: Any) -> t.AppUserLink:
        """Create the link if needed and set ``values``; a state change stamps
        ``status_changed``."""
        link = self._rows.get(user_id)
        now = clock.utcnow()
        if link is None:
            link = t.AppUserLink(
                app_id=self._app_id,
                user_id=user_id,
                state=LinkState.NONE,
                sync_state=SyncState.SYNCING,
                created=now,
                last_updated=now,
            )
            self._session.add(link)
            self._rows[user_id] = link
        if "state" in values and values["state"] != link.state:
            link.status_changed = now
            if values["state"] != LinkState.DEPROVISIONING:
                link.deprovision_started = None
        for name, value in values.items():
            setattr(link, name, value)
        link.last_updated = now
        return link
