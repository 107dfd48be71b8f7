"""The plan is a value: ``GET /apps/{id}/plan`` shows exactly the operations the next reconcile
sends for the same state, mass-change holds and intents included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.domain import operations as ops
from headwater.engine import reconciler
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    add_member,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    push_group,
    remove_member,
    rename_group,
    run_async,
    unassign_group,
    update_user,
)


def one_pass(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[ops.Operation]:
    """Every operation one reconcile pass over the queued keys sends, in one batch."""
    sent: list[ops.Operation] = []
    real = reconciler.execute  # type: ignore[attr-defined]

    async def spy(operation: ops.Operation, *args: Any) -> Any:
        sent.append(operation)
        return await real(operation, *args)

    monkeypatch.setattr(reconciler, "execute", spy)

    async def step() -> int:
        worker = runtime.worker()
        try:
            return await worker.step()
        finally:
            await worker.aclose()

    assert run_async(step) < runtime.settings.worker_batch_size, "one batch must hold all"
    monkeypatch.setattr(reconciler, "execute", real)
    return sent


def canonical(described: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in described)


def test_the_plan_shown_is_the_plan_sent(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    payroll_scim = InProcessScim("payroll.test").serve(runtime)
    wiki_scim = InProcessScim("wiki.test").serve(runtime)
    people = [create_user(runtime, f"person{n}@example.com", title="Clerk") for n in range(6)]
    staff = create_group(runtime, "Staff", people[:5])
    pushed = create_group(runtime, "Pushed", people[:2])
    extra = create_group(runtime, "Extra")
    payroll = create_scim_app(runtime, payroll_scim.base_url, "Payroll")
    wiki = create_scim_app(
        runtime, wiki_scim.base_url, "Wiki", mass_change_threshold=0.2, mass_change_minimum=2
    )
    for app_id in (payroll, wiki):
        assign_group(runtime, app_id, staff, priority=0)
    assign_group(runtime, wiki, extra, priority=1)
    push_group(runtime, payroll, pushed)
    converge(runtime)

    # A mixed change: a profile update, a new member, a leaver who is pushed, a membership
    # added and one removed, a renamed pushed group; and in the guarded app, an unassignment
    # that takes every account (held) beside one new account.
    update_user(runtime, people[4], title="Manager")
    add_member(runtime, staff, people[5])
    add_member(runtime, extra, people[5])
    remove_member(runtime, staff, people[1])
    add_member(runtime, pushed, people[2])
    remove_member(runtime, pushed, people[0])
    rename_group(runtime, pushed, "Pushed Staff")
    unassign_group(runtime, wiki, staff)

    shown = ok(client.get(f"/api/v1/apps/{payroll}/plan"))["operations"]
    wiki_ops = ok(client.get(f"/api/v1/apps/{wiki}/plan"))["operations"]
    kinds = {item["op"] for item in shown}
    assert {
        "UPDATE_ACCOUNT",
        "CREATE_ACCOUNT",
        "DEACTIVATE_ACCOUNT",
        "ADD_MEMBERS",
        "REMOVE_MEMBERS",
        "RENAME_GROUP",
    } <= kinds, shown
    assert [item["op"] for item in wiki_ops] == ["CREATE_ACCOUNT"], "the guard's holds show"

    sent = one_pass(runtime, monkeypatch)
    assert canonical([ops.describe(op) for op in sent]) == canonical(shown + wiki_ops)
    assert len(ok(client.get(f"/api/v1/apps/{wiki}/held-operations"))) == 5
