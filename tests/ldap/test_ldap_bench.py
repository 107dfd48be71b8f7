"""The LDAP push benchmark runs end to end on a few entries, and both its floors send what
they say they send (the figures themselves are the benchmark's, not a test's)."""

from __future__ import annotations

import pytest
from bench import ldap as bench_ldap

from headwater.testing.slapd import slapd_missing
from headwater.testing.toolkit import IN_CI


@pytest.fixture(autouse=True)
def _slapd_installed() -> None:
    problem = slapd_missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"slapd is required in CI: {problem}")
        pytest.skip(problem)


def test_the_writes_floor_sends_only_writes() -> None:
    took, counts = bench_ldap.floor_seconds(25, 10)
    assert took > 0
    assert counts == {"add": 26, "modify": 3}


def test_the_linking_floor_looks_up_each_hundred_names_and_reads_ids_back() -> None:
    took, counts = bench_ldap.floor_seconds(150, 100, linking=True)
    assert took > 0
    assert counts == {"search": 2, "add": 151, "modify": 2}


def test_the_linking_floor_on_several_connections_sends_the_same_requests() -> None:
    took, counts = bench_ldap.floor_seconds(350, 100, linking=True, connections=3)
    assert took > 0
    assert counts == {"search": 4, "add": 351, "modify": 4}


def test_headwater_converges_the_same_directory() -> None:
    took, counts = bench_ldap.engine_seconds(25, 10, 2)
    assert took > 0
    assert counts["add"] == 26  # every entry and the group, none twice
    assert counts["modify"] == 3
