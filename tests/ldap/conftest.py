"""A throwaway slapd per test session (skipped only outside CI when slapd is not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.testing.slapd import Slapd, slapd_missing
from headwater.testing.toolkit import IN_CI


def _require_slapd() -> None:
    problem = slapd_missing()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"slapd is required in CI: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """One directory for the session; tests use names of their own."""
    _require_slapd()
    with Slapd() as server:
        yield server


@pytest.fixture
def fresh_slapd() -> Iterator[Slapd]:
    """A directory of its own, for tests that stop and start it."""
    _require_slapd()
    with Slapd() as server:
        yield server


@pytest.fixture
def slapd_for_properties() -> None:
    """Skip or fail (under CI) before any example when slapd is not installed."""
    _require_slapd()
