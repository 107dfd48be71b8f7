"""Rows held by the mass-change guard are stored, on SQLite and PostgreSQL: approving one applies
it as an import with confirm would (the person deactivated, their apps enqueued), rejecting one
leaves the person as they are; a decided hold cannot be decided again, and one that no longer
applies to the person is refused with nothing written. Over the API: listing, paging, bulk
decisions, Okta's errors and roles."""

from __future__ import annotations

from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.csv_import import MatchKey
from headwater.domain.settings import ProvisioningSettings
from headwater.errors import Conflict, InvalidRequest, NotFound
from headwater.runtime import Runtime
from headwater.services import csv_import
from headwater.services.csv_import import Options, Summary
from headwater.testing.toolkit import (
    api_client,
    api_token,
    assert_okta_error,
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_users,
    events,
    queued_subjects,
    row_counts,
)

GUARD = ProvisioningSettings(mass_change_threshold=0.2, mass_change_minimum=5)
CSV = {"Content-Type": "text/csv"}


def leaving(first: int, last: int) -> bytes:
    rows = [f"p{n}@example.com,DEPROVISIONED" for n in range(first, last + 1)]
    return ("\n".join(["login,status", *rows]) + "\n").encode()


def held_import(runtime: Runtime, data: bytes, **options: object) -> Summary:
    return csv_import.import_users(
        runtime.database,
        SYSTEM,
        data,
        Options(guard=GUARD, source="HR", **options),  # type: ignore[arg-type]
    )


def statuses(runtime: Runtime) -> dict[str, str]:
    with runtime.database.read() as session:
        return dict(session.execute(select(t.User.login, t.User.status)).all())


def test_held_rows_are_stored_and_approved_or_rejected(runtime: Runtime) -> None:
    ids = create_users(runtime, 20, prefix="p", digits=1, start=1)
    everyone = create_group(runtime, "Everyone", ids)
    app = create_app(runtime)
    assign_group(runtime, app, everyone)
    clear_keys(runtime)
    summary = held_import(runtime, leaving(1, 10), batch_size=4)
    assert (summary.held, summary.updated) == (10, 0)
    assert [item.line for item in summary.held_rows] == list(range(2, 12))
    hold_ids = [item.id for item in summary.held_rows]
    assert all(hold_ids) and len(set(hold_ids)) == 10
    assert summary.as_json()["heldRows"][0]["id"] == hold_ids[0]
    assert len(events(runtime, "system.import.hold")) == 10
    pending = csv_import.list_holds(runtime.database, None, 100)
    assert [hold.id for hold in pending] == hold_ids
    first = pending[0]
    assert (first.key, first.source, first.match, first.user_id) == (
        "p1@example.com",
        "HR",
        "login",
        ids[0],
    )
    assert first.row == {
        "attributes": {"login": "p1@example.com"},
        "groups": [],
        "status": ("DEPROVISIONED"),
    }
    assert queued_subjects(runtime, app) == set()  # holding wrote nothing else

    approved = csv_import.decide_hold(runtime.database, SYSTEM, first.id, True)
    assert approved.decision == "APPROVED" and approved.decided_at is not None
    assert statuses(runtime)["p1@example.com"] == "DEPROVISIONED"
    assert queued_subjects(runtime, app) == {ids[0]}
    (event,) = events(runtime, "system.import.hold.approve")
    assert event.actor["displayName"] == "HR" and event.debug["holdId"] == first.id
    assert events(runtime, "user.lifecycle.deactivate", target_id=ids[0])

    before = row_counts(runtime)
    for approve in (True, False):
        try:
            csv_import.decide_hold(runtime.database, SYSTEM, first.id, approve)
        except Conflict as exc:
            assert "APPROVED" in exc.summary
        else:
            raise AssertionError("a decided hold was decided again")
    assert row_counts(runtime) == before

    rejected = csv_import.decide_hold(runtime.database, SYSTEM, hold_ids[1] or "", False)
    assert rejected.decision == "REJECTED"
    assert statuses(runtime)["p2@example.com"] == "PROVISIONED"
    assert queued_subjects(runtime, app) == {ids[0]}
    assert len(events(runtime, "system.import.hold.reject")) == 1
    assert len(csv_import.list_holds(runtime.database, "HELD", 100)) == 8
    assert len(csv_import.list_holds(runtime.database, "REJECTED", 100)) == 1
    try:
        csv_import.decide_hold(runtime.database, SYSTEM, "imhNoSuchHold", True)
    except NotFound:
        pass
    else:
        raise AssertionError("an unknown hold was decided")


def test_a_hold_that_no_longer_applies_is_refused_and_stays_held(runtime: Runtime) -> None:
    create_users(runtime, 20, prefix="p", digits=1, start=1)
    summary = held_import(runtime, leaving(1, 10))
    hold_id = summary.held_rows[0].id or ""
    renamed = b"email,login\np1@example.com,renamed@example.com\n"
    assert held_import(runtime, renamed, match=MatchKey.EMAIL).updated == 1
    before = row_counts(runtime)
    try:
        csv_import.decide_hold(runtime.database, SYSTEM, hold_id, True)
    except InvalidRequest as exc:
        assert "no longer applies" in exc.summary
        assert "login 'p1@example.com' no longer matches" in exc.causes[0]
    else:
        raise AssertionError("a stale hold was applied")
    assert row_counts(runtime) == before
    assert statuses(runtime)["renamed@example.com"] == "PROVISIONED"
    assert csv_import.list_holds(runtime.database, None, 1)[0].id == hold_id
    # It can still be rejected.
    assert csv_import.decide_hold(runtime.database, SYSTEM, hold_id, False).decision == "REJECTED"


def test_a_dry_run_and_a_confirmed_import_store_no_holds(runtime: Runtime) -> None:
    create_users(runtime, 20, prefix="p", digits=1, start=1)
    dry = held_import(runtime, leaving(1, 10), dry_run=True)
    assert dry.held == 10 and not any(item.id for item in dry.held_rows)
    confirmed = held_import(runtime, leaving(1, 10), confirm=True)
    assert (confirmed.held, confirmed.updated) == (0, 10)
    assert csv_import.list_holds(runtime.database, None, 100) == []


def test_holds_over_the_api(runtime: Runtime) -> None:
    create_users(runtime, 12, prefix="p", digits=1, start=1)
    reader = api_token(runtime, "reader", role="READ_ONLY_ADMIN")
    with api_client(runtime) as client:
        posted = client.post("/api/v1/imports/users?source=HR", content=leaving(1, 11), headers=CSV)
        assert posted.status_code == 200, posted.text
        held = [row["id"] for row in posted.json()["heldRows"]]
        assert len(held) == 11 and all(held)

        page = client.get("/api/v1/imports/holds?limit=5")
        assert page.status_code == 200, page.text
        assert [row["id"] for row in page.json()] == held[:5]
        assert 'rel="next"' in page.headers["link"]
        one = page.json()[0]
        assert (one["status"], one["key"], one["source"], one["line"]) == (
            "HELD",
            "p1@example.com",
            "HR",
            2,
        )
        assert one["_links"]["approve"]["href"].endswith(
            f"/imports/holds/{held[0]}/lifecycle/approve"
        )

        approved = client.post(f"/api/v1/imports/holds/{held[0]}/lifecycle/approve")
        assert approved.status_code == 200, approved.text
        assert (
            approved.json()["status"] == "APPROVED" and "approve" not in approved.json()["_links"]
        )
        again = client.post(f"/api/v1/imports/holds/{held[0]}/lifecycle/approve")
        assert_okta_error(again, 409, "E0000195")
        rejected = client.post(f"/api/v1/imports/holds/{held[1]}/lifecycle/reject")
        assert rejected.json()["status"] == "REJECTED"
        assert client.get(f"/api/v1/imports/holds/{held[1]}").json()["status"] == "REJECTED"
        assert_okta_error(
            client.post("/api/v1/imports/holds/nope/lifecycle/approve"), 404, "E0000007"
        )
        assert_okta_error(client.get("/api/v1/imports/holds/" + "x" * 300), 404, "E0000007")
        assert_okta_error(client.get("/api/v1/imports/holds?status=MAYBE"), 400, "E0000001")

        bulk = client.post(
            "/api/v1/imports/holds/lifecycle/approve", json={"ids": [held[2], held[0], "nope"]}
        )
        assert bulk.status_code == 200, bulk.text
        assert bulk.json()["decided"] == [held[2]]
        assert [(f["id"], f["errorCode"]) for f in bulk.json()["failed"]] == [
            (held[0], "E0000195"),
            ("nope", "E0000007"),
        ]
        assert_okta_error(
            client.post("/api/v1/imports/holds/lifecycle/reject", json={"ids": []}), 400, "E0000001"
        )
        approved_list = client.get("/api/v1/imports/holds?status=APPROVED").json()
        assert {row["id"] for row in approved_list} == {held[0], held[2]}
        assert len(client.get("/api/v1/imports/holds").json()) == 8

    statuses_now = statuses(runtime)
    assert [statuses_now[f"p{n}@example.com"] for n in (1, 2, 3)] == [
        "DEPROVISIONED",
        "PROVISIONED",
        "DEPROVISIONED",
    ]
    with api_client(runtime, reader) as client:
        assert client.get("/api/v1/imports/holds").status_code == 200
        refused = client.post(f"/api/v1/imports/holds/{held[3]}/lifecycle/approve")
        assert refused.status_code == 403
        assert (
            client.post(
                "/api/v1/imports/holds/lifecycle/reject", json={"ids": [held[3]]}
            ).status_code
            == 403
        )
    assert statuses(runtime)["p4@example.com"] == "PROVISIONED"
