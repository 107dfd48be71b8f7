"""Errors a connector raises; their type decides what the reconciler does next.

    DownstreamError                  any failure talking to a downstream app
    ├── TransientError               retry later with backoff (timeouts, resets, 5xx, 429)
    ├── PermanentError               retrying will not help; becomes a Task (most 4xx)
    │   ├── ConflictError            409: the resource already exists (create → look up, link)
    │   └── NotFoundError            404 on a resource we addressed by id
    └── AppUnavailableError          the app as a whole is unusable (401/403, base URL 404,
                                     connection refused): quarantine it and probe

Messages never carry credentials; ``status`` is the downstream HTTP status when there was one.
"""

from __future__ import annotations

__all__ = [
    "AppUnavailableError",
    "ConflictError",
    "DownstreamError",
    "NotFoundError",
    "PermanentError",
    "TransientError",
]


class DownstreamError(Exception):
    """The downstream app call failed."""

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.status = status
        super().__init__(self.message)


class TransientError(DownstreamError):
    """The downstream app failed for now; the call may succeed later."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status)
        #: Seconds the downstream asked us to wait (from ``Retry-After``), if it said.
        self.retry_after = retry_after


class PermanentError(DownstreamError):
    """The downstream app refused the call; sending it again will not help."""


class ConflictError(PermanentError):
    """The downstream app already holds a resource with that unique value."""


class NotFoundError(PermanentError):
    """The downstream app has no resource with that id."""


class AppUnavailableError(DownstreamError):
    """The downstream app is unusable as configured (credentials, address or outage)."""
