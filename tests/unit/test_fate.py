"""A key's fate, from tables: the outcome, its error class, the attempts and the retry policy."""

from __future__ import annotations

import pytest

from headwater.domain.fate import (
    ErrorClass,
    Fate,
    Finish,
    Quarantine,
    RequeueAfter,
    Retry,
    Task,
    decide,
)
from headwater.domain.retry import RetryPolicy

POLICY = RetryPolicy(base=1.0, cap=600.0, max_attempts=5)

CASES: list[tuple[str, dict[str, object], Fate]] = [
    ("done", {"error": None, "attempts": 0}, Finish(clear_task=True)),
    ("done after failures", {"error": None, "attempts": 4}, Finish(clear_task=True)),
    ("members refused", {"error": None, "attempts": 0, "refused": True}, Finish(False)),
    ("add in flight", {"error": None, "attempts": 0, "requeue": 1.0}, RequeueAfter(1.0)),
    ("group just made", {"error": None, "attempts": 3, "requeue": 0.0}, RequeueAfter(0.0)),
    ("lost by id", {"error": ErrorClass.LOST, "attempts": 2}, RequeueAfter(0.0)),
    ("refused", {"error": ErrorClass.PERMANENT, "attempts": 0, "message": "400"}, Task("400")),
    (
        "refused after retries",
        {"error": ErrorClass.PERMANENT, "attempts": 3, "message": "409"},
        Task("409"),
    ),
    (
        "app unusable",
        {"error": ErrorClass.UNAVAILABLE, "attempts": 0, "message": "401"},
        Quarantine("401"),
    ),
    (
        "first timeout",
        {"error": ErrorClass.TRANSIENT, "attempts": 0, "message": "t"},
        Retry(0.5, "t"),
    ),
    (
        "third timeout",
        {"error": ErrorClass.TRANSIENT, "attempts": 2, "message": "t"},
        Retry(2.0, "t"),
    ),
    (
        "last timeout",
        {"error": ErrorClass.TRANSIENT, "attempts": 4, "message": "t"},
        Task("gave up after 5 attempts: t"),
    ),
    (
        "429 honoured",
        {"error": ErrorClass.TRANSIENT, "attempts": 0, "message": "429", "retry_after": 30.0},
        Retry(30.0, "429"),
    ),
    (
        "absurd Retry-After capped",
        {"error": ErrorClass.TRANSIENT, "attempts": 0, "message": "429", "retry_after": 1e9},
        Retry(2400.0, "429"),
    ),
    (
        "Retry-After does not outlive the attempts",
        {"error": ErrorClass.TRANSIENT, "attempts": 4, "message": "429", "retry_after": 1.0},
        Task("gave up after 5 attempts: 429"),
    ),
]


@pytest.mark.parametrize(("inputs", "fate"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fate_table(inputs: dict[str, object], fate: Fate) -> None:
    # jitter 0: the lower edge of equal jitter (half the backoff), so delays are exact.
    assert decide(policy=POLICY, jitter=0.0, **inputs) == fate  # type: ignore[arg-type]


@pytest.mark.parametrize("attempts", range(0, 4))
def test_transient_delays_stay_within_equal_jitter(attempts: int) -> None:
    """Equal jitter: between half the backoff and all of it, never more than the cap."""
    ceiling = min(POLICY.cap, POLICY.base * 2**attempts)
    low = decide(error=ErrorClass.TRANSIENT, attempts=attempts, policy=POLICY, jitter=0.0)
    high = decide(error=ErrorClass.TRANSIENT, attempts=attempts, policy=POLICY, jitter=0.999)
    assert isinstance(low, Retry) and isinstance(high, Retry)
    assert low.delay == pytest.approx(ceiling / 2)
    assert ceiling / 2 < high.delay < ceiling


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=60.0, max_attempts=50)
    fate = decide(error=ErrorClass.TRANSIENT, attempts=30, policy=policy, jitter=0.999)
    assert isinstance(fate, Retry)
    assert fate.delay <= 60.0


def test_an_error_outranks_a_requeue() -> None:
    """A plan that asked to look again but failed on the way follows the failure."""
    fate = decide(
        error=ErrorClass.PERMANENT, attempts=0, policy=POLICY, jitter=0.0, requeue=0.0, message="x"
    )
    assert fate == Task("x")
