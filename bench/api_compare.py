"""``api_compare``: this checkout's API against another's, served side by side, phases alternating.

A machine's speed can drift by half within the hour (other tenants, frequency scaling), so two
versions measured one after the other compare the machine as much as the code. Here both are
up at once: one ``headwater serve --no-worker`` per checkout, each on its own database seeded
alike, and the 8 clients of ``bench.api_writes`` measure one, then the other, round after
round, the order reversed each round. Each round's ratio compares two phases seconds apart;
the median of the ratios is the figure to quote.

    git worktree add ../before <commit>
    python -m bench.api_compare ../before [--database sqlite|postgresql] [--op post|get]
        [--rounds 6] [--seconds 4]

The other checkout must use the same migrations (its database is seeded by this one's code).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.api_writes import Call, _rate, _seed
from bench.common import Databases, served_api

__all__ = ["main"]

HERE = Path(__file__).resolve().parents[1]


def _compare(args: argparse.Namespace, scratch: Path, databases: Databases) -> None:
    checkouts = {"this": HERE, "other": Path(args.other).resolve()}
    counter = itertools.count()
    tag = os.getpid()
    with ExitStack() as stack:
        served = {}
        for name, checkout in checkouts.items():
            url = databases.sqlite() if args.database == "sqlite" else databases.postgres()
            data_dir = scratch / name
            data_dir.mkdir()
            token, user_ids = _seed(url, data_dir)
            base, pid = stack.enter_context(served_api(url, data_dir, checkout=checkout))
            served[name] = (base, pid, token, user_ids)

        def call(user_ids: list[str]) -> Call:
            async def post(http: httpx.AsyncClient) -> httpx.Response:
                login = f"cmp{tag}-{next(counter):07d}@example.com"
                profile = {"login": login, "email": login, "firstName": "Cmp", "lastName": "U"}
                return await http.post("/api/v1/users", json={"profile": profile})

            async def get(http: httpx.AsyncClient) -> httpx.Response:
                return await http.get(f"/api/v1/users/{user_ids[next(counter) % len(user_ids)]}")

            return post if args.op == "post" else get

        def phase(name: str, seconds: float) -> tuple[float, float]:
            base, pid, token, user_ids = served[name]
            return asyncio.run(_rate([base], [pid], token, call(user_ids), seconds, 200))

        for name in served:
            phase(name, 2)  # warm both before the clock matters
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in served}
        for round_ in range(args.rounds):
            order = ("this", "other") if round_ % 2 == 0 else ("other", "this")
            for name in order:
                rates[name].append(phase(name, args.seconds))
    what = f"{args.op.upper()} on {args.database}, 8 clients, {args.rounds} x {args.seconds:g} s"
    print(f"== api_compare: {what} ==")
    for name, checkout in checkouts.items():
        runs = rates[name]
        per_second = statistics.median(rate for rate, _ in runs)
        cpu = statistics.median(cpu for _, cpu in runs) * 1e3
        listed = ", ".join(f"{rate:.0f}" for rate, _ in runs)
        print(f"  {name:5s} {per_second:6.0f}/s  server cpu {cpu:.2f} ms  ({listed})  {checkout}")
    ratios = [
        mine[0] / theirs[0] for mine, theirs in zip(rates["this"], rates["other"], strict=True)
    ]
    listed = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"  this / other, round by round: {listed}; median {statistics.median(ratios):.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_compare", description=__doc__)
    parser.add_argument("other", help="the other checkout (a git worktree, say)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--op", choices=("post", "get"), default="post")
    parser.add_argument("--rounds", type=int, default=6, choices=range(1, 101), metavar="1-100")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    args = parser.parse_args(argv)
    if not (Path(args.other) / "src" / "headwater").is_dir():
        parser.error(f"{args.other}: not a Headwater checkout (no src/headwater)")
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            _compare(args, Path(scratch), databases)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
