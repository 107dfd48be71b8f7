"""``mappings``: an attribute mapping change on an app with N active accounts.

N users hold an account in one app (the accounts are written straight into the tables as a
converged reconcile leaves them: the downstream is not involved here). Timed: saving a mapping
change that alters every account's ``userName`` and ``title`` (type-check, evaluate old and new
mapping for every user, enqueue exactly the changed keys, one transaction), then the plan of the
app (``GET /apps/{id}/plan``: every update with its attribute diffs). Goal: under 2 s for 10,000
accounts. Baseline: enqueuing every key of the app without evaluating anything
(``outbox.enqueue_app``, what a full reconcile request costs), so the ratio is what knowing the
exact keys costs. ``python -m bench.mappings [--quick]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import delete, insert

from bench.common import Context, Databases, Mode, Report, require_complete
from bench.provision import pending
from headwater import clock
from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.profile_mapping import AppMapping
from headwater.domain.states import LinkState
from headwater.engine import preview
from headwater.runtime import Runtime
from headwater.services import mappings
from headwater.testing.toolkit import (
    assign_group,
    create_app,
    create_group,
    create_users,
    make_runtime,
    numbered_profile,
    update_settings,
)

__all__ = ["run"]

NAME = "mappings"
CHANGE = {
    "userName": {"expression": 'String.substringBefore(user.email, "@")', "pushStatus": "PUSH"},
    "title": {"expression": 'user.lastName + " (" + user.firstName + ")"', "pushStatus": "PUSH"},
}


def _seed_accounts(runtime: Runtime, app_id: str, users: list[str], digits: int) -> None:
    """One ACTIVE account per user, recorded as the built-in mapping sent it."""
    now = clock.utcnow()
    built_in = AppMapping()
    rows = []
    for index, user_id in enumerate(users):
        profile = numbered_profile("user", index, digits=digits)
        sent = built_in.attributes(user_id, profile, {}, user_name_template="${source.login}")
        rows.append(
            {
                "app_id": app_id,
                "user_id": user_id,
                "external_id": uuid.uuid4().hex,
                "user_name": sent.user_name,
                "state": LinkState.ACTIVE,
                "sync_state": "SYNCHRONIZED",
                "last_pushed": sent.as_dict(),
                "created": now,
                "last_updated": now,
            }
        )
    with runtime.database.transaction() as session:
        for start in range(0, len(rows), 2000):
            session.execute(insert(t.AppUserLink), rows[start : start + 2000])


def _clear(runtime: Runtime) -> None:
    with runtime.database.transaction() as session:
        session.execute(delete(t.ReconcileKey))


def run(ctx: Context) -> None:
    report = ctx.report
    count = 500 if ctx.mode.name == "quick" else 10_000
    digits = 5
    report.section(f"mappings: a mapping change on an app with {count:,} accounts (sqlite)")
    data_dir = ctx.data_dir(NAME)
    runtime = make_runtime(ctx.databases.sqlite(), data_dir)
    try:
        group = create_group(runtime, "Everyone")
        users = create_users(runtime, count, digits=digits, group_ids=[group])
        app_id = create_app(runtime, "Bench mappings")
        assign_group(runtime, app_id, group)
        update_settings(runtime, app_id, mass_change_threshold=0)
        _seed_accounts(runtime, app_id, users, digits)

        _clear(runtime)
        started = time.perf_counter()
        with runtime.database.transaction() as session:
            outbox.enqueue_app(session, app_id)
        baseline = time.perf_counter() - started
        require_complete(f"{NAME}: enqueue_app", pending(runtime), count, "keys")

        _clear(runtime)
        started = time.perf_counter()
        with runtime.database.transaction() as session:
            saved = mappings.update(session, app_id, CHANGE, SYSTEM, preview.mapping_impact)
        change = time.perf_counter() - started
        require_complete(f"{NAME}: mapping change", saved.affected, count, "changed accounts")
        require_complete(f"{NAME}: mapping change", pending(runtime), count, "keys")

        started = time.perf_counter()
        plan = asyncio.run(preview.plan_app(runtime.database, runtime.connectors, app_id))
        planned = time.perf_counter() - started
        updates = plan["summary"].get("UPDATE_ACCOUNT", 0)
        require_complete(f"{NAME}: plan", updates, count, "updates")
        require_complete(f"{NAME}: plan diffs", len(plan["attributeChanges"]), count, "diffs")
    finally:
        runtime.close()

    for label, seconds in (
        ("enqueue every key (baseline)", baseline),
        ("mapping change: exact keys", change),
        ("plan with attribute diffs", planned),
    ):
        report.row(NAME, label, f"{seconds * 1000:10.1f} ms", seconds=seconds, accounts=count)
    report.line(
        f"change + plan: {change + planned:.2f} s for {count:,} accounts (goal < 2 s at 10,000)"
    )
    report.ratio(
        NAME,
        "exact-keys change time / enqueue-every-key time",
        change / baseline,
        "what evaluating both mappings for every account costs over enqueuing them all",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mappings", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 accounts instead of 10,000")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)))
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
