"""``headwater mappings show|set|approve|reject``."""

from __future__ import annotations

import json

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    Cli,
    assign_group,
    create_app,
    create_group,
    create_user,
    queued_subjects,
)

TITLE = 'user.department == "Engineering" ? "Builder" : user.title'


def test_show_and_set(cli: Cli, runtime: Runtime) -> None:
    eng = create_user(runtime, "eng@example.com", department="Engineering", title="Clerk")
    sales = create_user(runtime, "sales@example.com", department="Sales", title="Clerk")
    app_id = create_app(runtime, "Wiki")
    assign_group(runtime, app_id, create_group(runtime, "Staff", [eng, sales]))

    shown = cli.ok("mappings", "show", "Wiki")
    assert "user.firstName" in shown and "built-in" in shown

    said = cli.ok("mappings", "set", "Wiki", "title", TITLE)
    assert said.strip() == "Mapped title of Wiki: 1 account(s) queued for update."
    assert eng in queued_subjects(runtime, app_id)
    properties = json.loads(cli.ok("mappings", "show", "Wiki", "--json"))["properties"]
    assert properties["title"] == {"expression": TITLE, "pushStatus": "PUSH"}

    refused = cli("mappings", "set", "Wiki", "title", "String.toLower(user.title)")
    assert refused.exit_code == 1
    assert "did you mean String.toLowerCase" in refused.stderr

    cli.ok("mappings", "set", "Wiki", "title", "--reset")
    properties = json.loads(cli.ok("mappings", "show", "Wiki", "--json"))["properties"]
    assert properties["title"] == {"expression": "user.title", "pushStatus": "PUSH"}

    nothing_held = cli("mappings", "approve", "Wiki")
    assert nothing_held.exit_code == 1 and "no held change" in nothing_held.stderr
