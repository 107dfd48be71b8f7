"""Quarantine: an app that cannot be used (credentials, address, outage) has its work held and
is probed at growing intervals instead of being hammered; the first probe that passes releases
every key of the app."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from headwater import clock
from headwater.connectors.scrub import scrub_text
from headwater.db import leases, outbox
from headwater.db import tables as t
from headwater.engine import trail
from headwater.engine.snapshot import AppSnapshot

__all__ = ["PROBE_FIRST", "PROBE_MAX", "enter", "hold", "leave", "next_interval"]

#: Probe intervals grow from this to ``PROBE_MAX`` seconds.
PROBE_FIRST = 5.0
PROBE_MAX = 900.0


def next_interval(app: AppSnapshot) -> float:
    return min(PROBE_MAX, max(PROBE_FIRST, app.probe_interval * 2))


def hold(session: Session, keys: Sequence[leases.ClaimedKey], delay: float) -> None:
    """Put keys back, due after ``delay`` seconds, without counting an attempt."""
    for key in keys:
        leases.retry_later(session, key, delay, count_attempt=False)


def enter(
    session: Session, app: AppSnapshot, keys: Sequence[leases.ClaimedKey], reason: str
) -> None:
    """Quarantine the app (or extend it) and hold ``keys`` until the next probe."""
    reason = scrub_text(reason, limit=1000)
    interval = next_interval(app)
    now = clock.utcnow()
    row = session.get(t.App, app.id)
    if row is None:
        return
    first = row.quarantined_since is None
    row.quarantined_since = row.quarantined_since or now
    row.quarantine_reason = reason[:1000]
    row.probe_interval = interval
    row.next_probe = now + timedelta(seconds=interval)
    hold(session, keys, interval)
    if first:
        trail.app_event(
            session,
            app,
            "app.headwater.quarantine.start",
            f"Provisioning to {app.label} is paused: {reason}",
            outcome="FAILURE",
            reason=reason[:1000],
        )


def leave(session: Session, app: AppSnapshot) -> None:
    """The app answers again: lift the quarantine and reconcile everything it held."""
    row = session.get(t.App, app.id)
    if row is None or row.quarantined_since is None:
        return
    row.quarantined_since = None
    row.quarantine_reason = None
    row.next_probe = None
    row.probe_interval = 0.0
    trail.app_event(
        session,
        app,
        "app.headwater.quarantine.end",
        f"Provisioning to {app.label} resumed: the app answers again",
    )
    outbox.enqueue_app(session, app.id)
