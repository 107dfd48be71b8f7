"""The port the engine needs from a downstream connector, and nothing more.

``connectors.scim.ScimConnector`` is the adapter behind it today; the read-only connector used
by previews wraps any adapter. Operations address accounts and groups by the downstream's ids;
every failure is raised as a ``connectors.errors.DownstreamError`` subclass, whose type decides
what happens to the key (see ``domain.fate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from headwater.domain.capabilities import Capabilities
from headwater.domain.downstream import AccountAttributes, GroupState, RemoteAccount, RemoteGroup

__all__ = ["Connector"]


@runtime_checkable
class Connector(Protocol):
    @property
    def patch_refused(self) -> bool:
        """Whether the app answered 501 to a PATCH and a PUT did the change (stored by the
        engine, so later passes go straight to PUT)."""
        ...

    async def test_connection(self) -> Capabilities:
        """Raise ``AppUnavailableError`` with a reason unless the app is reachable and the
        credentials are accepted; return what the app announces of itself."""

    # accounts
    async def find_user(self, user_name: str) -> RemoteAccount | None: ...
    async def get_user(self, id: str) -> RemoteAccount | None: ...
    async def create_user(self, attrs: AccountAttributes) -> RemoteAccount: ...
    async def replace_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount: ...
    async def patch_user(self, id: str, attrs: AccountAttributes) -> RemoteAccount | None: ...
    async def set_active(self, id: str, active: bool) -> None: ...
    async def delete_user(self, id: str) -> None: ...

    # groups
    async def find_group(self, display_name: str) -> RemoteGroup | None: ...
    async def get_group(self, id: str) -> RemoteGroup | None: ...
    async def has_member(self, id: str, member_id: str) -> bool | None:
        """Whether the account is in the group, for apps that hide members on read; None
        when the app offers no way to tell."""

    async def groups_of(self, member_id: str) -> frozenset[str] | None:
        """The groups the account is in, read from the account; None when the app offers no
        such read."""

    async def create_group(self, display_name: str) -> RemoteGroup: ...
    async def rename_group(self, id: str, display_name: str) -> None: ...
    async def delete_group(self, id: str) -> None: ...

    # memberships
    async def patch_members(
        self,
        id: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        whole: GroupState | None = None,
    ) -> int:
        """Add and remove in the form and batches the app accepts; returns the requests sent.
        ``whole`` is the group as wanted after the change, for apps that take only that."""
        ...

    async def remove_members(
        self, id: str, member_ids: Sequence[str], *, whole: GroupState | None = None
    ) -> None:
        """Take members out; a group that is gone holds nobody."""

    async def replace_members(
        self,
        id: str,
        display_name: str,
        member_ids: Sequence[str],
        *,
        recorded: Sequence[str] = (),
    ) -> int:
        """Make the group hold ``member_ids`` in a way the app allows; ``recorded`` are the
        members pushed before (for apps that refuse a whole replace)."""
        ...

    async def aclose(self) -> None: ...
