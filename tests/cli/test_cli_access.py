"""``headwater token`` and ``headwater admin``: roles and scopes, expiry, and passwords that
never travel on the command line (a prompt or ``$HEADWATER_ADMIN_PASSWORD``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from headwater import clock
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.services import admins, tokens
from headwater.testing.toolkit import Cli, create_app, create_group

PASSWORD = "correct-horse-battery"


def token_row(runtime: Runtime, name: str) -> t.ApiToken:
    with runtime.database.read() as session:
        (row,) = [row for row in tokens.list_tokens(session) if row.name == name]
        session.expunge(row)
    return row


def test_token_create_with_a_role_a_scope_and_an_expiry(cli: Cli, runtime: Runtime) -> None:
    wiki = create_app(runtime, "Wiki")
    payroll = create_app(runtime, "Payroll")
    args = ("--role", "app_admin", "--app", wiki, "--app", payroll, "--expires-in", "90d")
    created = cli("token", "create", "--name", "deploy", *args)
    assert created.exit_code == 0, created.stderr
    token = created.stdout.strip()
    assert "APP_ADMIN" in created.stderr and token not in created.stderr
    row = token_row(runtime, "deploy")
    assert (row.role, sorted(row.app_ids), row.group_ids) == (
        "APP_ADMIN",
        sorted([wiki, payroll]),
        [],
    )
    assert row.expires_at is not None
    lifetime = clock.as_utc(row.expires_at) - clock.utcnow()
    assert timedelta(days=89) < lifetime <= timedelta(days=90)
    listed = cli.ok("token", "list")
    assert "APP_ADMIN (apps:" in listed and wiki in listed


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--role", "OWNER"), "role: must be one of SUPER_ADMIN, APP_ADMIN"),
        (("--role", "APP_ADMIN"), "apps: a APP_ADMIN needs at least one"),
        (("--role", "APP_ADMIN", "--app", "0oaNope"), "apps: no such id 0oaNope"),
        (("--role", "SUPER_ADMIN", "--group", "00gX"), "groups: a SUPER_ADMIN is not limited"),
        (
            ("--role", "SUPER_ADMIN", "--expires-in", "soon"),
            "expires-in: a number of days or hours",
        ),
        (("--role", "SUPER_ADMIN", "--expires-in", "0h"), "expires-in: from 1h to 3650d"),
        (("--role", "SUPER_ADMIN", "--expires-in", "4000d"), "expires-in: from 1h to 3650d"),
    ],
)
def test_token_create_refuses_bad_roles_and_lifetimes(
    cli: Cli, runtime: Runtime, args: tuple[str, ...], error: str
) -> None:
    result = cli("token", "create", "--name", "bad", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: " + error), result.stderr
    assert result.stdout == ""
    with runtime.database.read() as session:
        assert tokens.list_tokens(session) == []


def test_token_create_needs_a_role(cli: Cli) -> None:
    result = cli("token", "create", "--name", "ops")
    assert result.exit_code == 2
    assert "--role" in result.stderr


def test_admin_create_reads_the_password_from_the_environment(cli: Cli, runtime: Runtime) -> None:
    helpdesk = create_group(runtime, "Helpdesk")
    result = cli(
        "admin", "create", "--username", "alex", "--role", "GROUP_MEMBERSHIP_ADMIN",
        "--group", helpdesk,
        env={"HEADWATER_ADMIN_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Created admin alex (GROUP_MEMBERSHIP_ADMIN)\n"
    assert PASSWORD not in result.stdout + result.stderr
    with runtime.database.read() as session:
        found = admins.candidate(session, "alex")
        assert found is not None
        assert admins.verify(found.password_hash, PASSWORD)
    assert "GROUP_MEMBERSHIP_ADMIN (groups: " + helpdesk in cli.ok("admin", "list")


def test_admin_create_prompts_twice_for_the_password(cli: Cli, runtime: Runtime) -> None:
    result = cli(
        "admin", "create", "--username", "admin", "--role", "SUPER_ADMIN",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Password:" in result.stdout and PASSWORD not in result.stdout
    with runtime.database.read() as session:
        assert admins.candidate(session, "admin") is not None


def test_admin_passwords_are_never_taken_from_argv(cli: Cli, runtime: Runtime) -> None:
    result = cli(
        "admin", "create", "--username", "admin", "--role", "SUPER_ADMIN",
        "--password", PASSWORD,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "No such option: --password" in result.stderr
    with runtime.database.read() as session:
        assert admins.list_admins(session) == []


def test_admin_password_and_delete(cli: Cli, runtime: Runtime) -> None:
    env = {"HEADWATER_ADMIN_PASSWORD": PASSWORD}
    cli("admin", "create", "--username", "sam", "--role", "READ_ONLY_ADMIN", env=env)
    changed = cli("admin", "password", "sam", env={"HEADWATER_ADMIN_PASSWORD": "a-new-password"})
    assert changed.exit_code == 0, changed.stderr
    assert changed.stdout == "Password changed for sam; their sessions have ended.\n"
    short = cli("admin", "password", "sam", env={"HEADWATER_ADMIN_PASSWORD": "short"})
    assert short.exit_code == 1
    assert short.stderr.startswith("error: password: must be 8 to 1024 characters")
    with runtime.database.read() as session:
        found = admins.candidate(session, "sam")
        assert found is not None and admins.verify(found.password_hash, "a-new-password")
    assert cli.ok("admin", "delete", "sam") == "Removed admin sam\n"
    missing = cli("admin", "delete", "sam")
    assert missing.exit_code == 1
    assert missing.stderr == "error: no admin named 'sam'\n"
