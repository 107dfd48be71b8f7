"""The engine's trail: a system log event (Okta's event types) for every downstream change or
failure, written in the transaction that records it, and one operational log line per key.

Log lines carry ids, operation names and fates only: never profile data or credentials.
Failure texts are scrubbed once more before they become events (the connector scrubbed them
already).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.connectors.scrub import scrub_text
from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Target
from headwater.db.rowsets import any_of
from headwater.domain.fate import ErrorClass, Fate, Finish, Quarantine, RequeueAfter, Retry, Task
from headwater.domain.states import KeyKind
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import Outcome

__all__ = [
    "UserLabels",
    "account_event",
    "app_event",
    "app_target",
    "failure_event",
    "load_labels",
    "log_outcome",
    "push_event",
]

log = logging.getLogger("headwater.engine.outcomes")

#: user id → (login, display name), loaded once per batch for event targets.
UserLabels = dict[str, tuple[str, str]]

#: The event Okta logs when each kind of account operation fails.
_ACCOUNT_FAILURE_EVENTS = {
    "CreateAccount": "application.provision.user.push",
    "UpdateAccount": "application.provision.user.push_profile",
    "SetActive": "application.provision.user.deactivate",
    "DeleteAccount": "application.provision.user.delete",
    "RemoveMembers": "application.provision.group_membership.remove",
}


def load_labels(session: Session, user_ids: list[str]) -> UserLabels:
    if not user_ids:
        return {}
    rows = session.execute(
        select(t.User.id, t.User.login, t.User.profile).where(any_of(t.User.id, user_ids))
    )
    labels = {}
    for row in rows:
        profile = row.profile or {}
        name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p)
        labels[row.id] = (row.login, name or row.login)
    return labels


def app_target(app: AppSnapshot) -> Target:
    return Target(app.id, "AppInstance", app.name, app.label)


def _user_target(user_id: str, labels: UserLabels) -> Target:
    login, name = labels.get(user_id, (user_id, user_id))
    return Target(user_id, "User", login, name)


def account_event(
    session: Session,
    app: AppSnapshot,
    user_id: str,
    labels: UserLabels,
    event_type: str,
    message: str,
    *,
    outcome: str = "SUCCESS",
    reason: str | None = None,
    buffer: events.Buffer | None = None,
) -> None:
    """One event about a user's account in ``app``; held in ``buffer`` when given (a batch
    writes its events together)."""
    targets = [_user_target(user_id, labels), app_target(app)]
    if buffer is not None:
        buffer.add(
            event_type, message, actor=SYSTEM, targets=targets, outcome=outcome, reason=reason
        )
        return
    events.record(
        session, event_type, message, actor=SYSTEM, targets=targets, outcome=outcome, reason=reason
    )


def push_event(
    session: Session,
    app: AppSnapshot,
    mapping_id: str,
    event_type: str,
    message: str,
    *,
    outcome: str = "SUCCESS",
    reason: str | None = None,
    debug: dict[str, Any] | None = None,
) -> None:
    events.record(
        session,
        event_type,
        message,
        actor=SYSTEM,
        targets=[Target(mapping_id, "GroupPushMapping", mapping_id, mapping_id), app_target(app)],
        outcome=outcome,
        reason=reason,
        debug=debug,
    )


def app_event(
    session: Session,
    app: AppSnapshot,
    event_type: str,
    message: str,
    *,
    outcome: str = "SUCCESS",
    reason: str | None = None,
    debug: dict[str, Any] | None = None,
) -> None:
    events.record(
        session,
        event_type,
        message,
        actor=SYSTEM,
        targets=[app_target(app)],
        outcome=outcome,
        reason=reason,
        debug=debug,
    )


def failure_event(
    session: Session, app: AppSnapshot, outcome: Outcome, labels: UserLabels, message: str
) -> None:
    """Okta's event for the operation that failed (or the plan, when nothing was sent)."""
    message = scrub_text(message, limit=1000)
    name = type(outcome.failed).__name__ if outcome.failed is not None else "Plan"
    text = f"{name} failed in {app.label}: {message}"
    if outcome.key.kind is KeyKind.USER:
        event_type = _ACCOUNT_FAILURE_EVENTS.get(name, "application.provision.user.sync")
        account_event(
            session,
            app,
            outcome.key.subject_id,
            labels,
            event_type,
            text,
            outcome="FAILURE",
            reason=message[:1000],
        )
        return
    prefix = "application.provision.group_push.mapping.update.or.delete.failed"
    push_event(
        session,
        app,
        outcome.key.subject_id,
        prefix if outcome.error_class is ErrorClass.TRANSIENT else prefix + ".with.error",
        text,
        outcome="FAILURE",
        reason=message[:1000],
    )


def _fate_name(fate: Fate) -> str:
    match fate:
        case Finish():
            return "finish"
        case RequeueAfter():
            return "requeue"
        case Retry():
            return "retry"
        case Task():
            return "task"
        case Quarantine():
            return "quarantine"


def log_outcome(reconcile_id: str, outcome: Outcome, fate: Fate) -> None:
    """One line per key: what was sent, what failed, and what happens next."""
    level = logging.WARNING if isinstance(fate, Task | Quarantine) else logging.INFO
    if not log.isEnabledFor(level):
        return
    key = outcome.key
    sent = [type(op).__name__ for op, _ in outcome.done]
    failed = type(outcome.failed).__name__ if outcome.failed is not None else None
    delay = fate.delay if isinstance(fate, Retry) else None
    if isinstance(fate, RequeueAfter):
        delay = fate.seconds
    log.log(
        level,
        "%s key %s/%s/%s: sent %s%s → %s",
        reconcile_id,
        key.app_id,
        key.kind.value,
        key.subject_id,
        ",".join(sent) or "nothing",
        f", {failed} failed ({outcome.error_class})" if failed else "",
        _fate_name(fate),
        extra={
            "reconcile_id": reconcile_id,
            "app_id": key.app_id,
            "key_kind": key.kind.value,
            "subject_id": key.subject_id,
            "operations": sent,
            "failed_operation": failed,
            "error_class": outcome.error_class.value if outcome.error_class else None,
            "fate": _fate_name(fate),
            "delay": delay,
            "attempt": key.attempts + (1 if isinstance(fate, Retry | Task) else 0),
        },
    )
