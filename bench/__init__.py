"""Headwater's benchmarks: ``python -m bench.run [--quick] [--full] [--only NAME]``.

Each benchmark prints its figures and ratios against a baseline measured in the same run;
results are recorded in ``docs/benchmarks.md``. They are not timed assertions.
"""

import warnings

# Starlette's TestClient warns that it wraps httpx; the benchmarks use it as documented.
warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
