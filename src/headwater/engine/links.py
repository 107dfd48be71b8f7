"""The recorded link between a user and their downstream account (``AppUserLink``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.domain.states import LinkState, SyncState

__all__ = ["upsert"]


def upsert(session: Session, app_id: str, user_id: str, **values: Any) -> t.AppUserLink:
    """Create the link if needed and set ``values``; a state change stamps ``status_changed``."""
    link = session.get(t.AppUserLink, (app_id, user_id))
    now = clock.utcnow()
    if link is None:
        link = t.AppUserLink(
            app_id=app_id,
            user_id=user_id,
            state=LinkState.NONE,
            sync_state=SyncState.SYNCING,
            created=now,
            last_updated=now,
        )
        session.add(link)
    if "state" in values and values["state"] != link.state:
        link.status_changed = now
    for name, value in values.items():
        setattr(link, name, value)
    link.last_updated = now
    return link
