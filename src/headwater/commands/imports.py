"""``headwater import users|groups FILE.csv``: CSV imports with a progress bar and a summary;
``headwater import holds|approve|reject``: the rows the mass-change guard held."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from headwater.commands.common import cli_actor, err, fail, notice, opened, out, table
from headwater.domain.csv_import import MATCH_KEYS, MatchKey
from headwater.errors import HeadwaterError, InvalidRequest
from headwater.services import csv_import
from headwater.services.csv_import import Summary

__all__ = ["import_app"]

import_app = typer.Typer(help="Import people and groups from CSV files.", no_args_is_help=True)

FileArg = Annotated[
    Path,
    typer.Argument(
        help="The CSV file (UTF-8, first line names the columns).",
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Check every row and report; write nothing.")
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a live progress bar on stderr.")
]
#: Rejected and held rows printed one by one (the summary counts them all).
SHOWN = 50


def _run(
    path: Path, progress: bool, work: Callable[[Callable[[int, int], None] | None], Summary]
) -> Summary:
    if not progress:
        return work(None)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=err(),
    )
    with bar:
        task = bar.add_task(path.name, total=path.stat().st_size, rows=0)
        return work(lambda done, rows: bar.update(task, completed=done, rows=rows))


def _print(summary: Summary, noun: str) -> None:
    verb = "would be" if summary.dry_run else "were"
    grid = table(
        "outcome", noun, title=f"{'Dry run: ' if summary.dry_run else ''}{summary.rows} rows"
    )
    for outcome in ("created", "updated", "unchanged", "rejected", "held"):
        grid.add_row(outcome, str(getattr(summary, outcome)))
    console = out()
    console.print(grid)
    if summary.rejections:
        rejected = table("line", "key", "reason", title="Rejected rows")
        for item in summary.rejections[:SHOWN]:
            rejected.add_row(str(item.line), item.key or "", item.reason)
        console.print(rejected)
        if summary.rejected > SHOWN:
            notice(f"... and {summary.rejected - SHOWN} more rejected rows.")
    if summary.held_rows:
        held = table("line", "key", "reason", "hold id", title="Held rows")
        for item in summary.held_rows[:SHOWN]:
            held.add_row(str(item.line), item.key or "", item.reason, item.id or "")
        console.print(held)
    if summary.held_reason:
        notice(summary.held_reason)
    changed = summary.created + summary.updated
    console.print(
        f"{changed} {noun} {verb} created or updated, {summary.rejected} rejected, "
        f"{summary.held} held.",
        markup=False,
        highlight=False,
    )


@import_app.command("users")
def import_users(
    file: FileArg,
    source: Annotated[
        str | None,
        typer.Option(help="Name of where the file comes from (HR...), the system log's actor."),
    ] = None,
    match: Annotated[
        str,
        typer.Option(help=f"How a row finds an existing person: {', '.join(MATCH_KEYS)}."),
    ] = "login",
    dry_run: DryRunOpt = False,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm",
            help="Apply deactivations and suspensions even when more would go than the "
            "mass-change threshold allows.",
        ),
    ] = False,
    progress: ProgressOpt = True,
) -> None:
    """Create and update people from a CSV file, adding them to the groups named in a
    ``groups`` column. Rows are checked whole; bad rows are reported by line and the good ones
    imported. Exits with 1 when a row was rejected or held."""
    if match not in MATCH_KEYS:
        fail(f"--match must be one of {', '.join(MATCH_KEYS)}, not {match!r}")
    options = csv_import.Options(
        match=MatchKey(match), source=source, dry_run=dry_run, confirm=confirm
    )
    with opened() as runtime:
        actor = csv_import.import_actor(cli_actor(), source)
        summary = _run(
            file,
            progress,
            lambda report: csv_import.import_users(
                runtime.database, actor, file, options, progress=report
            ),
        )
    _print(summary, "people")
    if summary.rejected or summary.held:
        raise typer.Exit(1)


@import_app.command("groups")
def import_groups(file: FileArg, dry_run: DryRunOpt = False, progress: ProgressOpt = True) -> None:
    """Create groups from a CSV file with a ``name`` column (and ``description``); a group
    that exists is updated when its description differs. Exits with 1 when a row was
    rejected."""
    with opened() as runtime:
        summary = _run(
            file,
            progress,
            lambda report: csv_import.import_groups(
                runtime.database, cli_actor(), file, dry_run=dry_run, progress=report
            ),
        )
    _print(summary, "groups")
    if summary.rejected:
        raise typer.Exit(1)


#: Held rows listed by ``headwater import holds`` at most.
MAX_LISTED = 1000


@import_app.command("holds")
def list_holds(
    status: Annotated[
        str, typer.Option(help="Which held rows: HELD (waiting), APPROVED or REJECTED.")
    ] = "HELD",
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LISTED, help="List at most this many.")
    ] = 200,
) -> None:
    """List the import rows the mass-change guard held, oldest first."""
    status = status.upper()
    with opened() as runtime:
        try:
            rows = csv_import.list_holds(runtime.database, status, limit)
        except InvalidRequest as exc:
            fail("; ".join(exc.causes) or exc.summary)
    grid = table("id", "line", "key", "reason", "source", "created", title=f"{status} rows")
    for row in rows:
        created = row.created.strftime("%Y-%m-%d %H:%M:%S")
        grid.add_row(row.id, str(row.line), row.key, row.reason, row.source or "", created)
    out().print(grid)
    if status == "HELD" and rows:
        notice("Decide with: headwater import approve ID... or headwater import reject ID...")


def _decide(hold_ids: list[str], approve: bool) -> None:
    verb = "approved" if approve else "rejected"
    failed = 0
    console = out()
    with opened() as runtime:
        for hold_id in hold_ids:
            try:
                csv_import.decide_hold(runtime.database, cli_actor(), hold_id, approve)
            except HeadwaterError as exc:
                failed += 1
                causes = "; ".join(exc.causes)
                notice(f"{hold_id}: {exc.summary}" + (f" ({causes})" if causes else ""))
                continue
            console.print(f"{hold_id}: {verb}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


HoldIds = Annotated[list[str], typer.Argument(help="Ids of held rows (headwater import holds).")]


@import_app.command("approve")
def approve(hold_ids: HoldIds) -> None:
    """Apply held rows now, each as an import with --confirm would (all of a row or nothing).
    Exits with 1 when a row could not be approved (unknown, decided already, or no longer
    applying to the person)."""
    _decide(hold_ids, True)


@import_app.command("reject")
def reject(hold_ids: HoldIds) -> None:
    """Drop held rows: the people stay as they are. Exits with 1 when a row could not be
    rejected."""
    _decide(hold_ids, False)
