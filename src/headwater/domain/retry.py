"""Retry policy for transient downstream failures: exponential backoff, equal jitter, a cap.

Pure: (failures so far, what the downstream asked, a jitter draw) → how long to wait, or give
up. Equal jitter waits at least half the backoff, so a burst of failures never retries at once,
and at most the whole of it, so retries spread out (decision 0009).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 600.0
    #: After this many transient failures in a row the operation becomes a Task.
    max_attempts: int = 15

    def delay(self, attempts: int, retry_after: float | None, jitter: float) -> float | None:
        """Seconds to wait before the next try, or ``None`` to give up.

        ``attempts`` counts failures so far, this one included; ``jitter`` is a draw in [0, 1).
        """
        if attempts >= self.max_attempts:
            return None
        if retry_after is not None:
            # Honour the downstream's wish, spread a little so waiting clients do not stampede.
            return min(retry_after, self.cap * 4) + jitter * self.base
        ceiling: float = min(self.cap, self.base * 2.0 ** max(attempts - 1, 0))
        return ceiling / 2 + jitter * ceiling / 2
