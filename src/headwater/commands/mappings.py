"""``headwater mappings show|set|approve|reject``: an app's attribute mapping."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from headwater.commands.apps import AppArg
from headwater.commands.common import cli_actor, find_app, opened, out, table
from headwater.engine import preview
from headwater.services import mappings

__all__ = ["mappings_app"]

mappings_app = typer.Typer(
    help="Attribute mappings: the expression and push status of each attribute an app gets.",
    no_args_is_help=True,
)


def _print(message: str) -> None:
    out().print(message, markup=False, highlight=False, soft_wrap=True)


@mappings_app.command("show")
def show(
    app: AppArg,
    as_json: Annotated[bool, typer.Option("--json", help="Okta's properties as JSON.")] = False,
) -> None:
    """Every mapped attribute with its expression and push status (changed ones marked)."""
    with opened() as runtime, runtime.database.read() as session:
        row = find_app(session, app)
        _, mapping, pending = mappings.load(session, row.id)
        label = row.label
    effective = mapping.effective()
    if as_json:
        properties = {
            name: {"expression": text, "pushStatus": status.value}
            for name, (text, status) in sorted(effective.items())
        }
        _print(json.dumps({"properties": properties}, indent=2))
        return
    grid = table("attribute", "expression", "push", "", title=f"Attribute mapping of {label}")
    for name, (text, status) in sorted(effective.items()):
        changed = "changed" if name in mapping.properties else "built-in"
        grid.add_row(name, text or "(the username template)", status.value, changed)
    out().print(grid)
    if pending is not None:
        _print("A change is held by the mass-change guard: `headwater mappings approve|reject`.")


@mappings_app.command("set")
def set_property(
    app: AppArg,
    attribute: Annotated[str, typer.Argument(help="Target attribute (title, costCenter, ...).")],
    expression: Annotated[
        str | None, typer.Argument(help="Expression; omit to keep the current one.")
    ] = None,
    push_status: Annotated[
        str, typer.Option("--push-status", help="PUSH, CREATE or DONT_PUSH.")
    ] = "PUSH",
    reset: Annotated[bool, typer.Option("--reset", help="Back to the built-in mapping.")] = False,
) -> None:
    """Change one attribute; the accounts it changes are queued (or the change is held)."""
    change: dict[str, str] | None = None
    if not reset:
        change = {"pushStatus": push_status}
        if expression is not None:
            change["expression"] = expression
    with opened() as runtime, runtime.database.transaction() as session:
        row = find_app(session, app)
        saved = mappings.update(
            session, row.id, {attribute: change}, cli_actor(), preview.mapping_impact
        )
        label = row.label
    if saved.held:
        _print(
            f"Held: the change would update {saved.affected} account(s) of {label}, over the "
            "mass-change threshold. `headwater mappings approve` applies it."
        )
    else:
        _print(f"Mapped {attribute} of {label}: {saved.affected} account(s) queued for update.")


def _decide(app: str, approve: bool) -> None:
    with opened() as runtime, runtime.database.transaction() as session:
        row = find_app(session, app)
        saved = mappings.decide(session, row.id, approve, cli_actor(), preview.mapping_impact)
        label = row.label
    verb = "Applied" if approve else "Dropped"
    _print(f"{verb} the held mapping change of {label}: {saved.affected} account(s) queued.")


@mappings_app.command("approve")
def approve(app: AppArg) -> None:
    """Apply a mapping change held by the mass-change guard."""
    _decide(app, True)


@mappings_app.command("reject")
def reject(app: AppArg) -> None:
    """Drop a mapping change held by the mass-change guard."""
    _decide(app, False)
