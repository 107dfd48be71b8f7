"""CSV imports of people and groups through the service, on SQLite and PostgreSQL: good rows
written with their events and keys, bad rows reported by line (and nothing of them written),
dry runs, matching, groups, and deactivations held above the mass-change threshold."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.csv_import import MatchKey
from headwater.domain.settings import ProvisioningSettings
from headwater.errors import InvalidRequest
from headwater.runtime import Runtime
from headwater.services import csv_import
from headwater.services.csv_import import Options, Summary
from headwater.testing.toolkit import (
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_user,
    create_users,
    events,
    members,
    queued_subjects,
    row_counts,
)

HEADER = "login,email,firstName,lastName,department,employeeNumber,groups,status"


def person(n: int, **overrides: str) -> str:
    cells = {
        "login": f"p{n}@example.com",
        "email": f"p{n}@example.com",
        "firstName": f"First{n}",
        "lastName": f"Last{n}",
        "department": "Eng",
        "employeeNumber": f"E{n}",
        "groups": "",
        "status": "",
    }
    cells.update(overrides)
    return ",".join(cells[name] for name in HEADER.split(","))


def run(runtime: Runtime, text: str | bytes, **options: object) -> Summary:
    data = text.encode() if isinstance(text, str) else text
    return csv_import.import_users(runtime.database, SYSTEM, data, Options(**options))  # type: ignore[arg-type]


def users_by_login(runtime: Runtime) -> dict[str, t.User]:
    with runtime.database.read() as session:
        found = {u.login: u for u in session.execute(select(t.User)).scalars()}
        session.expunge_all()
    return found


def test_a_good_file_creates_people_with_groups_events_and_keys(runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    ops = create_group(runtime, "Ops")
    app = create_app(runtime)
    assign_group(runtime, app, eng)
    clear_keys(runtime)
    text = "\n".join(
        [HEADER, person(1, groups="Engineering;Ops"), person(2, groups="ops"), person(3)]
    )
    summary = run(runtime, text, batch_size=2)
    assert (summary.created, summary.updated, summary.rejected) == (3, 0, 0)
    users = users_by_login(runtime)
    p1, p2 = users["p1@example.com"], users["p2@example.com"]
    assert p1.profile["department"] == "Eng" and p1.profile["employeeNumber"] == "E1"
    assert p1.status == "PROVISIONED"
    assert members(runtime, eng) == {p1.id}
    assert members(runtime, ops) == {p1.id, p2.id}
    # Joining a group assigned to an app enqueued the key, in the same transaction.
    assert queued_subjects(runtime, app) == {p1.id}
    kinds = [e.event_type for e in events(runtime, target_id=p1.id)]
    assert kinds.count("group.user_membership.add") == 2
    assert "user.lifecycle.create" in kinds and "user.lifecycle.activate" in kinds
    # The batch's events read back as the ORM writes them: JSON documents, the time.
    added = next(e for e in events(runtime, target_id=eng) if e.targets[0]["id"] == p1.id)
    assert added.actor == SYSTEM.as_json() and added.debug == {}
    assert [target["id"] for target in added.targets] == [p1.id, eng]
    assert added.targets[0]["alternateId"] == "p1@example.com"
    assert isinstance(added.published, datetime) and len(added.uuid) == 36
    again = run(runtime, text)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_bad_rows_of_every_kind_are_reported_by_line_and_good_rows_imported(
    runtime: Runtime,
) -> None:
    create_group(runtime, "Engineering")
    lines = [
        "login,email,firstName,lastName,groups,startYear:integer",
        "good1@example.com,good1@example.com,Good,One,Engineering,2020",  # 2
        "bad@example.com,bad@example.com,Bad,Year,,next year",  # 3 wrong type
        "good1@example.com,other@example.com,Dup,Login,,",  # 4 duplicate login
        "ghost@example.com,ghost@example.com,Gho,St,Nowhere,",  # 5 unknown group
        "short@example.com,short@example.com,,Short,,",  # 6 missing required value
        "mail@example.com,not-an-email,Bad,Mail,,",  # 7 bad email
        "cells@example.com,cells@example.com,Too,Few",  # 8 wrong width
        "good2@example.com,good2@example.com,Good,Two,,2021",  # 9
    ]
    data = ("\n".join(lines) + "\n").encode()
    data += "broken@example.com,broken@example.com,Br\xf6ken,X,,\n".encode("latin-1")  # 10
    data += b"good3@example.com,good3@example.com,Good,Three,,\n"  # 11
    summary = run(runtime, data)
    assert (summary.created, summary.rejected) == (3, 7)
    reasons = {item.line: item.reason for item in summary.rejections}
    assert reasons[3] == "startYear: 'next year' is not an integer"
    assert reasons[4] == "login 'good1@example.com' appears twice (first on line 2)"
    assert reasons[5] == "unknown group 'Nowhere'"
    assert reasons[6].startswith("firstName:")
    assert reasons[7].startswith("email: Does not match required pattern")
    assert reasons[8] == "4 cells where the header has 6 columns"
    assert reasons[10].startswith("not valid UTF-8 (byte 0xf6")
    logins = set(users_by_login(runtime))
    assert logins == {"good1@example.com", "good2@example.com", "good3@example.com"}
    assert users_by_login(runtime)["good2@example.com"].profile["startYear"] == 2021


def test_missing_required_columns_reject_new_people_but_update_existing_ones(
    runtime: Runtime,
) -> None:
    create_user(runtime, "known@example.com")
    text = "login,title\nknown@example.com,Boss\nnew@example.com,Intern\n"
    summary = run(runtime, text)
    assert (summary.updated, summary.rejected) == (1, 1)
    assert summary.rejections[0].line == 3
    assert summary.rejections[0].reason == (
        "missing required columns for a new person: email, firstName, lastName"
    )
    assert users_by_login(runtime)["known@example.com"].profile["title"] == "Boss"


def test_an_unusable_header_writes_nothing(runtime: Runtime) -> None:
    before = row_counts(runtime)
    with pytest.raises(InvalidRequest):
        run(runtime, "email,firstName\nx@example.com,X\n")
    assert row_counts(runtime) == before


def test_a_dry_run_writes_nothing_and_reports_the_same(runtime: Runtime) -> None:
    create_group(runtime, "Ops")
    create_user(runtime, "p1@example.com")
    text = "\n".join(
        [HEADER, person(1, department="Sales"), person(2, groups="Ops"), person(3, groups="Nope")]
    )
    before = row_counts(runtime)
    dry = run(runtime, text, dry_run=True)
    assert row_counts(runtime) == before
    real = run(runtime, text)
    assert (dry.created, dry.updated, dry.unchanged, dry.rejected) == (1, 1, 0, 1)
    assert (real.created, real.updated, real.unchanged, real.rejected) == (1, 1, 0, 1)
    assert dry.rejections == real.rejections


@pytest.mark.parametrize("match", list(MatchKey))
def test_matching_by_each_key(runtime: Runtime, match: MatchKey) -> None:
    create_users(runtime, 1, prefix="p", digits=1, start=1)
    with runtime.database.transaction() as session:
        user = session.execute(select(t.User)).scalar_one()
        user.profile = {**user.profile, "employeeNumber": "E1"}
    # The row changes every attribute but the match key.
    cells = {
        MatchKey.LOGIN: person(1, email="new@example.com", employeeNumber="E9"),
        MatchKey.EMAIL: person(1, login="renamed@example.com", employeeNumber="E9"),
        MatchKey.EMPLOYEE_NUMBER: person(1, login="renamed@example.com", email="new@example.com"),
    }[match]
    summary = run(runtime, f"{HEADER}\n{cells}\n", match=match)
    assert (summary.created, summary.updated, summary.rejected) == (0, 1, 0), summary
    (only,) = users_by_login(runtime).values()
    assert only.id == user.id
    assert only.profile["firstName"] == "First1"


def test_an_email_two_people_share_is_ambiguous(runtime: Runtime) -> None:
    create_user(runtime, "a@example.com", email="same@example.com")
    create_user(runtime, "b@example.com", email="same@example.com")
    summary = run(runtime, "login,email\nc@example.com,same@example.com\n", match=MatchKey.EMAIL)
    assert summary.rejections[0].reason == "2 people have email 'same@example.com'"


def test_a_login_of_someone_else_is_refused(runtime: Runtime) -> None:
    create_user(runtime, "taken@example.com", email="one@example.com")
    text = "login,email,firstName,lastName\ntaken@example.com,two@example.com,T,W\n"
    summary = run(runtime, text, match=MatchKey.EMAIL)
    assert summary.rejections[0].reason == "login 'taken@example.com' belongs to another person"


def test_source_is_the_actor_of_the_events(runtime: Runtime) -> None:
    actor = csv_import.import_actor(SYSTEM, "HR")
    csv_import.import_users(runtime.database, actor, f"{HEADER}\n{person(1)}\n".encode())
    created = events(runtime, "user.lifecycle.create")
    assert created[0].actor["displayName"] == "HR"
    assert events(runtime, "system.import.complete")[0].debug["created"] == 1


def test_statuses_move_people_through_the_lifecycle(runtime: Runtime) -> None:
    ids = create_users(runtime, 3, prefix="p", digits=1, start=1)
    text = "\n".join(
        [
            HEADER,
            person(1, status="SUSPENDED"),
            person(2, status="DEPROVISIONED"),
            person(4, status="STAGED"),
        ]
    )
    # One person going is under the guard's minimum: nothing is held.
    summary = run(runtime, text)
    assert (summary.updated, summary.created, summary.held) == (1, 1, 0)
    # Okta suspends only ACTIVE people (these have no password: PROVISIONED).
    assert summary.rejections[0].line == 2
    assert summary.rejections[0].reason == (
        "status: a PROVISIONED person cannot become SUSPENDED by an import"
    )
    users = users_by_login(runtime)
    assert users["p1@example.com"].status == "PROVISIONED"
    assert users["p2@example.com"].status == "DEPROVISIONED"
    assert users["p4@example.com"].status == "STAGED"
    assert events(runtime, "user.lifecycle.deactivate", target_id=ids[1])


def test_mass_deactivation_is_held_until_confirmed(runtime: Runtime) -> None:
    create_users(runtime, 20, prefix="p", digits=1, start=1)
    gone = [person(n, status="DEPROVISIONED") for n in range(1, 11)]
    text = "\n".join([HEADER, *gone, person(1, department="Sales").replace("p1@", "new@")]) + "\n"
    guard = ProvisioningSettings(mass_change_threshold=0.2, mass_change_minimum=5)
    held = run(runtime, text, guard=guard)
    assert (held.held, held.created) == (10, 1)
    assert held.held_reason and "--confirm" in held.held_reason
    assert [item.line for item in held.held_rows] == list(range(2, 12))
    assert all(u.status == "PROVISIONED" for u in users_by_login(runtime).values())
    confirmed = run(runtime, text, guard=guard, confirm=True)
    assert (confirmed.held, confirmed.updated) == (0, 10)
    statuses = [u.status for u in users_by_login(runtime).values()]
    assert statuses.count("DEPROVISIONED") == 10


def test_import_groups_creates_updates_and_reports(runtime: Runtime) -> None:
    create_group(runtime, "Ops", description="old")
    text = "name,description\nEng,Builders\nOps,new\nops,twice\n,blank\n"
    dry = csv_import.import_groups(runtime.database, SYSTEM, text.encode(), dry_run=True)
    summary = csv_import.import_groups(runtime.database, SYSTEM, text.encode())
    for result in (dry, summary):
        assert (result.created, result.updated, result.rejected) == (1, 1, 2)
    assert {r.line for r in summary.rejections} == {4, 5}
    with runtime.database.read() as session:
        found = {g.name: g.description for g in session.execute(select(t.Group)).scalars()}
    assert found["Ops"] == "new" and found["Eng"] == "Builders"


def test_a_file_path_is_read_as_well_as_bytes(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"{HEADER}\n{person(1)}\n")
    assert run(runtime, path.read_bytes()).created == 1
    assert csv_import.import_users(runtime.database, SYSTEM, path).unchanged == 1


def test_an_update_enqueues_the_apps_the_person_reaches(runtime: Runtime) -> None:
    user = create_user(runtime, "p1@example.com", last="Smith")
    group = create_group(runtime, "Engineering", [user])
    app = create_app(runtime)
    assign_group(runtime, app, group)
    clear_keys(runtime)
    unchanged = run(runtime, "login,lastName\np1@example.com,Smith\n")
    assert unchanged.unchanged == 1
    assert queued_subjects(runtime, app) == set()  # nothing changed, nothing enqueued
    summary = run(runtime, "login,department\np1@example.com,Research\n")
    assert summary.updated == 1
    assert queued_subjects(runtime, app) == {user}
    (event,) = events(runtime, "user.account.update_profile", target_id=user)
    assert event.debug["changedAttributes"] == "department"
