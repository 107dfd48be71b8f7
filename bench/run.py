"""Entry point: ``python -m bench.run [--quick] [--full] [--only NAME] [--json FILE]``.

``--quick`` uses small sizes (the smoke test runs it); the default sizes take a few minutes;
``--full`` adds the 100k cases; ``--runs N`` repeats the provision and push runs (median run
reported); ``--provision-users N`` sets the provision group's size (``--full --only provision
--provision-users 10000`` runs 10k on both databases). Every benchmark prints its figures and
``ratio`` lines. A run that does less work than asked (``IncompleteRun``) stops the benchmarks:
exit status 1, no ratio for it, no JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    api_writes,
    app_import,
    bulk,
    csv_import,
    directory,
    engine,
    expressions,
    isolation,
    mappings,
    provision,
    push,
    rules,
    signin,
    workers,
)
from bench.common import PG_URL, Context, Databases, IncompleteRun, Mode, Report

BENCHMARKS: dict[str, Callable[[Context], None]] = {
    "directory": directory.run,
    "api_writes": api_writes.run,
    "expressions": expressions.run,
    "rules": rules.run,
    "mappings": mappings.run,
    "provision": provision.run,
    "bulk": bulk.run,
    "push": push.run,
    "workers": workers.run,
    "isolation": isolation.run,
    "engine": engine.run,
    "signin": signin.run,
    "csv_import": csv_import.run,
    "app_import": app_import.run,
}


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    size.add_argument("--full", action="store_true", help="add the 100k cases (long)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--runs",
        type=_positive,
        help="repeat the whole provision and push runs (median run reported; default 1)",
    )
    parser.add_argument(
        "--provision-users",
        type=_positive,
        metavar="N",
        help="users in the provision benchmark's group (overrides the mode's size)",
    )
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    mode = Mode.pick(quick=args.quick, full=args.full)
    if args.runs:
        mode = dataclasses.replace(mode, runs=args.runs)
    if args.provision_users:
        mode = dataclasses.replace(mode, provision_users=args.provision_users)
    machine = _machine()
    print(
        f"headwater benchmarks, {mode.name} mode: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}",
        flush=True,
    )
    load = machine["load_average"]
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if load[0] > 1.0:
        print("warning: the machine is busy; wall times will be noisy (see the CPU figures)")
    names = args.only or list(BENCHMARKS)
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        ctx = Context(mode, report, databases, Path(scratch))
        try:
            for name in names:
                began = time.perf_counter()
                BENCHMARKS[name](ctx)
                print(f"  ({name} took {time.perf_counter() - began:.1f} s)", flush=True)
        except IncompleteRun as exc:
            print(f"\nerror: {exc}", file=sys.stderr, flush=True)
            print(
                f"benchmark {name!r} failed: none of its ratios is reported"
                + (f"; {args.json} not written" if args.json is not None else ""),
                file=sys.stderr,
                flush=True,
            )
            return 1
        finally:
            databases.close()
    elapsed = time.perf_counter() - started
    print(f"\nall done in {elapsed:.1f} s ({len(report.ratios)} ratios)", flush=True)
    if args.json is not None:
        meta = {
            "mode": mode.name,
            "benchmarks": names,
            "machine": machine,
            "seconds": elapsed,
            "postgres": PG_URL.rsplit("@", 1)[-1],
            "load_after": os.getloadavg(),
        }
        report.dump(args.json, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
