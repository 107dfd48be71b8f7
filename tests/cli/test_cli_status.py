"""``headwater status``: database (password masked), schema, queue, quarantine, tasks, workers
and held operations; plus the token commands."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from headwater import clock, ids
from headwater.commands.common import mask_url
from headwater.db import outbox
from headwater.db import tables as t
from headwater.domain.states import KeyKind
from headwater.runtime import Runtime
from headwater.services import tokens
from headwater.testing.toolkit import Cli, create_app, create_group, create_users


def seed_engine_state(runtime: Runtime) -> dict[str, str]:
    """Two apps: Payroll with queued keys, a task and a held deprovision; Wiki quarantined.
    One live worker and one that stopped answering.

    The directory and the apps come from the services; the rest is what the engine records
    (keys waiting or backing off, a Task, held operations, quarantine, heartbeats), which no
    service writes, so it is written directly.
    """
    staff = create_group(runtime, "Staff")
    users = create_users(runtime, 4, prefix="person", domain="status.example", group_ids=[staff])
    payroll_id, wiki_id = create_app(runtime, "Payroll"), create_app(runtime, "Wiki")
    now = clock.utcnow()
    with runtime.database.transaction() as session:
        payroll = session.get(t.App, payroll_id)
        wiki = session.get(t.App, wiki_id)
        assert payroll is not None and wiki is not None
        outbox.enqueue_users_for_apps(session, payroll.id, users[:3])
        outbox.enqueue_keys(session, [(payroll.id, KeyKind.USER, users[3])], delay=3600)
        wiki.quarantined_since = now - timedelta(minutes=5)
        wiki.quarantine_reason = "GET /Users: credentials rejected (HTTP 401)"
        wiki.next_probe = now + timedelta(minutes=1)
        session.add(
            t.Task(
                id=ids.new_id("tsk"),
                app_id=payroll.id,
                kind=KeyKind.USER,
                subject_id=users[0],
                operation="CREATE_ACCOUNT",
                message="userName: already taken",
                attempts=1,
                first_attempt=now,
                last_attempt=now,
            )
        )
        for user_id in users[1:3]:
            session.add(
                t.HeldOperation(
                    app_id=payroll.id,
                    user_id=user_id,
                    operation="DEPROVISION",
                    decision="HELD",
                    created=now,
                )
            )
        session.add(t.WorkerHeartbeat(id="host:1:live", started=now, last_seen=now))
        stale = now - timedelta(minutes=5)
        session.add(t.WorkerHeartbeat(id="host:2:gone", started=stale, last_seen=stale))
        return {"payroll": payroll.id, "wiki": wiki.id}


def tables(out: str) -> dict[str, list[list[str]]]:
    """Rows of each titled table in ``status`` output, as lists of cells."""
    found: dict[str, list[list[str]]] = {}
    title = ""
    for line in out.splitlines():
        if line and not line.startswith(("┏", "┃", "┡", "│", "└")):
            title = line.strip()
        elif line.startswith("│"):
            found.setdefault(title, []).append([c.strip() for c in line.split("│")[1:-1]])
    return found


def test_status_tables(cli: Cli, runtime: Runtime, cli_env: dict[str, str | None]) -> None:
    seed_engine_state(runtime)
    out = cli.ok("status")
    assert out.startswith(f"Database: {cli_env['HEADWATER_DATABASE_URL']}\n")
    assert "Schema revision: 0005_mappings (up to date)" in out
    found = tables(out)
    assert found["Pending keys"] == [["Payroll", "4", "3", "0"]]
    ((label, since, reason, probe),) = found["Quarantined apps"]
    assert (label, reason) == ("Wiki", "GET /Users: credentials rejected (HTTP 401)")
    assert since.endswith(" UTC") and probe.endswith(" UTC")
    ((label, count, _, latest),) = found["Open tasks"]
    assert (label, count, latest) == ("Payroll", "1", "userName: already taken")
    assert [row[0] for row in found["Live workers"]] == ["host:1:live"]
    assert found["Held operations"] == [["Payroll", "2"]]


def test_status_json(cli: Cli, runtime: Runtime) -> None:
    apps = seed_engine_state(runtime)
    data = json.loads(cli.ok("status", "--json"))
    assert data["schema"] == {"current": "0005_mappings", "head": "0005_mappings", "upToDate": True}
    assert data["pendingKeys"] == [
        {"appId": apps["payroll"], "label": "Payroll", "pending": 4, "dueNow": 3, "inProgress": 0}
    ]
    assert [q["label"] for q in data["quarantinedApps"]] == ["Wiki"]
    assert data["openTasks"][0]["open"] == 1
    assert [w["id"] for w in data["liveWorkers"]] == ["host:1:live"]
    assert data["heldOperations"] == [{"appId": apps["payroll"], "label": "Payroll", "held": 2}]


def test_status_of_an_empty_database(cli: Cli) -> None:
    result = cli("status")
    assert result.exit_code == 1
    assert "Schema revision: none" in result.stdout
    assert result.stderr.startswith("error: the database has no Headwater schema yet")
    assert json.loads(cli("status", "--json").stdout)["schema"]["current"] is None


def test_status_never_prints_a_database_password(cli: Cli) -> None:
    url = "postgresql+psycopg://headwater:s3cret-pw@127.0.0.1:1/headwater"
    assert mask_url(url) == "postgresql+psycopg://headwater:***@127.0.0.1:1/headwater"
    result = cli("status", env={"HEADWATER_DATABASE_URL": url})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database error: ")
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_token_create_list_revoke(cli: Cli, runtime: Runtime) -> None:
    created = cli("token", "create", "--name", "ops", "--role", "SUPER_ADMIN")
    assert created.exit_code == 0
    token = created.stdout.strip().splitlines()[-1]
    assert created.stdout.endswith(token + "\n") and len(token) > 30
    assert "Created token 00T" in created.stderr and token not in created.stderr
    with runtime.database.transaction() as session:
        assert tokens.authenticate(session, token).name == "ops"

    listed = cli.ok("token", "list")
    assert "ops" in listed and token[:6] + "…" in listed
    assert token not in listed

    assert cli.ok("token", "revoke", "ops").startswith("Revoked 00T")
    assert "ops" not in cli.ok("token", "list")
    with runtime.database.read() as session:
        assert session.execute(select(t.ApiToken)).first() is None
    unknown = cli("token", "revoke", "ops")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: no token with id or name 'ops'\n"


def test_every_command_has_help(cli: Cli) -> None:
    commands = [
        ("users", "list"), ("users", "create"), ("users", "activate"), ("users", "deactivate"),
        ("groups", "list"), ("groups", "create"), ("groups", "add"), ("groups", "remove"),
        ("apps", "list"), ("apps", "create"), ("assign",), ("unassign",), ("push",),
        ("reconcile",), ("plan",), ("status",), ("token", "create"), ("serve",),
    ]  # fmt: skip
    for command in commands:
        result = cli(*command, "--help")
        assert result.exit_code == 0, command
        assert "Usage: headwater " + " ".join(command) in result.stdout
