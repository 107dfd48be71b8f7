"""What happens to a reconcile key after one pass: its fate, decided as a value.

Pure: the outcome (did it fail, and how), the attempts so far and the retry policy go in; one of
five fates comes out. The recorder only writes the fate it is given, so every path a key can
take is in this file and in its table tests.

    Finish         done; drop the key (and its open Task, unless members were refused)
    RequeueAfter   nothing failed but the work is not over: look again later, no attempt counted
    Retry          a transient failure: try again after a backoff, the attempt counts
    Task           retrying will not help (or has not): an admin decides; the key is finished
    Quarantine     the app as a whole is unusable: hold its work and probe it
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from headwater.domain.retry import RetryPolicy

__all__ = [
    "ErrorClass",
    "Fate",
    "Finish",
    "Quarantine",
    "RequeueAfter",
    "Retry",
    "Task",
    "decide",
]


class ErrorClass(StrEnum):
    """How a failure bears on the key (the engine classifies connector errors into these)."""

    #: Timeouts, resets, 5xx, 429: the same request may succeed later.
    TRANSIENT = "TRANSIENT"
    #: Refused for good (most 4xx, an attribute mapping that cannot be evaluated).
    PERMANENT = "PERMANENT"
    #: A 404 on an account or group addressed by id: the downstream lost it. Once the id is
    #: forgotten, planning again recreates what is still wanted.
    LOST = "LOST"
    #: The app as a whole is unusable (credentials, base URL, outage).
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class Finish:
    #: Clear the key's open Task (kept when the downstream refused some members).
    clear_task: bool = True


@dataclass(frozen=True)
class RequeueAfter:
    seconds: float


@dataclass(frozen=True)
class Retry:
    delay: float
    message: str


@dataclass(frozen=True)
class Task:
    message: str


@dataclass(frozen=True)
class Quarantine:
    reason: str


Fate = Finish | RequeueAfter | Retry | Task | Quarantine


def decide(
    *,
    error: ErrorClass | None,
    attempts: int,
    policy: RetryPolicy,
    jitter: float,
    message: str = "",
    retry_after: float | None = None,
    requeue: float | None = None,
    refused: bool = False,
    cap: float | None = None,
) -> Fate:
    """The fate of one key.

    ``attempts``: failures recorded before this pass; ``jitter``: a draw in [0, 1) spreading
    retries; ``retry_after``: what the downstream asked for; ``requeue``: the plan asked to look
    again (a membership add in flight, a group just created); ``refused``: the downstream refused
    some members while the rest went through; ``cap``: no retry may wait longer (a leaving
    account's offboarding deadline).
    """
    match error:
        case None:
            if requeue is not None:
                return RequeueAfter(requeue)
            return Finish(clear_task=not refused)
        case ErrorClass.LOST:
            return RequeueAfter(0.0)
        case ErrorClass.UNAVAILABLE:
            return Quarantine(message)
        case ErrorClass.PERMANENT:
            return Task(message)
        case ErrorClass.TRANSIENT:
            failures = attempts + 1
            delay = policy.delay(failures, retry_after, jitter)
            if delay is None:
                return Task(f"gave up after {failures} attempts: {message}")
            if cap is not None:
                delay = min(delay, max(cap, 0.0) + 1.0)
            return Retry(delay, message)
