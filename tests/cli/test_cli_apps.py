"""``headwater apps``, ``assign``, ``unassign``, ``push`` and ``plan`` against a real
scim2-server; the bearer token never reaches the output."""

from __future__ import annotations

import json

from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.toolkit import (
    Cli,
    assign_group,
    count_rows,
    create_group,
    create_user,
    create_users,
)
from headwater.testing.toolkit import create_app as create_bookmark_app


def create_app(
    cli: Cli, downstream: ScimServerProcess, label: str, token: str | None = None
) -> tuple[int, str, str]:
    """``headwater apps create`` (the command under test): exit code, stdout, stderr."""
    result = cli(
        "apps",
        "create",
        "--label",
        label,
        "--scim-url",
        downstream.base_url,
        env={"HEADWATER_SCIM_TOKEN": token or downstream.bearer_token},
    )
    return result.exit_code, result.stdout, result.stderr


def test_apps_create_tests_the_connection_and_never_shows_the_token(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    token = downstream.bearer_token
    assert token is not None
    code, out, err = create_app(cli, downstream, "Wiki")
    assert code == 0, err
    assert out.startswith("Created Wiki (0oa") and "with a bearer token" in out
    listed = cli.ok("apps", "list")
    assert "Wiki" in listed and f"{downstream.base_url} (ENABLED)" in listed
    assert token not in out + err + listed
    with runtime.database.read() as session:
        connection = session.execute(select(t.AppConnection)).scalar_one()
        assert connection.secret_encrypted and token not in connection.secret_encrypted

    prompted = cli(
        "apps",
        "create",
        "--label",
        "Docs",
        "--scim-url",
        downstream.base_url,
        "--token-prompt",
        input=token + "\n",
        env={"HEADWATER_SCIM_TOKEN": None},
    )
    assert prompted.exit_code == 0, prompted.stderr
    assert token not in prompted.stdout + prompted.stderr
    assert count_rows(runtime, t.AppConnection) == 2


def test_apps_create_keeps_nothing_when_the_test_fails(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    code, out, err = create_app(cli, downstream, "Wiki", token="wrong-token")
    assert code == 1 and out == ""
    assert err.startswith("error: GET /Users: credentials rejected (HTTP 401)")
    assert err.rstrip().endswith("(the app was not kept)") and "wrong-token" not in err
    anonymous = cli(
        "apps", "create", "--label", "Wiki", "--scim-url", downstream.base_url,
        env={"HEADWATER_SCIM_TOKEN": None},
    )  # fmt: skip
    assert anonymous.exit_code == 1
    assert anonymous.stderr.startswith("warning: no bearer token")
    bad_url = cli("apps", "create", "--label", "Wiki", "--scim-url", "ftp://example.com/scim")
    assert bad_url.exit_code == 1
    assert "baseUrl: must be an http or https URL" in bad_url.stderr
    assert count_rows(runtime, t.App) == 0 and count_rows(runtime, t.AppConnection) == 0
    assert "Traceback" not in err + anonymous.stderr + bad_url.stderr


def test_assign_push_plan_and_unassign(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    accounting, pushed = create_group(runtime, "Accounting"), create_group(runtime, "AppPushGroup")
    create_users(runtime, 3, prefix="person", domain="plan.example", group_ids=[accounting])
    create_users(runtime, 2, prefix="person", domain="push.example", group_ids=[pushed])
    assert create_app(cli, downstream, "Plan App")[0] == 0

    assigned = cli.ok("assign", "plan app", "accounting", "--priority", "5")
    assert assigned == "Assigned Plan App to Accounting at priority 5 (3 members).\n"
    assert count_rows(runtime, t.ReconcileKey) == 3
    pushed = cli.ok("push", "Plan App", "AppPushGroup", "--name", "Pushed Downstream")
    assert pushed.startswith("Pushing AppPushGroup to Plan App as 'Pushed Downstream' (mapping gPm")
    twice = cli("push", "Plan App", "AppPushGroup")
    assert twice.exit_code == 1 and "already pushed" in twice.stderr

    table = cli.ok("plan", "Plan App")
    assert "Plan for Plan App" in table
    assert table.count("│ CREATE_ACCOUNT ") == 3 and "person00000@plan.example" in table
    assert "CREATE_OR_LINK_GROUP" in table and "downstream name Pushed Downstream" in table
    assert "4 operation(s): CREATE_ACCOUNT 3, CREATE_OR_LINK_GROUP 1." in table
    as_json = json.loads(cli.ok("plan", "Plan App", "--json"))
    assert as_json["summary"] == {"CREATE_ACCOUNT": 3, "CREATE_OR_LINK_GROUP": 1}
    assert [op["op"] for op in as_json["operations"]][-1] == "CREATE_OR_LINK_GROUP"

    assert "4/4 keys done" in cli.ok("reconcile", "Plan App", "--no-progress")
    assert cli.ok("plan", "Plan App") == "Nothing to send.\n"
    assert cli.ok("plan", "Plan App", "--observe") == "Nothing to send.\n"

    assert cli.ok("unassign", "Plan App", "Accounting") == (
        "Unassigned Plan App from Accounting.\n"
    )
    after = cli.ok("plan", "Plan App")
    assert after.count("│ DEACTIVATE_ACCOUNT ") == 3 and "3 operation(s)" in after
    again = cli("unassign", "Plan App", "Accounting")
    assert again.exit_code == 1
    assert again.stderr == "error: Accounting is not assigned to Plan App\n"


def test_unknown_and_ambiguous_names(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    team = create_group(runtime, "Team")
    create_users(runtime, 1, prefix="person", domain="team.example", group_ids=[team])
    for _ in range(2):
        assert create_app(cli, downstream, "Twin")[0] == 0
    with runtime.database.read() as session:
        twins = sorted(session.execute(select(t.App.id)).scalars())

    ambiguous = cli("assign", "Twin", "Team")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == f"error: 2 apps are named 'Twin'; use an id: {', '.join(twins)}\n"
    assert "priority 0" in cli.ok("assign", twins[0], "Team")

    for args, message in (
        (("assign", "Nope", "Team"), "error: no app with id, label or name 'Nope'\n"),
        (("assign", twins[1], "Nope"), "error: no group with id or name 'Nope'\n"),
        (("unassign", "Nope", "Team"), "error: no app with id, label or name 'Nope'\n"),
        (("push", twins[1], "Nope"), "error: no group with id or name 'Nope'\n"),
        (("plan", "Nope"), "error: no app with id, label or name 'Nope'\n"),
    ):
        result = cli(*args)
        assert (result.exit_code, result.stderr, result.stdout) == (1, message, "")
    bad_priority = cli("assign", twins[1], "Team", "--priority", "101")
    assert bad_priority.exit_code == 2


def test_apps_show_and_set_the_dialect(
    cli: Cli, runtime: Runtime, downstream: ScimServerProcess
) -> None:
    code, _, err = create_app(cli, downstream, "Dialects")
    assert code == 0, err
    shown = cli.ok("apps", "show", "Dialects")
    assert "dialect" in shown and "rfc7644" in shown
    assert "driftRepair" in shown and "AVAILABLE" in shown
    assert "patch.supported" in shown and "filter.maxResults" in shown  # read at the test

    assert "Updated" in cli.ok("apps", "set", "Dialects", "dialect=aws-identity-center")
    shown = cli.ok("apps", "show", "Dialects")
    assert "aws-identity-center" in shown and "group-filter" in shown
    assert "Updated" in cli.ok("apps", "set", "Dialects", "memberCheck=none")
    shown = cli.ok("apps", "show", "Dialects")
    assert "custom" in shown and "UNAVAILABLE" in shown

    refused = cli("apps", "set", "Dialects", "dialect=aws-identity-center", "memberRemoval=filter")
    assert refused.exit_code == 1
    assert "memberRemoval: can only be set with dialect custom" in refused.stderr
    assert cli("apps", "set", "Dialects", "membershipBatchSize=5000").exit_code == 1
    assert cli("apps", "set", "Dialects", "nonsense").exit_code == 1
    cli.ok("apps", "set", "Dialects", "booleanEncoding=string", "membershipBatchSize=50")
    shown = cli.ok("apps", "show", "Dialects")
    assert "custom" in shown and "string" in shown


BEFORE_AT = '${String.substringBefore(source.login, "@")}'


def test_cli_preview(cli: Cli, runtime: Runtime) -> None:
    ann = create_user(runtime, "ann.lee@example.com")
    bob = create_user(runtime, "bob@example.com")
    staff = create_group(runtime, "Staff", [ann, bob])
    assign_group(runtime, create_bookmark_app(runtime, "Wiki"), staff)
    shown = cli.ok("apps", "template-preview", "Wiki", BEFORE_AT)
    assert "ann.lee" in shown and "bob" in shown
    chosen = cli.ok("apps", "template-preview", "Wiki", BEFORE_AT, "--user", "bob@example.com")
    assert "bob" in chosen and "ann.lee" not in chosen
    refused = cli("apps", "template-preview", "Wiki", "${String.toLower(source.login)}")
    assert refused.exit_code == 1 and "column 3" in refused.stderr
