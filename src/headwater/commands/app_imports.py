"""``headwater apps import``, ``confirm`` and ``unmanaged``: what an app already holds.

``import`` queues an import and, unless told not to, works it here (an engine worker for
this app only) with a progress bar, then prints the verdicts; a running server or worker may
equally pick it up. ``confirm`` links the matches; ``unmanaged`` lists the accounts nobody
owns and acts on them (through the engine, like the API).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.commands.apps import AppArg, apps_app
from headwater.commands.common import (
    cli_actor,
    err,
    explain,
    fail,
    find_app,
    find_user,
    notice,
    opened,
    out,
    table,
    when,
)
from headwater.db import tables as t
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = ["confirm", "import_app", "unmanaged"]

#: Import states the engine still works on.
WORKING = ("QUEUED", "RUNNING", "CONFIRMING")
POLL_SECONDS = 0.2

Wait = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Work the import here until it is done (else leave it to a running worker).",
    ),
]
Timeout = Annotated[float, typer.Option(min=1, help="Give up waiting after this many seconds.")]


def _state(runtime: Runtime, import_id: str) -> t.AppImport:
    with runtime.database.read() as session:
        row = session.get(t.AppImport, import_id)
        assert row is not None
        session.expunge(row)
        return row


async def _work(runtime: Runtime, app_id: str, import_id: str, timeout: float) -> t.AppImport:
    """Step a worker for this app until the import leaves the engine's hands."""
    worker = runtime.worker(worker_id=f"cli:{socket.gethostname()}:{os.getpid()}", app_ids=[app_id])
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            claimed = await worker.step()
            row = await asyncio.to_thread(_state, runtime, import_id)
            if row.status not in WORKING:
                return row
            if asyncio.get_running_loop().time() > deadline:
                return row
            if not claimed:
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await worker.aclose()


async def _watched(runtime: Runtime, app_id: str, import_id: str, timeout: float) -> t.AppImport:
    """``_work`` with a progress bar of the accounts read, on stderr."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("accounts"),
        TimeElapsedColumn(),
        console=err(),
    ) as bar:
        task = bar.add_task("reading", total=None)
        work = asyncio.create_task(_work(runtime, app_id, import_id, timeout))
        while not work.done():
            row = await asyncio.to_thread(_state, runtime, import_id)
            bar.update(task, completed=row.accounts_read, total=row.accounts_total)
            await asyncio.wait({work}, timeout=POLL_SECONDS)
        return work.result()


def _summary(row: t.AppImport) -> None:
    grid = table("import", "status", "read", "matched", "unmatched", "conflicts", "linked")
    grid.add_row(
        row.id,
        row.status,
        f"{row.accounts_read} accounts, {row.groups_read} groups",
        str(row.matched),
        str(row.unmatched),
        str(row.conflicts),
        f"{row.linked} before, {row.confirmed} now",
    )
    out().print(grid)
    if row.error:
        notice(f"Error: {row.error}")


def _finish(row: t.AppImport, waited: bool) -> None:
    _summary(row)
    if row.status == "FAILED":
        raise typer.Exit(1)
    if waited and row.status in WORKING:
        notice("Still under way; see `headwater apps import-status`.")
        raise typer.Exit(1)


@apps_app.command("import")
def import_app(app: AppArg, wait: Wait = True, timeout: Timeout = 3600) -> None:
    """Read every account and group the app holds and match the accounts to directory users
    by the app's matching rules (importMatching). Nothing is written downstream."""
    from headwater.services import app_imports

    with opened() as runtime:
        try:
            with runtime.database.transaction() as session:
                app_id = find_app(session, app).id
                import_id = app_imports.start_import(session, cli_actor(), app_id).id
        except HeadwaterError as exc:
            fail(explain(exc))
        notice(f"Import {import_id} queued.")
        if not wait:
            return
        started = time.monotonic()
        row = asyncio.run(_watched(runtime, app_id, import_id, timeout))
        notice(f"Done in {time.monotonic() - started:.1f} s.")
        _finish(row, True)
        if row.status == "COMPLETED" and row.matched:
            notice(f"Link the {row.matched} matches with `headwater apps confirm {app}`.")


def _latest(session: Session, app_id: str, import_id: str | None) -> t.AppImport:
    if import_id:
        row = session.get(t.AppImport, import_id)
        if row is None or row.app_id != app_id:
            fail(f"no import {import_id!r} of this app")
        return row
    found = session.execute(
        select(t.AppImport).where(t.AppImport.app_id == app_id).order_by(t.AppImport.id.desc())
    ).scalars()
    row = next(iter(found), None)
    if row is None:
        fail("this app has never been imported; run `headwater apps import` first")
    return row


ImportOpt = Annotated[
    str | None, typer.Option("--import", help="The import (default: the app's latest).")
]


@apps_app.command("import-status")
def import_status(app: AppArg, import_id: ImportOpt = None) -> None:
    """Show an import's status, progress and verdicts."""
    with opened() as runtime, runtime.database.read() as session:
        row = _latest(session, find_app(session, app).id, import_id)
        _summary(row)


@apps_app.command("confirm")
def confirm(
    app: AppArg,
    import_id: ImportOpt = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account", help="Link only this matched account (downstream id).", show_default=False
        ),
    ] = None,
    wait: Wait = True,
    timeout: Timeout = 600,
) -> None:
    """Link the import's matched accounts to their users (no account is created downstream)."""
    from headwater.services import app_imports

    with opened() as runtime:
        try:
            with runtime.database.transaction() as session:
                app_id = find_app(session, app).id
                run_id = _latest(session, app_id, import_id).id
                count = app_imports.confirm(session, cli_actor(), app_id, run_id, account)
        except HeadwaterError as exc:
            fail(explain(exc))
        notice(f"{count} account(s) to link.")
        if not wait or not count:
            return
        row = asyncio.run(_work(runtime, app_id, run_id, timeout))
        _finish(row, True)


@apps_app.command("unmanaged")
def unmanaged(
    app: AppArg,
    state: Annotated[
        str | None, typer.Option(help="Only this state (UNMANAGED, IGNORED, DEACTIVATING...).")
    ] = None,
    deactivate: Annotated[
        list[str] | None,
        typer.Option(
            "--deactivate",
            help="Deactivate this account (id; repeat; 'all' for every UNMANAGED one).",
            show_default=False,
        ),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Approve the deactivations the guard held.")
    ] = False,
    ignore: Annotated[
        str | None, typer.Option("--ignore", help="Leave this account alone (id).")
    ] = None,
    link: Annotated[
        str | None, typer.Option("--link", help="Link this account (id) to --user.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Login or id for --link.")] = None,
) -> None:
    """List the app's unmanaged accounts (in it, owned by nobody in the directory), or act on
    them; the engine carries the actions out, the mass-change guard weighing deactivations."""
    from headwater.services import app_imports

    actor = cli_actor()
    with opened() as runtime:
        try:
            with runtime.database.transaction() as session:
                app_id = find_app(session, app).id
                if deactivate:
                    ids = None if deactivate == ["all"] else deactivate
                    count = app_imports.deactivate(session, actor, app_id, ids)
                    notice(f"{count} account(s) to deactivate.")
                if approve:
                    count = app_imports.decide_held(session, actor, app_id, True)
                    notice(f"{count} held deactivation(s) approved.")
                if ignore:
                    app_imports.ignore(session, actor, app_id, ignore)
                    notice(f"{ignore} ignored.")
                if link:
                    if not user:
                        fail("--link needs --user")
                    person = find_user(session, user)
                    app_imports.link_unmanaged(session, actor, app_id, link, person.id)
                    notice(f"{link} to be linked to {person.login}.")
                rows = list(
                    session.execute(
                        app_imports.unmanaged_query(session, app_id, state).order_by(
                            t.UnmanagedAccount.id
                        )
                    ).scalars()
                )
                grid = table("id", "userName", "email", "active", "state", "last seen")
                for row in rows:
                    shown = row.state + (" (held)" if row.decision == "HELD" else "")
                    grid.add_row(
                        row.id,
                        row.user_name,
                        row.email or "",
                        "yes" if row.active else "no",
                        shown,
                        when(row.last_seen),
                    )
        except HeadwaterError as exc:
            fail(explain(exc))
    out().print(grid)
