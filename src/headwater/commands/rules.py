"""``headwater rules ...``: group rules from the command line, with progress while an
activation evaluates the directory."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import func, select

from headwater.commands.common import (
    cli_actor,
    fail,
    find_group,
    find_user,
    notice,
    opened,
    out,
    table,
)
from headwater.db import tables as t

__all__ = ["rules_app"]

rules_app = typer.Typer(
    help="Group rules: fill groups from profile attributes.", no_args_is_help=True
)

RuleArg = Annotated[str, typer.Argument(help="Id or name of the rule.", show_default=False)]
RemoveOpt = Annotated[
    bool,
    typer.Option(
        "--remove-users/--keep-users",
        help="Take back the memberships the rule holds, or keep them (as manual ones).",
    ),
]


def _find_rule(key: str) -> str:
    with opened() as runtime, runtime.database.read() as session:
        rule = session.get(t.GroupRule, key) if 0 < len(key) <= 32 else None
        if rule is not None:
            return rule.id
        matches = list(
            session.execute(
                select(t.GroupRule.id).where(func.lower(t.GroupRule.name) == key.lower())
            ).scalars()
        )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        fail(f"no rule with id or name {key!r}")
    fail(f"{len(matches)} rules are named {key!r}; use an id: {', '.join(matches)}")


@rules_app.command("list")
def rules_list(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Part of the rule's name.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=2000, help="Show at most this many.")] = 200,
) -> None:
    """List rules, oldest first, with the members each holds."""
    from headwater.services import group_rules

    grid = table("id", "name", "status", "expression", "groups", "members")
    with opened() as runtime, runtime.database.read() as session:
        listing = group_rules.list_rules(session, search, limit=limit)
        rules, counts, names = listing.rules, listing.held, listing.group_names
        for rule in rules:
            groups = ", ".join(names.get(g, f"{g} (deleted)") for g in rule.group_ids)
            status = rule.status + (f": {rule.invalid_reason}" if rule.invalid_reason else "")
            grid.add_row(
                rule.id, rule.name, status, rule.expression, groups, str(counts.get(rule.id, 0))
            )
    out().print(grid)


@rules_app.command("create")
def rules_create(
    name: Annotated[str, typer.Argument(help="The rule's name.", show_default=False)],
    expression: Annotated[
        str,
        typer.Option(
            "--expression", "-e", help='e.g. user.department == "Engineering"', show_default=False
        ),
    ],
    groups: Annotated[
        list[str],
        typer.Option("--group", "-g", help="Group (name or id) to fill; repeat for more."),
    ],
    exclude_user: Annotated[
        list[str] | None, typer.Option(help="Person (login or id) never added; repeatable.")
    ] = None,
    exclude_group: Annotated[
        list[str] | None, typer.Option(help="Members of this group are never added; repeatable.")
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate/--inactive", help="Activate it right away.")
    ] = False,
) -> None:
    """Create a rule (INACTIVE unless --activate)."""
    from headwater.services import group_rules

    with opened() as runtime, runtime.database.transaction() as session:
        spec = group_rules.RuleSpec(
            name,
            expression,
            [find_group(session, g).id for g in groups],
            [find_user(session, u).id for u in exclude_user or []],
            [find_group(session, g).id for g in exclude_group or []],
        )
        rule = group_rules.create_rule(session, cli_actor(), spec)
        rule_id = rule.id
    out().print(f"Created rule {name} ({rule_id}), INACTIVE.", markup=False, highlight=False)
    if activate:
        _activate(rule_id)


def _activate(rule_id: str) -> None:
    from headwater.services import group_rules
    from headwater.services.rule_evaluation import SweepProgress

    def progress(step: SweepProgress, evaluated: int) -> None:
        notice(f"evaluated {evaluated} people (+{step.added} -{step.removed})")

    with opened() as runtime:
        with runtime.database.transaction() as session:
            rule = group_rules.activate_rule(session, cli_actor(), rule_id)
            name = rule.name
        total = group_rules.run_sweep(runtime.database, rule_id, cli_actor(), progress=progress)
    out().print(
        f"Activated {name}: {total.evaluated} people evaluated, {total.added} memberships added, "
        f"{total.removed} removed.",
        markup=False,
        highlight=False,
    )


@rules_app.command("activate")
def rules_activate(rule: RuleArg) -> None:
    """Activate a rule and evaluate it over the whole directory (batch by batch, with
    progress); running it again resumes an evaluation that was cut short."""
    _activate(_find_rule(rule))


@rules_app.command("deactivate")
def rules_deactivate(rule: RuleArg, remove_users: RemoveOpt = False) -> None:
    """Deactivate a rule; the memberships it holds stay unless --remove-users."""
    from headwater.services import group_rules

    rule_id = _find_rule(rule)
    with opened() as runtime, runtime.database.transaction() as session:
        row = group_rules.deactivate_rule(session, cli_actor(), rule_id, remove_users=remove_users)
        name = row.name
    out().print(f"Deactivated {name}.", markup=False, highlight=False)


@rules_app.command("delete")
def rules_delete(rule: RuleArg, remove_users: RemoveOpt = False) -> None:
    """Delete an inactive rule; its memberships stay (as manual ones) unless --remove-users."""
    from headwater.services import group_rules

    rule_id = _find_rule(rule)
    with opened() as runtime, runtime.database.transaction() as session:
        group_rules.delete_rule(session, cli_actor(), rule_id, remove_users=remove_users)
    out().print(f"Deleted rule {rule}.", markup=False, highlight=False)
