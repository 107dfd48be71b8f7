"""``headwater users ...`` and ``headwater groups ...`` on a temporary SQLite database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.toolkit import Cli


def user_status(runtime: Runtime, login: str) -> str:
    with runtime.database.read() as session:
        return session.execute(select(t.User.status).where(t.User.login == login)).scalar_one()


def members(runtime: Runtime, group: str) -> set[str]:
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.User.login)
            .join(t.Membership, t.Membership.user_id == t.User.id)
            .join(t.Group, t.Group.id == t.Membership.group_id)
            .where(t.Group.name == group)
        ).scalars()
        return set(rows)


def create(cli: Cli, login: str, *extra: str, input: str | None = None) -> str:
    first, last = login.split("@")[0].split(".")
    return cli.ok(
        "users", "create", "--login", login, "--first", first, "--last", last, *extra, input=input
    )


def test_users_create_in_each_status(cli: Cli, runtime: Runtime) -> None:
    secret = "Correct-Horse-7"
    out = create(cli, "taylor.smith@example.com", "--password-prompt", input=f"{secret}\n" * 2)
    assert "Created taylor.smith@example.com (00u" in out and out.rstrip().endswith("ACTIVE.")
    assert secret not in out
    assert create(cli, "alex.johnson@example.com").rstrip().endswith("PROVISIONED.")
    assert create(cli, "jordan.lee@example.com", "--no-activate").rstrip().endswith("STAGED.")
    with runtime.database.read() as session:
        user = session.execute(
            select(t.User).where(t.User.login == "alex.johnson@example.com")
        ).scalar_one()
        assert user.profile["email"] == "alex.johnson@example.com"  # defaults to the login
        actors = {e.actor["alternateId"] for e in session.execute(select(t.Event)).scalars()}
    assert len(actors) == 1 and actors.pop().startswith("cli:")


def test_users_create_refusals_are_one_line_errors(cli: Cli) -> None:
    create(cli, "casey.brown@example.com")
    again = cli(
        "users", "create", "--login", "Casey.Brown@example.com", "--first", "C", "--last", "B"
    )
    assert again.exit_code == 1
    assert again.stderr.startswith("error: login: An object with this field already exists")
    bad = cli("users", "create", "--login", "casey", "--first", "C", "--last", "B")
    assert bad.exit_code == 1
    assert "email" in bad.stderr and "Traceback" not in bad.stdout + bad.stderr
    missing = cli("users", "create", "--login", "x@example.com")
    assert missing.exit_code == 2  # usage error from the option parser


def test_users_list_search_filter_and_limit(cli: Cli) -> None:
    for login in ("taylor.smith@example.com", "alex.johnson@example.com"):
        create(cli, login)
    cli.ok("users", "deactivate", "alex.johnson@example.com")

    listed = cli.ok("users", "list")
    assert "taylor.smith@example.com" in listed and "taylor smith" in listed
    assert "alex.johnson" not in listed  # deactivated people only when a filter asks
    deprovisioned = cli.ok("users", "list", "--filter", 'status eq "DEPROVISIONED"')
    assert "alex.johnson@example.com" in deprovisioned and "taylor" not in deprovisioned
    assert "taylor.smith" in cli.ok("users", "list", "--search", "Tay")
    assert "taylor.smith" not in cli.ok("users", "list", "--search", "zed")

    create(cli, "jordan.lee@example.com")
    limited = cli("users", "list", "--limit", "1")
    assert limited.stdout.count("@example.com") == 2  # one row: login and email
    assert "Showing the first 1" in limited.stderr
    broken = cli("users", "list", "--filter", "status sideways 1")
    assert broken.exit_code == 1 and broken.stderr.startswith("error: ")


def test_users_activate_and_deactivate(cli: Cli, runtime: Runtime) -> None:
    create(cli, "taylor.smith@example.com", "--no-activate")
    with runtime.database.read() as session:
        user_id = session.execute(select(t.User.id)).scalar_one()

    assert "now PROVISIONED" in cli.ok("users", "activate", user_id)
    assert "now DEPROVISIONED" in cli.ok("users", "deactivate", "TAYLOR.SMITH@example.com")
    assert user_status(runtime, "taylor.smith@example.com") == "DEPROVISIONED"

    twice = cli("users", "deactivate", "taylor.smith@example.com")
    assert twice.exit_code == 1
    assert twice.stderr.strip() == (
        "error: This operation is not allowed in the user's current status. "
        "(taylor.smith@example.com is DEPROVISIONED)"
    )
    assert "now PROVISIONED" in cli.ok("users", "activate", "taylor.smith@example.com")


@pytest.mark.parametrize("command", ["activate", "deactivate"])
def test_unknown_user(cli: Cli, command: str) -> None:
    result = cli("users", command, "nobody@example.com")
    assert result.exit_code == 1
    assert result.stderr == "error: no user with id or login 'nobody@example.com'\n"


def test_groups_create_list_add_remove(cli: Cli, runtime: Runtime) -> None:
    for login in ("taylor.smith@example.com", "alex.johnson@example.com"):
        create(cli, login)
    out = cli.ok("groups", "create", "Accounting", "--description", "Assigns the app")
    assert out.startswith("Created group Accounting (00g")
    cli.ok("groups", "create", "AppPushGroup")

    assert cli.ok(
        "groups", "add", "accounting", "taylor.smith@example.com", "alex.johnson@example.com"
    ) == ("Added 2 to Accounting.\n")
    again = cli.ok("groups", "add", "Accounting", "taylor.smith@example.com")
    assert again == "Added 0 to Accounting (1 already members).\n"
    assert members(runtime, "Accounting") == {
        "taylor.smith@example.com",
        "alex.johnson@example.com",
    }

    listed = cli.ok("groups", "list")
    rows = {line.split("│")[2].strip(): line for line in listed.splitlines() if "00g" in line}
    assert " 2 " in rows["Accounting"] and "Assigns the app" in rows["Accounting"]
    assert " 0 " in rows["AppPushGroup"]
    assert "AppPushGroup" not in cli.ok("groups", "list", "--search", "acc")

    removed = cli.ok("groups", "remove", "Accounting", "taylor.smith@example.com")
    assert removed == "Removed 1 from Accounting.\n"
    quiet = cli.ok("groups", "remove", "Accounting", "taylor.smith@example.com")
    assert quiet == "Removed 0 from Accounting (1 were not members).\n"
    assert members(runtime, "Accounting") == {"alex.johnson@example.com"}


def test_groups_changes_are_all_or_nothing(cli: Cli, runtime: Runtime) -> None:
    create(cli, "taylor.smith@example.com")
    cli.ok("groups", "create", "Accounting")
    result = cli("groups", "add", "Accounting", "taylor.smith@example.com", "ghost@example.com")
    assert result.exit_code == 1
    assert result.stderr == "error: no user with id or login 'ghost@example.com'\n"
    assert members(runtime, "Accounting") == set()

    unknown = cli("groups", "add", "Finance", "taylor.smith@example.com")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: no group with id or name 'Finance'\n"
    duplicate = cli("groups", "create", "ACCOUNTING")
    assert duplicate.exit_code == 1 and "name: An object with this field" in duplicate.stderr
    with runtime.database.read() as session:
        assert session.execute(select(func.count()).select_from(t.Group)).scalar() == 1
