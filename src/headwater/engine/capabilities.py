"""What the engine learns of an app's capabilities while provisioning it, written back.

Today one thing: a 501 answer to a PATCH (RFC 7644 §3.12, "operation not supported") means the
app does not take PATCH; once a PUT has done the same change, that is stored with the app so
every later request goes straight to PUT (an admin setting, ``patchSupport``, can overrule it).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.domain.capabilities import Capabilities
from headwater.engine import trail
from headwater.engine.snapshot import AppSnapshot

__all__ = ["patch_refused"]


def patch_refused(session: Session, app: AppSnapshot) -> None:
    row = session.get(t.App, app.id)
    if row is None:
        return
    before = Capabilities.from_json(row.capabilities)
    if before.patch_refused_at is not None:
        return
    row.capabilities = before.patch_refused(clock.utcnow()).to_json()
    trail.app_event(
        session,
        app,
        "app.headwater.capabilities.update",
        f"{app.label} answered 501 to a PATCH: changes go by PUT from now on",
    )
