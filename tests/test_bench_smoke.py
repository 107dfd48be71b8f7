"""The benchmarks still run: ``python -m bench.run --quick`` exits 0 and prints its ratios.

Not a timed assertion: the figures are whatever this machine gives; only the shape is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RATIO = re.compile(r"^ratio (\w+): .+ = (\d+\.\d+)x", re.MULTILINE)


@pytest.mark.e2e
@pytest.mark.slow
def test_quick_benchmarks_run_and_print_ratios() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ratios = RATIO.findall(result.stdout)
    benchmarks = {name for name, _ in ratios}
    expected = {"directory", "provision", "push"}
    if "workers: skipped" not in result.stdout and "note: skipped" not in result.stdout:
        expected.add("workers")
    assert expected <= benchmarks, output
    assert all(float(value) > 0 for _, value in ratios), output
    assert "all done in" in result.stdout
