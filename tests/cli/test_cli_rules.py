"""``headwater rules ...``: create, activate with progress, list, deactivate, delete."""

from __future__ import annotations

from headwater.runtime import Runtime
from headwater.testing.toolkit import Cli, create_group, create_user, members


def test_rules_lifecycle_from_the_command_line(cli: Cli, runtime: Runtime) -> None:
    eng = create_group(runtime, "Engineering")
    ann = create_user(runtime, "ann@example.com", department="Engineering")
    create_user(runtime, "bob@example.com", department="Sales")
    created = cli.ok(
        "rules",
        "create",
        "Dept is Eng",
        "-e",
        'user.department == "Engineering"',
        "-g",
        "Engineering",
    )
    assert "Created rule Dept is Eng (0pr" in created and "INACTIVE" in created
    assert members(runtime, eng) == set()
    activated = cli("rules", "activate", "dept is eng")
    assert activated.exit_code == 0, activated.stderr
    assert "evaluated 2 people (+1 -0)" in activated.stderr
    assert "2 people evaluated, 1 memberships added" in activated.stdout
    assert members(runtime, eng) == {ann}
    listed = cli.ok("rules", "list")
    assert "Dept is Eng" in listed and "ACTIVE" in listed and "Engineering" in listed
    refused = cli("rules", "delete", "Dept is Eng")
    assert refused.exit_code == 1 and "deactivate it first" in refused.stderr
    cli.ok("rules", "deactivate", "Dept is Eng")
    assert members(runtime, eng) == {ann}
    cli.ok("rules", "delete", "Dept is Eng", "--remove-users")
    assert members(runtime, eng) == set()
    assert "Dept is Eng" not in cli.ok("rules", "list")


def test_a_bad_expression_is_a_one_line_error(cli: Cli, runtime: Runtime) -> None:
    create_group(runtime, "Engineering")
    bad = cli("rules", "create", "Bad", "-e", 'String.toLower(user.x) == "a"', "-g", "Engineering")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: conditions.expression.value: unknown function")
    assert "did you mean String.toLowerCase?" in bad.stderr
    missing = cli("rules", "activate", "nope")
    assert missing.exit_code == 1 and "no rule with id or name 'nope'" in missing.stderr
