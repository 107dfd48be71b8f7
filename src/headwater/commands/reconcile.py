"""``headwater reconcile``: a full reconcile of one app, worked here with a live progress bar."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from headwater.commands.apps import AppArg
from headwater.commands.common import cli_actor, err, find_app, notice, opened, when
from headwater.db import outbox
from headwater.db import tables as t
from headwater.domain.states import AppStatus, ConnectionStatus

if TYPE_CHECKING:
    from rich.progress import Task

    from headwater.engine.worker import Worker
    from headwater.runtime import Runtime

__all__ = ["Tally", "reconcile"]

#: Seconds between polls while the app's remaining keys wait (backoff, another worker).
POLL_SECONDS = 0.2
#: Seconds between heartbeats, so ``status`` lists this worker and limits are shared.
HEARTBEAT_SECONDS = 10.0


@dataclass
class Tally:
    """Downstream requests to one app, counted by a connector hook."""

    app_id: str
    requests: int = 0
    errors: int = 0

    def __call__(
        self, app_id: str, method: str, path: str, status: int | None, seconds: float
    ) -> None:
        if app_id != self.app_id:
            return
        self.requests += 1
        if status is None or status >= 400:
            self.errors += 1


@dataclass(frozen=True)
class Outcome:
    pending: int
    #: Why the run stopped with keys left, if it did.
    stopped: str | None = None


class _CountColumn(ProgressColumn):
    """Shows a live counter of the tally (requests or errors)."""

    def __init__(self, tally: Tally, field: str) -> None:
        super().__init__()
        self.tally = tally
        self.field = field

    def render(self, task: Task) -> Text:
        return Text(f"{getattr(self.tally, self.field)} {self.field}")


def _app_worker(runtime: Runtime, app_id: str) -> Worker:
    """A reconcile worker that claims only ``app_id``'s keys."""
    return runtime.worker(worker_id=f"cli:{socket.gethostname()}:{os.getpid()}", app_ids=[app_id])


def _queue_state(runtime: Runtime, app_id: str) -> tuple[int, t.App | None]:
    """Keys still pending for the app, and the app if it is quarantined."""

    with runtime.database.read() as session:
        pending = outbox.pending_count(session, app_id)
        app = session.get(t.App, app_id)
        if app is not None:
            session.expunge(app)
    return pending, app if app is not None and app.quarantined_since else None


def _sign_off(runtime: Runtime, worker_id: str) -> None:
    with runtime.database.transaction() as session:
        session.execute(delete(t.WorkerHeartbeat).where(t.WorkerHeartbeat.id == worker_id))


async def _work(
    runtime: Runtime, app_id: str, total: int, on_done: Callable[[int], None], timeout: float
) -> Outcome:
    """Reconcile the app's keys until none is left, the app is quarantined, or time is up."""
    worker = _app_worker(runtime, app_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_beat = -HEARTBEAT_SECONDS
    try:
        while True:
            if loop.time() - last_beat >= HEARTBEAT_SECONDS:
                worker.reconciler.share = await asyncio.to_thread(worker.heartbeat)
                last_beat = loop.time()
            claimed = await worker.step()
            pending, quarantined = await asyncio.to_thread(_queue_state, runtime, app_id)
            on_done(max(0, total - pending))
            if pending == 0:
                return Outcome(0)
            if claimed:
                continue
            if quarantined is not None:
                reason = quarantined.quarantine_reason or "unknown reason"
                probe = when(quarantined.next_probe)
                return Outcome(pending, f"the app is quarantined ({reason}); next probe {probe}")
            if loop.time() >= deadline:
                return Outcome(pending, f"still waiting after {timeout:g} s (retries, leases)")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await worker.aclose()
        await asyncio.to_thread(_sign_off, runtime, worker.worker_id)


def _idle_reason(session: Session, app: t.App) -> str | None:
    """Why the engine will send nothing to ``app``, if it will not."""
    if app.status != AppStatus.ACTIVE:
        return f"is {app.status}"
    connection = session.get(t.AppConnection, app.id)
    if connection is None or connection.status != ConnectionStatus.ENABLED:
        return "has no enabled provisioning connection"
    return None


def _task_attempts(session: Session, app_id: str) -> dict[str, int]:
    rows = session.execute(select(t.Task.id, t.Task.attempts).where(t.Task.app_id == app_id))
    return dict(rows.all())


def _opened_tasks(before: dict[str, int], after: dict[str, int]) -> int:
    """Tasks that are new, or failed again, since ``before``."""
    return sum(1 for task, attempts in after.items() if attempts > before.get(task, 0))


def _progress(console: Console, tally: Tally) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("keys"),
        TaskProgressColumn(),
        _CountColumn(tally, "requests"),
        _CountColumn(tally, "errors"),
        TimeElapsedColumn(),
        console=console,
    )


def reconcile(
    app: AppArg,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a live progress bar on stderr.")
    ] = True,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up after this many seconds of waiting.")
    ] = 600,
) -> None:
    """Reconcile every account and pushed group of the app now, reading the downstream back.

    Works the app's keys in this process (alongside any running workers) and ends with one
    summary line. Exits with 1 if an operation failed permanently (a Task was opened), or if
    keys are left when the app is quarantined or the timeout passes.
    """
    from headwater.services import tasks

    with opened() as runtime:
        with runtime.database.transaction() as session:
            row = find_app(session, app)
            app_id, label = row.id, row.label
            idle = _idle_reason(session, row)
            before = _task_attempts(session, app_id)
            total = tasks.reconcile_app(session, cli_actor(), app_id)
        if idle:
            notice(f"note: {label} {idle}; its keys are finished without sending anything.")
        tally = Tally(app_id)
        runtime.connectors.hooks.append(tally)
        started = time.monotonic()
        try:
            if progress:
                with _progress(err(), tally) as bar:
                    task = bar.add_task(label, total=total)
                    outcome = asyncio.run(
                        _work(
                            runtime, app_id, total, lambda d: bar.update(task, completed=d), timeout
                        )
                    )
            else:
                outcome = asyncio.run(_work(runtime, app_id, total, lambda d: None, timeout))
        except KeyboardInterrupt:
            notice("Interrupted; claimed keys return to the queue when their lease ends.")
            raise typer.Exit(130) from None
        with runtime.database.read() as session:
            opened_tasks = _opened_tasks(before, _task_attempts(session, app_id))
    elapsed = time.monotonic() - started
    done = max(0, total - outcome.pending)
    print(
        f"Reconciled {label}: {done}/{total} keys done, {tally.requests} requests, "
        f"{tally.errors} errors, {opened_tasks} tasks opened, in {elapsed:.1f} s."
    )
    if outcome.stopped:
        notice(f"Stopped: {outcome.stopped}.")
    if opened_tasks:
        notice(
            f"{opened_tasks} operation(s) failed permanently: see `headwater status` "
            "and the app's Tasks tab."
        )
    if outcome.stopped or opened_tasks:
        raise typer.Exit(1)
