"""``headwater plan`` and ``headwater status``: what the engine would do, and how it is doing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.commands.apps import AppArg
from headwater.commands.common import (
    fail,
    find_app,
    guarded,
    mask_url,
    opened,
    out,
    table,
    when,
)
from headwater.db import tables as t
from headwater.domain.states import HoldDecision

__all__ = ["LIVE_WORKER_SECONDS", "plan", "status", "status_report"]

#: A worker that has not said it is alive for this long is not counted (as the worker does).
LIVE_WORKER_SECONDS = 30
CHUNK = 500
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


# --- plan ---------------------------------------------------------------------------------


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _names(session: Session, operations: list[dict[str, Any]]) -> tuple[dict[str, str], ...]:
    """Logins of the users and names of the pushed groups the operations mention."""
    user_ids = sorted(
        {op["userId"] for op in operations if op.get("userId")}
        | {u for op in operations for u in op.get("userIds", []) if u}
    )
    logins: dict[str, str] = {}
    for chunk in _chunks(user_ids):
        rows = session.execute(select(t.User.id, t.User.login).where(t.User.id.in_(chunk)))
        logins.update(rows.all())
    groups = dict(
        session.execute(
            select(t.PushMapping.id, func.coalesce(t.Group.name, t.PushMapping.target_group_name))
            .outerjoin(t.Group, t.Group.id == t.PushMapping.source_group_id)
            .where(
                t.PushMapping.id.in_({op["mappingId"] for op in operations if "mappingId" in op})
            )
        ).all()
    )
    return logins, groups


def _listing(values: list[str], shown: int = 5) -> str:
    more = f", … ({len(values)} in all)" if len(values) > shown else ""
    return ", ".join(values[:shown]) + more


def _describe(op: dict[str, Any], logins: dict[str, str], groups: dict[str, str]) -> list[str]:
    """(operation, user or group, details) for one planned operation."""
    kind = op["op"]
    if "mappingId" in op:
        subject = groups.get(op["mappingId"]) or op["mappingId"]
    else:
        subject = logins.get(op.get("userId") or "", op.get("userId") or "")
    details = []
    if op.get("userName"):
        details.append(f"userName {op['userName']}")
    if kind in ("CREATE_OR_LINK_GROUP", "RENAME_GROUP"):
        details.append(f"downstream name {op['name']}")
    if "userIds" in op:
        members = [logins.get(u, u or "?") for u in op["userIds"]]
        details.append(f"{len(members)} member(s): {_listing(members)}")
    if op.get("externalId"):
        details.append(f"externalId {op['externalId']}")
    return [kind, subject, "; ".join(details)]


def plan(
    app: AppArg,
    observe: Annotated[
        bool, typer.Option("--observe", help="Read the downstream back first, as a full reconcile.")
    ] = False,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many operations.")] = 200,
) -> None:
    """Show what a reconcile of the app would send now, in order; nothing is sent."""
    from headwater.connectors.errors import DownstreamError
    from headwater.engine import preview

    with opened() as runtime:
        with runtime.database.read() as session:
            row = find_app(session, app)
            app_id, label = row.id, row.label
        try:
            result = asyncio.run(
                preview.plan_app(runtime.database, runtime.connectors, app_id, observe=observe)
            )
        except DownstreamError as exc:
            fail(f"could not read {label} back: {exc.message}")
        if as_json:
            _print_json(result)
            return
        operations: list[dict[str, Any]] = result["operations"]
        with runtime.database.read() as session:
            logins, groups = _names(session, operations[:limit])
    console = out()
    if operations:
        grid = table("op", "user / group", "details", title=f"Plan for {label}")
        for op in operations[:limit]:
            grid.add_row(*_describe(op, logins, groups))
        console.print(grid)
        if len(operations) > limit:
            console.print(f"… and {len(operations) - limit} more (use --json to see all).")
    summary = ", ".join(f"{name} {count}" for name, count in result["summary"].items())
    message = f"{len(operations)} operation(s): {summary}" if operations else "Nothing to send"
    console.print(f"{message}.", markup=False, highlight=False)
    if result["summary"].get("CREATE_ACCOUNT") and result["accountCreates"] == "CREATE_FIRST":
        console.print("Accounts are created first; one that exists (409) is looked up and linked.")
    if result["errors"]:
        console.print(f"{len(result['errors'])} user(s) wait for a mapping fix:")
        for error in result["errors"][:limit]:
            console.print(f"  {error['userId']}: {error['error']}", markup=False)
    if result["orphans"]:
        console.print(f"{len(result['orphans'])} unknown member(s) in pushed groups (orphans).")


# --- status -------------------------------------------------------------------------------


def _schema(database: Any) -> dict[str, Any]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from headwater.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    with database.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return {"current": current, "head": head, "upToDate": current == head}


def status_report(session: Session) -> dict[str, Any]:
    """The engine's health, as plain data (for ``status`` and its ``--json``)."""
    now = clock.utcnow()
    labels = dict(session.execute(select(t.App.id, t.App.label)).all())
    keys = t.ReconcileKey
    due = func.sum(case((keys.not_before <= now, 1), else_=0))
    claimed = func.sum(case((keys.lease_until > now, 1), else_=0))
    pending = [
        {
            "appId": app_id,
            "label": labels.get(app_id, app_id),
            "pending": int(count),
            "dueNow": int(due_now or 0),
            "inProgress": int(busy or 0),
        }
        for app_id, count, due_now, busy in session.execute(
            select(keys.app_id, func.count(), due, claimed).group_by(keys.app_id)
        )
    ]
    quarantined = [
        {
            "appId": app.id,
            "label": app.label,
            "since": clock.format_okta(app.quarantined_since),
            "reason": app.quarantine_reason,
            "nextProbe": clock.format_okta(app.next_probe),
        }
        for app in session.execute(
            select(t.App).where(t.App.quarantined_since.is_not(None)).order_by(t.App.id)
        ).scalars()
    ]
    tasks = []
    for app_id, count, latest in session.execute(
        select(t.Task.app_id, func.count(), func.max(t.Task.last_attempt)).group_by(t.Task.app_id)
    ):
        last = session.execute(
            select(t.Task.message)
            .where(t.Task.app_id == app_id)
            .order_by(t.Task.last_attempt.desc())
            .limit(1)
        ).scalar()
        tasks.append(
            {
                "appId": app_id,
                "label": labels.get(app_id, app_id),
                "open": int(count),
                "lastAttempt": clock.format_okta(latest),
                "lastMessage": last,
            }
        )
    workers = [
        {
            "id": row.id,
            "started": clock.format_okta(row.started),
            "lastSeen": clock.format_okta(row.last_seen),
        }
        for row in session.execute(
            select(t.WorkerHeartbeat)
            .where(t.WorkerHeartbeat.last_seen >= now - timedelta(seconds=LIVE_WORKER_SECONDS))
            .order_by(t.WorkerHeartbeat.started)
        ).scalars()
    ]
    held = [
        {"appId": app_id, "label": labels.get(app_id, app_id), "held": int(count)}
        for app_id, count in session.execute(
            select(t.HeldOperation.app_id, func.count())
            .where(t.HeldOperation.decision == HoldDecision.HELD)
            .group_by(t.HeldOperation.app_id)
        )
    ]
    return {
        "pendingKeys": pending,
        "quarantinedApps": quarantined,
        "openTasks": tasks,
        "liveWorkers": workers,
        "heldOperations": held,
    }


def _okta_time(value: str | None) -> str:
    return when(clock.parse_okta(value)) if value else "never"


def _section(title: str, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    console = out()
    if not rows:
        console.print(f"{title}: none", markup=False, highlight=False)
        return
    grid = table(*columns.values(), title=title)
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            is_time = key in ("since", "nextProbe", "lastAttempt", "started", "lastSeen")
            cells.append(_okta_time(value) if is_time else "" if value is None else str(value))
        grid.add_row(*cells)
    console.print(grid)


def status(as_json: JsonOpt = False) -> None:
    """Show the database, schema, queued keys, quarantines, tasks, workers and held work."""
    from headwater.config import Settings
    from headwater.db.engine import Database

    with guarded():
        url = Settings.load().resolved_database_url()
        database = Database(url)
        try:
            schema = _schema(database)
            report: dict[str, Any] | None = None
            if schema["current"] is not None:
                with database.read() as session:
                    report = status_report(session)
        finally:
            database.dispose()
    data = {"database": mask_url(url), "schema": schema, **(report or {})}
    if as_json:
        _print_json(data)
    else:
        _render_status(data)
    if report is None:
        fail("the database has no Headwater schema yet (any other command creates it)")


def _render_status(data: dict[str, Any]) -> None:
    console = out()
    schema = data["schema"]
    if schema["current"] is None:
        revision = "none"
    elif schema["upToDate"]:
        revision = f"{schema['current']} (up to date)"
    else:
        revision = f"{schema['current']} (head is {schema['head']}; any command migrates)"
    console.print(f"Database: {data['database']}", markup=False, highlight=False)
    console.print(f"Schema revision: {revision}", markup=False, highlight=False)
    if "pendingKeys" not in data:
        return
    _section(
        "Pending keys",
        data["pendingKeys"],
        {"label": "app", "pending": "pending", "dueNow": "due now", "inProgress": "in progress"},
    )
    _section(
        "Quarantined apps",
        data["quarantinedApps"],
        {"label": "app", "since": "since", "reason": "reason", "nextProbe": "next probe"},
    )
    _section(
        "Open tasks",
        data["openTasks"],
        {"label": "app", "open": "open", "lastAttempt": "last failure", "lastMessage": "latest"},
    )
    _section(
        "Live workers",
        data["liveWorkers"],
        {"id": "worker", "started": "started", "lastSeen": "last seen"},
    )
    _section("Held operations", data["heldOperations"], {"label": "app", "held": "held"})
