"""A large file is streamed: the memory an import needs does not grow with the file.

Two imports of generated files, one ten times the other, measured with tracemalloc (Python's
allocations: rows, ORM objects, the summary); the larger one must peak at about the same. Batches
of 100 rows keep the files small enough for a test (tracemalloc slows everything several times);
the benchmark (``bench/csv_import.py``) measures 100,000 rows with the default batch. Python's
cyclic garbage (each batch's finished session and its objects) is collected after every batch:
the peak is what the import holds, not how long the collector happens to wait (it waits longer
the fewer objects an import makes; the benchmark's resident-set figure shows the whole).
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import csv_import
from headwater.testing.toolkit import count_rows, create_group


def generated(path: Path, start: int, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("login,email,firstName,lastName,department,groups\n")
        for n in range(start, start + count):
            group = "Big" if n % 3 else "Big;Small"
            handle.write(f"s{n:07d}@example.com,s{n:07d}@example.com,S{n},T{n},D{n % 7},{group}\n")
    return path


def _collect(_read: int, _rows: int) -> None:
    gc.collect()


def peak_of(runtime: Runtime, path: Path) -> tuple[int, csv_import.Summary]:
    # Everything alive before the import is left out of the collections after each batch, so
    # each one walks only what the import made, not the whole test process's heap.
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        options = csv_import.Options(batch_size=100)
        summary = csv_import.import_users(
            runtime.database, SYSTEM, path, options, progress=_collect
        )
        return tracemalloc.get_traced_memory()[1], summary
    finally:
        tracemalloc.stop()
        gc.unfreeze()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    create_group(sqlite_runtime, "Big")
    create_group(sqlite_runtime, "Small")
    # A first import warms caches (compiled statements, rules), so both runs compare alike.
    peak_of(sqlite_runtime, generated(tmp_path / "warm.csv", 0, 300))
    small_peak, small = peak_of(sqlite_runtime, generated(tmp_path / "small.csv", 1000, 600))
    large_peak, large = peak_of(sqlite_runtime, generated(tmp_path / "large.csv", 10_000, 6_000))
    assert (small.created, large.created) == (600, 6_000)
    assert count_rows(sqlite_runtime, t.User) == 6_900
    # Ten times the rows, about the same memory: a batch at a time, never the file.
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
