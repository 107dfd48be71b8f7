"""Claim cost against the size of the queue: one worker's claim of 200 keys when 10,000 or
100,000 keys of one app are due at the same instant (what a group assignment enqueues), with
the claim index of migration 0011, ``(not_before, kind DESC)``, and with the index it
replaced (``not_before`` alone) as the baseline, on SQLite and PostgreSQL.

    python -m bench.claims [--keys 10000,100000] [--claims 25]

A claim that walks its index in order reads about its limit of rows whatever the queue holds;
one that must sort costs in proportion to the queue, which makes a drain quadratic. Figures:
median milliseconds per claim and per finish of the claimed keys (``finish_many``, as a drain
finishes them), and the ratio of the claim's cost at the largest queue to the smallest.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

from bench.common import Databases, PostgresUnavailable
from headwater import clock
from headwater.db import leases
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.testing.toolkit import create_app, make_runtime

LIMIT = 200
INDEXES = {
    "claim index (0011)": None,
    "not_before alone (before 0011)": (
        "DROP INDEX ix_reconcile_keys_due",
        "CREATE INDEX ix_reconcile_keys_not_before ON reconcile_keys (not_before)",
    ),
}


def claim_and_finish_ms(
    url: str, work_dir: Path, keys: int, claims: int, index_sql: tuple[str, ...] | None
) -> tuple[float, float]:
    """Median ms of one claim of ``LIMIT`` keys from a queue of ``keys`` due keys, and of
    finishing them (deleting the keys)."""
    runtime = make_runtime(url, work_dir)
    database: Database = runtime.database
    try:
        upgrade(database)
        app_id = create_app(runtime, "Claims")
        with database.engine.begin() as connection:
            for statement in index_sql or ():
                connection.execute(text(statement))
            now = clock.utcnow() - timedelta(seconds=1)
            rows = [
                {
                    "app_id": app_id,
                    "kind": "user",
                    "subject_id": f"usr{n:017d}",
                    "generation": 1,
                    "enqueued_at": now,
                    "not_before": now,
                    "attempts": 0,
                    "observe": False,
                }
                for n in range(keys)
            ]
            connection.execute(insert(t.ReconcileKey), rows)
            if url.startswith("postgresql"):
                connection.execute(text("ANALYZE reconcile_keys"))
            else:
                connection.execute(text("ANALYZE"))
        claims_s, finishes_s = [], []
        for _ in range(claims):
            started = time.perf_counter()
            with database.transaction() as session:
                claimed = leases.claim(session, "bench", limit=LIMIT, lease_seconds=60)
            claims_s.append(time.perf_counter() - started)
            if len(claimed) != LIMIT:
                raise SystemExit(f"claimed {len(claimed)} keys, not {LIMIT}")
            started = time.perf_counter()
            with database.transaction() as session:
                leases.finish_many(session, claimed)
            finishes_s.append(time.perf_counter() - started)
        return statistics.median(claims_s) * 1000, statistics.median(finishes_s) * 1000
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", default="10000,100000", help="queue sizes, comma-separated")
    parser.add_argument("--claims", type=int, default=25, help="claims timed per case")
    args = parser.parse_args()
    sizes = sorted({max(LIMIT * (args.claims + 1), int(n)) for n in args.keys.split(",")})
    with tempfile.TemporaryDirectory() as folder:
        databases = Databases(Path(folder))
        try:
            for kind in ("sqlite", "postgresql"):
                for label, index_sql in INDEXES.items():
                    figures = []
                    for size in sizes:
                        try:
                            url = databases.sqlite() if kind == "sqlite" else databases.postgres()
                        except PostgresUnavailable as exc:
                            print(f"{kind}: skipped ({exc})")
                            break
                        claim, finish = claim_and_finish_ms(
                            url, Path(folder), size, args.claims, index_sql
                        )
                        databases.drop(url)
                        figures.append(claim)
                        print(
                            f"  {kind:10} {label:32} {size:>8,} due keys: claim {claim:7.2f} ms, "
                            f"finish {finish:7.2f} ms"
                        )
                    if len(figures) == len(sizes) > 1:
                        print(
                            f"ratio claims-{kind}: {label}: claim at {sizes[-1]:,} / "
                            f"{sizes[0]:,} keys = {figures[-1] / figures[0]:.2f}x"
                        )
        finally:
            databases.close()


if __name__ == "__main__":
    main()
