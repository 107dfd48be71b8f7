"""A throwaway slapd per test session (skipped only outside CI when slapd is not installed),
and a Samba AD domain controller per worker for the Active Directory tests, each test in an
organizational unit of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.testing.samba import SambaDC, samba_missing
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


@pytest.fixture(scope="session")
def samba() -> Iterator[SambaDC]:
    """One AD domain controller per worker (Samba's ports are fixed: each worker's server has
    a loopback address of its own). Fails, never skips, when Samba is missing in CI."""
    problem = samba_missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"Samba's AD DC is required in CI: {problem}")
        pytest.skip(problem)
    with SambaDC() as server:
        yield server


@pytest.fixture
def ad_ou(samba: SambaDC) -> str:
    """A fresh OU (with people, groups and disabled OUs inside) for one test."""
    return samba.new_ou()
