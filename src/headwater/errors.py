"""Errors raised by services; the API turns each into Okta's error object.

    HeadwaterError                 (500, E0000009) never raised on purpose
    ├── InvalidRequest             400 E0000001  a field is missing or wrong
    ├── MalformedRequest           400 E0000003  the body is not valid JSON
    ├── NotFound                   404 E0000007  no such resource
    ├── StatusConflict             403 E0000038  not allowed in the user's current status
    ├── AlreadyActive              403 E0000016  activating an active user
    ├── Unauthenticated            401 E0000011  missing or wrong API token
    ├── Forbidden                  403 E0000006  not allowed
    ├── AlreadyAssigned            409 E0000062  user already assigned to the app
    ├── Conflict                   409 E0000195  the change conflicts with the current state
    └── GroupPushError             400 E0000027  group push bad request

The class docstring is the default summary; ``causes`` name the offending fields.
"""

from __future__ import annotations

__all__ = [
    "AlreadyActive",
    "AlreadyAssigned",
    "Conflict",
    "Forbidden",
    "GroupPushError",
    "HeadwaterError",
    "InvalidRequest",
    "MalformedRequest",
    "NotFound",
    "StatusConflict",
    "Unauthenticated",
]


class HeadwaterError(Exception):
    """Internal Server Error"""

    status = 500
    code = "E0000009"

    def __init__(self, summary: str | None = None, causes: list[str] | None = None) -> None:
        self.summary = summary or (self.__doc__ or "").strip()
        self.causes = causes or []
        super().__init__(self.summary)


class InvalidRequest(HeadwaterError):
    """Api validation failed"""

    status = 400
    code = "E0000001"


class MalformedRequest(HeadwaterError):
    """The request body was not well-formed."""

    status = 400
    code = "E0000003"


class NotFound(HeadwaterError):
    """Not found: Resource not found"""

    status = 404
    code = "E0000007"


class StatusConflict(HeadwaterError):
    """This operation is not allowed in the user's current status."""

    status = 403
    code = "E0000038"


class AlreadyActive(HeadwaterError):
    """Activation failed because the user is already active"""

    status = 403
    code = "E0000016"


class Unauthenticated(HeadwaterError):
    """Invalid token provided"""

    status = 401
    code = "E0000011"


class Forbidden(HeadwaterError):
    """You do not have permission to perform the requested action"""

    status = 403
    code = "E0000006"


class AlreadyAssigned(HeadwaterError):
    """The user is already assigned to the app."""

    status = 409
    code = "E0000062"


class Conflict(HeadwaterError):
    """The request conflicts with the current state of the resource."""

    status = 409
    code = "E0000195"


class GroupPushError(HeadwaterError):
    """Group push bad request"""

    status = 400
    code = "E0000027"
