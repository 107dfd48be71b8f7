"""What Headwater sends to and reads back from a downstream app, free of any wire format.

The planner speaks these types; each connector translates them to its protocol (SCIM today).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = [
    "AccountAttributes",
    "GroupState",
    "ListedAccount",
    "ListedGroup",
    "ListingPage",
    "RemoteAccount",
    "RemoteGroup",
]

T = TypeVar("T")


@dataclass(frozen=True)
class AccountAttributes:
    """The mapped attributes of one downstream account (the app profile, ready to send)."""

    user_name: str
    #: The directory user id, sent as the SCIM ``externalId`` so the downstream can trace it back.
    external_id: str
    active: bool = True
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    title: str | None = None
    department: str | None = None
    employee_number: str | None = None
    #: Manager as the downstream id of the manager's account, when known.
    manager_id: str | None = None
    #: Attributes outside the core and enterprise schemas, sent as-is.
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A plain, stable dict of every attribute (used for change detection and storage)."""
        return {
            "userName": self.user_name,
            "externalId": self.external_id,
            "active": self.active,
            "givenName": self.given_name,
            "familyName": self.family_name,
            "displayName": self.display_name,
            "email": self.email,
            "title": self.title,
            "department": self.department,
            "employeeNumber": self.employee_number,
            "managerId": self.manager_id,
            "extra": dict(sorted(self.extra.items())),
        }


@dataclass(frozen=True)
class RemoteAccount:
    """A downstream account as the downstream reports it."""

    id: str
    user_name: str
    active: bool


@dataclass(frozen=True)
class RemoteGroup:
    """A downstream group as the downstream reports it.

    ``member_ids`` is ``None`` when the downstream did not say (some apps never return members),
    which is not the same as an empty group.
    """

    id: str
    display_name: str
    member_ids: frozenset[str] | None


@dataclass(frozen=True)
class GroupState:
    """A pushed group as Headwater wants it whole: sent along with membership changes so an
    app that takes groups only by PUT, and hides their members, can still be given them."""

    display_name: str
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class ListedAccount:
    """A downstream account as a listing reports it, with what matching can use: the
    attributes an app import compares with the directory."""

    id: str
    user_name: str
    active: bool
    external_id: str | None = None
    email: str | None = None
    employee_number: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class ListedGroup:
    """A downstream group as a listing reports it (members are not read)."""

    id: str
    display_name: str


@dataclass(frozen=True)
class ListingPage(Generic[T]):
    """One page of a paged listing: its items and the total the app announced (None when it
    did not say)."""

    items: tuple[T, ...]
    total: int | None
