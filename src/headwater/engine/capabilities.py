"""What the engine learns of an app's capabilities while provisioning it, written back.

Three refusals, each stored with the app so later batches do not ask again (a connection test
reads the app afresh; an admin setting can overrule each):

* a 501 answer to a PATCH (RFC 7644 §3.12, "operation not supported"), once a PUT has done the
  same change: every later request goes straight to PUT (``patchSupport``);
* a 400 answer to a look-up of several userNames joined by ``or``: accounts are looked up one
  by one (``lookupBatchSize``);
* a 501, 404 or 405 answer to ``POST /Bulk``: writes go one request each (``bulkSupport``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import tables as t
from headwater.domain.capabilities import Capabilities
from headwater.engine import trail
from headwater.engine.snapshot import AppSnapshot

__all__ = ["BULK", "OR_FILTER", "PATCH", "patch_refused", "refused"]

PATCH = "patch"
OR_FILTER = "or-filter"
BULK = "bulk"

_MESSAGES = {
    PATCH: "answered 501 to a PATCH: changes go by PUT from now on",
    OR_FILTER: "refused a look-up of several userNames joined by or: accounts are looked up "
    "one by one from now on",
    BULK: "refused a Bulk request: writes go one request each from now on",
}


def patch_refused(session: Session, app: AppSnapshot) -> None:
    refused(session, app, [PATCH])


def refused(session: Session, app: AppSnapshot, what: Sequence[str]) -> None:
    """Store each refusal seen (once) and say so in the System Log."""
    row = session.get(t.App, app.id)
    if row is None:
        return
    caps = Capabilities.from_json(row.capabilities)
    now = clock.utcnow()
    for name in what:
        if name == PATCH and caps.patch_refused_at is None:
            caps = caps.patch_refused(now)
        elif name == OR_FILTER and caps.or_filter_refused_at is None:
            caps = caps.or_filter_refused(now)
        elif name == BULK and caps.bulk_refused_at is None:
            caps = caps.bulk_refused(now)
        else:
            continue
        trail.app_event(
            session,
            app,
            "app.headwater.capabilities.update",
            f"{app.label} {_MESSAGES[name]}",
        )
    row.capabilities = caps.to_json()
