"""``headwater reconcile``: 2,000 accounts provisioned into a real scim2-server with a live
progress bar; ``--no-progress``; exit status 1 when a permanent failure opens a Task."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from headwater import clock
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    Cli,
    ScimReader,
    create_app,
    create_group,
    create_scim_app,
    create_users,
    plain,
    update_settings,
)

#: What makes Rich draw its live display as on a terminal, 120 columns wide.
TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"}
SUMMARY = re.compile(
    r"Reconciled (?P<app>.+): (?P<done>\d+)/(?P<total>\d+) keys done, (?P<requests>\d+) "
    r"requests, (?P<errors>\d+) errors, (?P<tasks>\d+) tasks opened, in [\d.]+ s\.$"
)


def people(runtime: Runtime, group: str, count: int, domain: str) -> None:
    """A group of ``count`` people, ``person00000@<domain>``..."""
    create_users(
        runtime, count, prefix="person", domain=domain, group_ids=[create_group(runtime, group)]
    )


def summary(stdout: str) -> dict[str, str]:
    last = stdout.strip().splitlines()[-1]
    match = SUMMARY.match(last)
    assert match is not None, stdout
    return match.groupdict()


def downstream_count(downstream: ScimServerProcess, domain: str) -> int:
    """Accounts of people in ``domain`` on the (session-wide) downstream."""
    scim = ScimReader(downstream.base_url, token=downstream.bearer_token)
    return sum(u["userName"].endswith(f"@{domain}") for u in scim.users())


@pytest.mark.slow
def test_reconcile_800_users_with_live_progress(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    people(runtime, "Everyone", 800, "bulk.example")
    create_scim_app(runtime, downstream.base_url, "Bulk App", token=downstream.bearer_token)
    assert "(800 members)" in cli.ok("assign", "Bulk App", "Everyone")

    result = cli("reconcile", "Bulk App", env=TERMINAL)

    assert result.exit_code == 0, result.stderr
    numbers = summary(result.stdout)
    assert (numbers["app"], numbers["done"], numbers["total"]) == ("Bulk App", "800", "800")
    assert int(numbers["requests"]) >= 800
    assert (numbers["errors"], numbers["tasks"]) == ("0", "0")
    drawn = plain(result.stderr)
    assert "800/800 keys" in drawn and "100%" in drawn
    assert re.search(r"\b[1-9]\d?%", drawn), "no intermediate percentage was drawn"
    assert re.search(r"\b\d+ requests\b", drawn) and "0 errors" in drawn
    assert downstream_count(downstream, "bulk.example") == 800
    with runtime.database.read() as session:
        assert session.execute(select(func.count()).select_from(t.ReconcileKey)).scalar() == 0
        workers = session.execute(select(func.count()).select_from(t.WorkerHeartbeat)).scalar()
        assert workers == 0  # the in-process worker signed off


def test_no_progress_prints_only_the_summary(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    people(runtime, "Few", 5, "few.example")
    create_scim_app(runtime, downstream.base_url, "Few App", token=downstream.bearer_token)
    cli.ok("assign", "Few App", "Few")

    result = cli("reconcile", "Few App", "--no-progress", env=TERMINAL)

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    assert summary(result.stdout)["done"] == "5"
    # Again, in sync: a full reconcile reads the accounts back from one listing of the app
    # (decision 40: one page instead of five reads by id) and changes nothing.
    again = summary(cli.ok("reconcile", "Few App", "--no-progress"))
    assert (again["done"], again["requests"], again["tasks"]) == ("5", "1", "0")


def test_permanent_failures_exit_with_1(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    people(runtime, "Broken", 3, "broken.example")
    app_id = create_scim_app(
        runtime, downstream.base_url, "Broken App", token=downstream.bearer_token
    )
    update_settings(runtime, app_id, user_name_template="${source.nickName}")  # empty for all
    cli.ok("assign", "Broken App", "Broken")

    result = cli("reconcile", "Broken App", "--no-progress")

    assert result.exit_code == 1
    assert summary(result.stdout)["tasks"] == "3"
    assert "3 operation(s) failed permanently" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Failing again still counts: the same Tasks are attempted once more.
    assert cli("reconcile", "Broken App", "--no-progress").exit_code == 1


def test_unknown_app(cli: Cli) -> None:
    result = cli("reconcile", "Nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no app with id, label or name 'Nope'"
    assert result.stdout == ""


def test_quarantined_app_stops_with_1(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    people(runtime, "Held", 2, "held.example")
    app_id = create_scim_app(
        runtime, downstream.base_url, "Held App", token=downstream.bearer_token
    )
    cli.ok("assign", "Held App", "Held")
    now = clock.utcnow()
    # Quarantine as the engine records it (engine state: no service quarantines an app).
    with runtime.database.transaction() as session:
        app = session.get(t.App, app_id)
        assert app is not None
        app.quarantined_since = now
        app.quarantine_reason = "GET /Users: timed out"
        app.next_probe = now + timedelta(minutes=10)

    result = cli("reconcile", "Held App", "--no-progress")

    assert result.exit_code == 1
    assert summary(result.stdout)["done"] == "0"
    assert result.stderr.startswith(
        "Stopped: the app is quarantined (GET /Users: timed out); next probe "
    )


def test_app_without_connection_sends_nothing(cli: Cli, runtime: Runtime) -> None:
    people(runtime, "Bookmarks", 2, "bookmark.example")
    create_app(runtime, "Intranet")
    cli.ok("assign", "Intranet", "Bookmarks")

    result = cli("reconcile", "Intranet", "--no-progress")

    assert result.exit_code == 0
    assert result.stderr == (
        "note: Intranet has no enabled provisioning connection; "
        "its keys are finished without sending anything.\n"
    )
    numbers = summary(result.stdout)
    assert (numbers["done"], numbers["total"], numbers["requests"]) == ("2", "2", "0")
