"""The benchmarks still run: ``python -m bench.run --quick --only NAME`` exits 0 and prints
NAME's ratios, for every benchmark; and
a run that does less work than asked fails instead of reporting a ratio.

Not a timed assertion: the figures are whatever this machine gives; only the shape is checked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bench import bulk, claims, engine, provision, push, run
from bench.common import Context, Databases, IncompleteRun, Mode, Report

ROOT = Path(__file__).resolve().parents[1]
RATIO = re.compile(r"^ratio (\w+): .+ = (\d+\.\d+)x", re.MULTILINE)


#: Every benchmark's name; each runs in its own process, so pytest-xdist spreads them.
QUICK_RUNS = sorted(run.BENCHMARKS)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK_RUNS)
def test_each_quick_benchmark_runs_and_prints_ratios(name: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ratios = RATIO.findall(result.stdout)
    assert {benchmark for benchmark, _ in ratios} == {name}, output
    assert all(float(value) > 0 for _, value in ratios), output
    assert "all done in" in result.stdout


# --- A run that does less work than asked fails: no ratio, non-zero exit ------------------------

TINY = Mode(
    "tiny",
    directory_users=(),
    provision_users=20,
    push_members=20,
    worker_users=0,
    worker_counts=(),
    latency_changes=0,
    samples=0,
    runs=1,
    provision_databases=("sqlite",),
)


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Context]:
    databases = Databases(tmp_path)
    yield Context(TINY, Report(), databases, tmp_path)
    databases.close()


def one_short(real: Callable[..., int], *, skip: int = 0) -> Callable[..., int]:
    """``real``, except that from its ``skip + 1``-th call on it counts one item fewer."""
    calls = iter(range(10**6))

    def counted(*args: Any) -> int:
        value = real(*args)
        return value if next(calls) < skip else value - 1

    return counted


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("skip", "who"), [(0, "floor"), (1, "aiohttp floor"), (2, "headwater[sqlite]")]
)
def test_a_provision_run_short_of_accounts_fails_without_a_ratio(
    tiny: Context, monkeypatch: pytest.MonkeyPatch, skip: int, who: str
) -> None:
    monkeypatch.setattr(provision, "scim_total", one_short(provision.scim_total, skip=skip))
    with pytest.raises(IncompleteRun, match=re.escape(f"provision: {who}: ") + r".* 19 accounts"):
        provision.run(tiny)
    assert tiny.report.ratios == []


@pytest.mark.e2e
@pytest.mark.parametrize(("skip", "who"), [(0, "floor"), (1, "headwater[sqlite]")])
def test_a_push_run_short_of_members_fails_without_a_ratio(
    tiny: Context, monkeypatch: pytest.MonkeyPatch, skip: int, who: str
) -> None:
    monkeypatch.setattr(push, "group_members", one_short(push.group_members, skip=skip))
    with pytest.raises(IncompleteRun, match=re.escape(f"push: {who}: ") + r".* 19 group members"):
        push.run(tiny)
    assert tiny.report.ratios == []


def test_bench_run_exits_non_zero_on_an_incomplete_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def measured(ctx: Context) -> None:
        ctx.report.ratio("directory", "a figure", 1.0, "measured before the failure")

    def short(ctx: Context) -> None:
        raise IncompleteRun("provision: floor: the downstream holds 19 accounts, 20 were asked")

    monkeypatch.setitem(run.BENCHMARKS, "directory", measured)
    monkeypatch.setitem(run.BENCHMARKS, "provision", short)
    results = tmp_path / "results.json"
    argv = ["--quick", "--only", "directory", "--only", "provision", "--json", str(results)]
    assert run.main(argv) == 1
    out, err = capsys.readouterr()
    assert "ratio directory" in out
    assert "ratio provision" not in out
    assert "all done" not in out
    assert "error: provision: floor: the downstream holds 19 accounts" in err
    assert "benchmark 'provision' failed" in err
    assert not results.exists()


@pytest.mark.e2e
def test_push_honours_runs(tmp_path: Path) -> None:
    """``--runs 3``: three floor and three Headwater runs, the median one reported."""
    databases = Databases(tmp_path)
    ctx = Context(dataclasses.replace(TINY, runs=3), Report(), databases, tmp_path)
    try:
        push.run(ctx)
    finally:
        databases.close()
    rows = {row["name"]: row for row in ctx.report.rows}
    for name in ("floor (bare httpx, sequential)", "headwater[sqlite]"):
        walls = rows[name]["walls"]
        assert len(walls) == 3
        assert rows[name]["usage"]["wall"] == sorted(walls)[1]
    assert len(ctx.report.ratios) == 3


@pytest.mark.parametrize("index", list(claims.INDEXES))
def test_the_claims_bench_claims_and_finishes_full_batches(tmp_path: Path, index: str) -> None:
    """``bench.claims`` on a small SQLite queue, with each index it compares."""
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    claim, finish = claims.claim_and_finish_ms(url, tmp_path, 600, 2, claims.INDEXES[index])
    assert claim > 0 and finish > 0


@pytest.mark.e2e
def test_the_engine_bench_sends_bulk_creates_first(tiny: Context) -> None:
    """``bench.engine``'s Bulk + create-first mode at tiny size: every account created, no
    look-up, the creates in Bulk requests (far fewer requests than accounts)."""
    url = tiny.databases.sqlite()
    sending = engine.SENDINGS[-1]
    assert sending.bulk and not sending.lookup_before_create
    figures = engine.measure(tiny, url, TINY.provision_users, sending)
    assert 0 < figures["requests_per_account"] < 0.5
    assert figures["cpu_ms_per_account"] > 0
    assert figures["rereconcile_writes"] == 0


@pytest.mark.e2e
def test_the_bulk_bench_creates_first_without_look_ups(tiny: Context) -> None:
    """``bench.bulk``'s create-first run at tiny size, against scim2-server announcing Bulk."""
    result = bulk.run_headwater(tiny, TINY.provision_users, lookup_before_create=False)
    sent = result.requests
    assert sum(n for name, n in sent.items() if name.startswith("POST") and "Bulk" in name) >= 1
    assert not any(name.startswith("GET") and "Users" in name for name in sent), sent
    assert result.usage.wall > 0
