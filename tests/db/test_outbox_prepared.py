"""The everyday enqueues (a user's change, a membership's) run statements built once per
dialect and bound at execution: each call must enqueue its own user's and group's keys, never
the values of the call that built the statement, and a key already queued must still get a new
generation and keep the earlier due time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from headwater import clock
from headwater.db import outbox
from headwater.db import tables as t
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_users,
    push_group,
    queued,
    queued_keys,
)


def test_each_call_enqueues_its_own_keys(runtime: Runtime) -> None:
    first, second, outsider = create_users(runtime, 3)
    group = create_group(runtime, "Engineering", [first, second])
    app = create_app(runtime)
    assign_group(runtime, app, group)
    mapping = push_group(runtime, app, group)
    user, push = KeyKind.USER.value, KeyKind.PUSH.value
    clear_keys(runtime)

    with runtime.database.transaction() as session:
        outbox.enqueue_user(session, first)
    assert queued_keys(runtime) == {(app, user, first), (app, push, mapping)}

    clear_keys(runtime)
    with runtime.database.transaction() as session:
        outbox.enqueue_user(session, outsider)  # in no group, assigned nowhere
    assert queued_keys(runtime) == set()

    with runtime.database.transaction() as session:
        outbox.enqueue_membership_change(session, group, [second])
    assert queued_keys(runtime) == {(app, user, second), (app, push, mapping)}

    clear_keys(runtime)
    other = create_group(runtime, "Sales")
    with runtime.database.transaction() as session:
        outbox.enqueue_membership_change(session, other, [first, second])
        outbox.enqueue_push_for_group(session, other)
    assert queued_keys(runtime) == set(), "a group that assigns and pushes nothing enqueues nothing"


def test_a_queued_key_gets_a_new_generation_and_keeps_its_earlier_due_time(
    runtime: Runtime,
) -> None:
    (member,) = create_users(runtime, 1)
    group = create_group(runtime, "Engineering", [member])
    app = create_app(runtime)
    assign_group(runtime, app, group)
    key = (app, KeyKind.USER.value, member)
    clear_keys(runtime)
    with runtime.database.transaction() as session:
        outbox.enqueue_keys(session, [key], observe=True, delay=3600)
    with runtime.database.transaction() as session:
        outbox.enqueue_user(session, member)
    (waiting,) = queued(runtime)
    assert (waiting.app_id, waiting.kind, waiting.subject_id) == key
    assert waiting.observe, "observe is kept, not reset"
    with runtime.database.read() as session:
        generation, due = session.execute(
            select(t.ReconcileKey.generation, t.ReconcileKey.not_before)
        ).one()
    assert generation == 2
    assert clock.as_utc(due) <= clock.utcnow() + timedelta(seconds=1), "due now, not in an hour"
