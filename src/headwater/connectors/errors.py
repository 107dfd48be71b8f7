"""Errors a connector raises; their type decides what the reconciler does next.

    DownstreamError                  any failure talking to a downstream app
    ├── TransientError               retry later with backoff (timeouts, resets, 5xx, 429)
    ├── PermanentError               retrying will not help; becomes a Task (most 4xx)
    │   ├── ConflictError            409: the resource already exists (create → look up, link)
    │   └── NotFoundError            404 on a resource we addressed by id
    └── AppUnavailableError          the app as a whole is unusable (401/403, base URL 404,
                                     connection refused): quarantine it and probe

``message`` says what failed in Headwater's words (the request, the status, the policy) and is
what API callers and the console see; ``detail`` is the downstream's own explanation (an error
``detail``, a protocol error's text), scrubbed of credentials and capped by the connector, for
admins' records (Tasks, app users, the system log). ``str(error)`` is both. Neither ever
carries a credential; ``status`` is the downstream HTTP status when there was one.
"""

from __future__ import annotations

__all__ = [
    "AppUnavailableError",
    "ConflictError",
    "DownstreamError",
    "NotFoundError",
    "OperationRefused",
    "PermanentError",
    "TransientError",
]


class DownstreamError(Exception):
    """The downstream app call failed."""

    def __init__(
        self, message: str | None = None, *, status: int | None = None, detail: str = ""
    ) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.status = status
        #: The downstream's own words, scrubbed and capped; never shown to API callers.
        self.detail = detail
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class TransientError(DownstreamError):
    """The downstream app failed for now; the call may succeed later."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        #: Seconds the downstream asked us to wait (from ``Retry-After``), if it said.
        self.retry_after = retry_after


class PermanentError(DownstreamError):
    """The downstream app refused the call; sending it again will not help."""


class ConflictError(PermanentError):
    """The downstream app already holds a resource with that unique value."""


class NotFoundError(PermanentError):
    """The downstream app has no resource with that id."""


class OperationRefused(PermanentError):
    """The downstream app refuses the request itself (its form or operation), not the members
    in it: every part of it is refused alike."""


class AppUnavailableError(DownstreamError):
    """The downstream app is unusable as configured (credentials, address or outage)."""
