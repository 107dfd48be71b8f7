"""What Headwater writes to disk is its owner's alone: the data folder 0700, the SQLite file
(and SQLite's WAL and shared-memory files beside it) and the key file 0600, whatever the umask
lets other files be."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.runtime import Runtime
from headwater.testing.toolkit import create_users


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common default: other files would be readable by everyone (0644, 0755)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_data_folder_database_and_key_are_private(tmp_path: Path) -> None:
    data = tmp_path / "var" / "headwater"
    runtime = Runtime.from_settings(Settings(data_dir=data, database_url=None, secret_key=None))
    try:
        create_users(runtime, 2)  # the database is written: WAL and shared memory exist
        assert _mode(data) == 0o700
        assert _mode(data / "headwater.db") == 0o600
        assert _mode(data / "secret.key") == 0o600
        written = [p for p in data.iterdir() if p.name.startswith("headwater.db-")]
        assert written, "SQLite made no WAL file"
        assert all(_mode(p) == 0o600 for p in written), [(p.name, oct(_mode(p))) for p in written]
    finally:
        runtime.close()


def test_a_configured_sqlite_file_is_created_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    url = f"sqlite:///{shared / 'hw.db'}"
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data", database_url=url))
    try:
        create_users(runtime, 1)
        assert _mode(shared / "hw.db") == 0o600
        assert _mode(shared) == 0o755  # a folder the operator made keeps its mode
    finally:
        runtime.close()
