"""The port the engine needs from a downstream connector, and nothing more.

``connectors.scim.ScimConnector`` and ``connectors.ldap.LdapConnector`` are the adapters behind
it; the read-only connector used by previews wraps any adapter. Operations address accounts
and groups by the downstream's ids; every failure is raised as a
``connectors.errors.DownstreamError`` subclass, whose type decides what happens to the key (see
``domain.fate``).

Abilities only some connectors have are separate ports, checked with ``isinstance`` by the
engine: ``AccountLister`` (every account and group, page by page), ``BatchedLookups`` (many
accounts found in one request) and ``BulkWrites`` (writes gathered into SCIM Bulk requests).
A connector without them is sent one request at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from headwater.domain.capabilities import Capabilities
from headwater.domain.downstream import (
    AccountAttributes,
    GroupState,
    ListedAccount,
    ListedGroup,
    ListingPage,
    RemoteAccount,
    RemoteGroup,
)

__all__ = ["AccountLister", "BatchedLookups", "BulkWrites", "Connector"]


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


@runtime_checkable
class AccountLister(Protocol):
    """A connector that can list every account and group of its app, page by page (app
    imports and the full reconcile's unmanaged-account survey). Separate from ``Connector`` so
    a connector that cannot list need not pretend to; callers check with ``isinstance``."""

    @property
    def listing_page_size(self) -> int:
        """The largest page the app allows (its ``filter.maxResults`` for SCIM)."""
        ...

    async def list_accounts(self, start_index: int, count: int) -> ListingPage[ListedAccount]:
        """Accounts ``start_index`` (1-based) onwards, at most ``count`` of them."""
        ...

    async def list_groups(self, start_index: int, count: int) -> ListingPage[ListedGroup]:
        """Groups ``start_index`` (1-based) onwards, at most ``count`` of them, without their
        members."""
        ...


@runtime_checkable
class BatchedLookups(Protocol):
    """Finds many accounts by userName in one request (a filter joined by ``or``)."""

    @property
    def lookup_batch(self) -> int:
        """userNames one request may ask for; 0 when each is looked up alone."""
        ...

    @property
    def or_filter_refused(self) -> bool:
        """Whether the app refused such a look-up (stored by the engine)."""
        ...

    async def find_users(self, user_names: Sequence[str]) -> dict[str, RemoteAccount | None]:
        """An account or None for each name the answer settles; a name left out is unknown
        and is looked up alone."""
        ...


@runtime_checkable
class BulkWrites(Protocol):
    """Sends the writes made at the same time in Bulk requests, each answered as if alone:
    the engine only lets enough keys run at once to fill them."""

    @property
    def bulk_operations(self) -> int:
        """Operations one Bulk request carries; 0 when writes go one request each."""
        ...

    @property
    def bulk_refused(self) -> bool:
        """Whether the app answered that it takes no Bulk request (stored by the engine)."""
        ...
