"""``rules``: activating a group rule over the directory, and what active rules add to a profile
update.

1. **Activation**: N users (a quarter in Engineering), a group assigned to an app; the rule
   ``user.department == "Engineering"`` is created and activated, and its evaluation over the
   whole directory (batches of ``SWEEP_BATCH`` users per transaction, memberships and the app's
   keys written set-based) is timed. Goal on SQLite: under 10 s for 100,000 users.
2. **Profile update**: on a smaller directory, one user's department is changed through the
   service (one transaction, as the API does) with no rule, then with 200 active rules (each
   filling its own group); the difference of the medians is what the rules add. Goal: under
   5 ms.

``python -m bench.rules [--quick] [--users N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bench.common import DIGITS, SECRET_KEY, Context, Databases, Mode, Report, median, percentile
from bench.common import require_complete as require
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import directory
from headwater.testing.toolkit import (
    assign_group,
    create_app,
    create_group,
    create_rule,
    make_runtime,
    members,
    numbered_profile,
    queued_subjects,
)

__all__ = ["run"]

NAME = "rules"
DEPARTMENTS = ("Engineering", "Sales", "Finance", "Support")
ACTIVE_RULES = 200
ACTIVATION_GOAL = 10.0
UPDATE_GOAL_MS = 5.0


def _count(session: Session, condition: ColumnElement[bool]) -> int:
    return int(session.execute(select(func.count()).where(condition)).scalar_one())


def _users(ctx: Context) -> int:
    return {"quick": 2_000, "default": 20_000}.get(ctx.mode.name, 100_000)


def _seed(runtime: Runtime, count: int, chunk: int = 2_000) -> list[str]:
    """``count`` users through the service, departments in turn; returns their ids."""
    created: list[str] = []
    for first in range(0, count, chunk):
        with runtime.database.transaction() as session:
            for index in range(first, min(count, first + chunk)):
                profile = numbered_profile("user", index, digits=DIGITS)
                profile["department"] = DEPARTMENTS[index % len(DEPARTMENTS)]
                created.append(directory.create_user(session, SYSTEM, profile).id)
    return created


def _activation(ctx: Context, count: int) -> float:
    report = ctx.report
    url = ctx.databases.sqlite()
    runtime = make_runtime(url, ctx.data_dir(f"rules-{count}"), secret_key=SECRET_KEY)
    try:
        group = create_group(runtime, "Engineering")
        app = create_app(runtime, "Wiki")
        assign_group(runtime, app, group)
        _seed(runtime, count)
        started = time.perf_counter()
        rule = create_rule(runtime, "Dept is Eng", 'user.department == "Engineering"', [group])
        elapsed = time.perf_counter() - started
        expected = (count + len(DEPARTMENTS) - 1) // len(DEPARTMENTS)
        require("rule activation", len(members(runtime, group)), expected, "memberships")
        require("rule activation", len(queued_subjects(runtime, app)), expected, "app keys")
        with runtime.database.read() as session:
            held = _count(session, t.GroupRuleMember.rule_id == rule)
        require("rule activation", held, expected, "rule holdings")
        report.row(
            NAME,
            f"activate one rule over {count:,} users (sqlite)",
            f"{elapsed:8.2f} s  ({count / elapsed:,.0f} users/s, {expected:,} members added)",
            seconds=elapsed,
            users=count,
            members=expected,
        )
        return elapsed
    finally:
        runtime.close()
        ctx.databases.drop(url)


def _update_latency(runtime: Runtime, user_id: str, changes: int, *, move: bool) -> list[float]:
    """Time ``changes`` profile updates of one user, each in its own transaction. ``move``:
    the department alternates between two teams, so each update leaves one rule's group and
    joins another's; otherwise only the title changes, which no rule reads, and the figure is
    what evaluating the active rules costs."""
    timings = []
    for index in range(changes):
        change = {"department": f"Team {index % 2:03d}"} if move else {"title": f"T{index}"}
        started = time.perf_counter()
        with runtime.database.transaction() as session:
            directory.update_user(session, SYSTEM, user_id, change, replace=False)
        timings.append(time.perf_counter() - started)
    return timings


def _profile_update(ctx: Context) -> tuple[float, float]:
    report = ctx.report
    changes = max(100, ctx.mode.samples)
    count = 500
    url = ctx.databases.sqlite()
    runtime = make_runtime(url, ctx.data_dir("rules-latency"), secret_key=SECRET_KEY)
    try:
        users = _seed(runtime, count)
        target = users[len(users) // 2]
        timed: dict[str, list[float]] = {}
        _update_latency(runtime, target, 30, move=False)  # warm up
        timed["title, no rule"] = _update_latency(runtime, target, changes, move=False)
        timed["department, no rule"] = _update_latency(runtime, target, changes, move=True)
        groups = [create_group(runtime, f"Team {i:03d}") for i in range(ACTIVE_RULES)]
        for index, group in enumerate(groups):
            expression = f'user.department == "Team {index:03d}" && user.login != "x{index}"'
            create_rule(runtime, f"Rule {index:03d}", expression, [group])
        with runtime.database.read() as session:
            active = _count(session, t.GroupRule.status == "ACTIVE")
        require("rules active", active, ACTIVE_RULES, "rules")
        _update_latency(runtime, target, 5, move=False)
        rules = f"{ACTIVE_RULES} active rules"
        timed[f"title, {rules}"] = _update_latency(runtime, target, changes, move=False)
        timed[f"department, {rules} (leaves a group, joins one)"] = _update_latency(
            runtime, target, changes, move=True
        )
        with runtime.database.read() as session:
            held = _count(session, t.GroupRuleMember.user_id == target)
        require("rules after the updates", held, 1, "memberships of the user")
        for label, timings in timed.items():
            report.row(
                NAME,
                f"profile update: {label}",
                f"median {median(timings) * 1000:7.2f} ms  p95 "
                f"{percentile(timings, 95) * 1000:7.2f} ms  ({changes} updates)",
                median_ms=median(timings) * 1000,
                p95_ms=percentile(timings, 95) * 1000,
            )
        base = median(timed["title, no rule"]) * 1000
        loaded = median(timed[f"title, {rules}"]) * 1000
        report.row(
            NAME,
            f"added latency of {rules}",
            f"{loaded - base:7.2f} ms (goal < {UPDATE_GOAL_MS:.0f} ms)",
            added_ms=loaded - base,
        )
        return base, loaded
    finally:
        runtime.close()
        ctx.databases.drop(url)


def run(ctx: Context, users: int | None = None) -> None:
    count = users or _users(ctx)
    ctx.report.section(f"rules: activating a group rule over {count:,} users; profile updates")
    elapsed = _activation(ctx, count)
    base, loaded = _profile_update(ctx)
    ctx.report.ratio(
        NAME,
        f"activation time / goal scaled to {count:,} users",
        elapsed / (ACTIVATION_GOAL * count / 100_000),
        "below 1.0 meets the goal of 10 s per 100,000 users",
    )
    ctx.report.ratio(
        NAME,
        f"profile update with {ACTIVE_RULES} active rules / without",
        loaded / base,
        "what evaluating the active rules in the update's transaction costs",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 users instead of 20,000")
    parser.add_argument("--users", type=int, help="users to activate the rule over")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)), args.users)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
