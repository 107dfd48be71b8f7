"""Retry policy for transient downstream failures: exponential backoff, full jitter, a cap.

Pure: (attempts, what the downstream asked) → how long to wait, or give up and raise a Task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryDecision", "RetryPolicy"]


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 600.0
    #: After this many transient failures in a row the operation becomes a Task.
    max_attempts: int = 15

    def decide(
        self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> RetryDecision:
        """``attempts`` counts failures so far, including this one."""
        if attempts >= self.max_attempts:
            return RetryDecision(False, 0.0)
        draw = (rng or random).random()
        if retry_after is not None:
            # Honour the downstream's wish, spread a little so waiting clients do not stampede.
            return RetryDecision(True, min(retry_after, self.cap * 4) + draw * self.base)
        ceiling = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return RetryDecision(True, ceiling / 2 + draw * ceiling / 2)
