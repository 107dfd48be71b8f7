"""``csv_import``: ``headwater import users`` on a generated file of N people, on SQLite.

Each row has a login, an email, names, a department, an employee number and one or two groups
(of three); the import creates every person and their memberships through
``services.csv_import`` with its default batches of 500 rows, as the command does. Timed: the
import (rows/s, CPU), against a floor of reading the same file with the standard ``csv`` module
alone. Memory: the process's resident set sampled after every batch; flat means the last
sample is about the one after the first tenth of the file. Goal on SQLite: at least 2,000
rows/s for 100,000 rows.

``python -m bench.csv_import [--quick] [--rows N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from bench.common import SECRET_KEY, Context, Databases, Mode, Report
from bench.common import require_complete as require
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.services import csv_import
from headwater.testing.toolkit import count_rows, create_group, make_runtime

__all__ = ["run"]

NAME = "csv_import"
GOAL_ROWS_PER_SECOND = 2_000
GROUPS = ("Engineering", "Sales", "Everyone")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rows(ctx: Context) -> int:
    return {"quick": 2_000, "default": 20_000}.get(ctx.mode.name, 100_000)


def _rss() -> int:
    """The resident set of this process now, in bytes."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


def _write(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("login,email,firstName,lastName,department,employeeNumber,groups\n")
        for n in range(count):
            groups = f"{GROUPS[n % 2]};Everyone"
            handle.write(
                f"p{n:07d}@example.com,p{n:07d}@example.com,First{n},Last{n},"
                f"Dept{n % 20},E{n:07d},{groups}\n"
            )
    return path


def run(ctx: Context, rows: int | None = None) -> None:
    count = rows or _rows(ctx)
    report = ctx.report
    report.section(f"csv_import: importing {count:,} people from CSV (SQLite)")
    folder = ctx.data_dir(f"csv-{count}")
    runtime = make_runtime(ctx.databases.sqlite(), folder, secret_key=SECRET_KEY)
    try:
        for name in GROUPS:
            create_group(runtime, name)
        path = _write(folder / "people.csv", count)
        started = time.perf_counter()
        with path.open(newline="", encoding="utf-8") as handle:
            parsed = sum(1 for _ in csv.reader(handle)) - 1
        floor = time.perf_counter() - started
        samples: list[tuple[int, int]] = []
        baseline = _rss()
        started_cpu, started = time.process_time(), time.perf_counter()
        summary = csv_import.import_users(
            runtime.database,
            SYSTEM,
            path,
            progress=lambda _read, done: samples.append((done, _rss())),
        )
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        require("rows read by csv.reader", parsed, count, "rows")
        require("people created by the import", summary.created, count, "people")
        require("people in the directory", count_rows(runtime, t.User), count, "people")
        require("memberships", count_rows(runtime, t.Membership), 2 * count, "memberships")
        rate = count / elapsed
        report.row(
            NAME,
            f"import {count:,} rows",
            f"{elapsed:7.1f} s  {rate:8.0f} rows/s  cpu {cpu:.1f} s "
            f"({1000 * cpu / count:.2f} ms/row)",
            rows=count,
            wall_s=elapsed,
            cpu_s=cpu,
            rows_per_s=rate,
        )
        report.row(NAME, "floor: csv.reader alone", f"{floor:7.2f} s", wall_s=floor)
        tenth = next((rss for done, rss in samples if done >= count // 10), baseline)
        last = samples[-1][1] if samples else baseline
        peak = max((rss for _, rss in samples), default=baseline)
        mib = 2**20
        report.row(
            NAME,
            "resident memory",
            f"start {baseline / mib:.0f} MiB, after a tenth {tenth / mib:.0f} MiB, "
            f"end {last / mib:.0f} MiB, peak {peak / mib:.0f} MiB",
            start_bytes=baseline,
            tenth_bytes=tenth,
            end_bytes=last,
            peak_bytes=peak,
        )
        report.ratio(
            NAME,
            f"rows/s / goal ({GOAL_ROWS_PER_SECOND:,})",
            rate / GOAL_ROWS_PER_SECOND,
            "1.0 or more meets the goal",
        )
        report.ratio(
            NAME,
            "resident memory at the end / after a tenth of the file",
            last / max(tenth, 1),
            "about 1.0: memory does not grow with the file",
        )
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.csv_import", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 rows instead of 20,000")
    parser.add_argument("--rows", type=int, help="rows in the generated file")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)), args.rows)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
