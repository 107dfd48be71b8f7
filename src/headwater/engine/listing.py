"""Paged listings of an app, and the one listing of its accounts a full reconcile shares.

A full reconcile used to read every linked account back with its own ``get_user``: a request
per account. Where the connector can list (``ports.AccountLister``) and the app allows it
(``listReads``), the first batch of the pass that has enough accounts to read lists the whole
app once instead, page by page; every later batch of the pass, and the pass's survey of
unmanaged accounts, use that listing (``Listings``). An account the listing cannot answer for
is read alone, as before.

A listed entry answers for an account only when it cannot be older than what it stands for:

- the listing began after the key was enqueued (a reconcile asked for after a change made by
  hand downstream is never answered by a listing read before it);
- Headwater last wrote the account's link before the listing began (an account it created,
  changed or deactivated since is read alone);
- the listing returned the account (one it did not return, deleted by hand or skipped because
  the app's list moved between pages, is read alone: a 404 then reads as lost).

A listing that fails leaves every account to its own read. The listing holds one
``ListedAccount`` per account of the app (what the planner compares, and what the survey
records of an unmanaged account): memory bounded by the app's size, one app's listing per
worker, kept no longer than ``HOLD_SECONDS`` and dropped once the pass's survey has used it.
A worker runs several batches of one app at once: while one of them lists the app, the others
that want a listing wait for that one instead of listing the app again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.connectors.errors import DownstreamError
from headwater.db import tables as t
from headwater.db.leases import ClaimedKey
from headwater.domain.downstream import ListedAccount, ListingPage, RemoteAccount
from headwater.domain.states import KeyKind, LinkState
from headwater.engine.ports import AccountLister, Connector
from headwater.engine.snapshot import AccountSnapshot, AppSnapshot

__all__ = [
    "HOLD_SECONDS",
    "Listing",
    "Listings",
    "TooLong",
    "list_app",
    "pass_left",
    "read_pages",
    "worth_listing",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Longest a listing is kept for later batches: the memory it holds is given back by then, and
#: a pass that runs longer lists again if enough of it is left.
HOLD_SECONDS = 600.0


async def read_pages(
    fetch: Callable[[int, int], Awaitable[ListingPage[T]]],
    size: int,
    concurrency: int,
    start: int,
    total: int | None,
    store: Callable[[list[T], int, int | None], Awaitable[None]],
) -> None:
    """Read pages from ``start`` on: the first alone (it tells the total and the page size the
    app really serves), then ``concurrency`` pages at a time; ``store`` gets each wave's items
    with the next ``startIndex`` and the total."""
    step = size
    previous: object = None
    if total is None or start == 1:
        first = await fetch(start, size)
        total = first.total
        if first.items and len(first.items) < size and (total or 0) > len(first.items):
            step = len(first.items)  # the app serves smaller pages than asked
        start += len(first.items)
        previous = getattr(first.items[0], "id", None) if first.items else None
        await store(list(first.items), start, total)
        if not first.items or (total is None and len(first.items) < size):
            return
    while total is None or start <= total:
        if total is None:
            page = await fetch(start, step)
            head = getattr(page.items[0], "id", None) if page.items else None
            if head is not None and head == previous:
                return  # the app ignores startIndex: the same page again would never end
            previous = head
            start += len(page.items)
            await store(list(page.items), start, total)
            if len(page.items) < step:
                return
            continue
        starts = [s for s in range(start, total + 1, step)][: max(1, concurrency)]
        pages = await asyncio.gather(*(fetch(s, step) for s in starts))
        items = [item for page in pages for item in page.items]
        start = starts[-1] + step
        await store(items, start, total)
        if not pages[-1].items:
            return  # the app listed fewer than it announced


@dataclass(frozen=True)
class Listing:
    """Every account one listing of the app returned, by downstream id."""

    #: When the first page was asked for: nothing written downstream before then is missing.
    started: datetime
    accounts: Mapping[str, ListedAccount]

    def serves(self, key: ClaimedKey) -> bool:
        """Whether the listing was read after ``key`` asked for a read."""
        return key.enqueued_at is not None and key.enqueued_at <= self.started

    def answer(self, snap: AccountSnapshot) -> RemoteAccount | None:
        """The account as listed, or None when only its own read can tell (not listed, or its
        link written since the listing began)."""
        record = snap.record
        if record is None or not record.external_id:
            return None
        written = snap.link_written
        if written is None or written >= self.started:
            return None
        listed = self.accounts.get(record.external_id)
        if listed is None:
            return None
        return RemoteAccount(listed.id, listed.user_name, listed.active)


class TooLong(Exception):
    """The app announced more accounts than the listing was worth reading."""


async def list_app(
    app: AppSnapshot, lister: AccountLister, most_pages: int | None = None
) -> Listing:
    """List every account of the app; the connector's errors are raised, and ``TooLong``
    when the first page announces more than ``most_pages`` pages."""
    started = clock.utcnow()
    accounts: dict[str, ListedAccount] = {}
    size = lister.listing_page_size

    async def keep(items: list[ListedAccount], _next: int, total: int | None) -> None:
        served = len(items) if 0 < len(items) < size else size
        if most_pages is not None and not accounts and -(-(total or 0) // served) > most_pages:
            raise TooLong(f"{total} accounts")
        for item in items:
            accounts[item.id] = item

    await read_pages(
        lister.list_accounts,
        size,
        app.settings.max_concurrency,
        1,
        None,
        keep,
    )
    return Listing(started, accounts)


def worth_listing(wanted: int, accounts: int, page_size: int) -> bool:
    """Whether ``wanted`` reads by id cost more requests than listing an app of about
    ``accounts`` accounts in pages of ``page_size``."""
    pages = max(1, -(-accounts // max(1, page_size)))
    return wanted > pages


class Listings:
    """The listing each app's pass shares, held by one worker's reconciler."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[Connector, Listing]] = {}
        #: Apps whose listing failed, and when: their accounts are read alone for a while.
        self._failed: dict[str, datetime] = {}
        #: Listings under way, by app: a batch wanting one meanwhile waits for it.
        self._taking: dict[str, tuple[Connector, asyncio.Future[Listing | None]]] = {}

    def held(self, app: AppSnapshot, connector: Connector) -> Listing | None:
        """The app's listing, while it is young enough and was read through this connector
        (a changed connection may reach another app)."""
        self.expire()
        entry = self._held.get(app.id)
        if entry is None or entry[0] is not connector:
            return None
        return entry[1]

    def lists(self, app: AppSnapshot, connector: Connector) -> bool:
        """Whether the app's accounts may be read from a listing (not while a failed one is
        remembered)."""
        self.expire()
        return (
            app.settings.list_reads
            and isinstance(connector, AccountLister)
            and app.id not in self._failed
        )

    async def try_take(self, app: AppSnapshot, connector: Connector, wanted: int) -> Listing | None:
        """List the app to read back ``wanted`` accounts, and keep the listing. A listing that
        fails, or that the app announces longer than ``wanted`` reads (it holds many more
        accounts than Headwater knew of: given up after its first page), is not tried again
        for a while, and the accounts are read alone (whatever stops the app shows on those
        reads)."""
        assert isinstance(connector, AccountLister)
        taking = self._taking.get(app.id)
        if taking is not None and taking[0] is connector:
            return await asyncio.shield(taking[1])
        future: asyncio.Future[Listing | None] = asyncio.get_running_loop().create_future()
        self._taking[app.id] = (connector, future)
        listing: Listing | None = None
        try:
            listing = await list_app(app, connector, most_pages=wanted - 1)
        except (TooLong, DownstreamError) as exc:
            log.warning("listing app %s stopped (%s); its accounts are read alone", app.id, exc)
            self._failed[app.id] = clock.utcnow()
            self._held.pop(app.id, None)
        else:
            self._held[app.id] = (connector, listing)
        finally:
            # Those waiting read alone if this listing ended any other way (cancelled).
            future.set_result(listing)
            if app.id in self._taking and self._taking[app.id][1] is future:
                del self._taking[app.id]
        return listing

    def drop(self, app_id: str) -> None:
        self._held.pop(app_id, None)

    def expire(self) -> None:
        """Forget listings and failures older than ``HOLD_SECONDS``."""
        oldest = clock.utcnow() - timedelta(seconds=HOLD_SECONDS)
        for app_id in [a for a, (_, listing) in self._held.items() if listing.started < oldest]:
            del self._held[app_id]
        for app_id in [a for a, when in self._failed.items() if when < oldest]:
            del self._failed[app_id]


def pass_left(session: Session, app_id: str, since: datetime | None) -> tuple[int, int]:
    """How many observing account keys of the app wait in the outbox (enqueued after
    ``since``, when given), and about how many accounts a listing of the app returns (those
    Headwater links, and the unmanaged ones its surveys found)."""
    key = t.ReconcileKey
    waiting = select(func.count()).where(
        key.app_id == app_id, key.kind == KeyKind.USER.value, key.observe.is_(True)
    )
    if since is not None:
        waiting = waiting.where(key.enqueued_at > since)
    link = t.AppUserLink
    linked = select(func.count()).where(
        link.app_id == app_id, link.external_id.is_not(None), link.state != LinkState.DELETED
    )
    unmanaged = select(func.count()).where(t.UnmanagedAccount.app_id == app_id)
    return (
        int(session.execute(waiting).scalar_one()),
        int(session.execute(linked).scalar_one()) + int(session.execute(unmanaged).scalar_one()),
    )
