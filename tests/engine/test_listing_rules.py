"""When a listed entry answers for an account (``engine.listing``), and when listing is worth
its pages: pure rules, no downstream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headwater.db.leases import ClaimedKey
from headwater.domain.downstream import ListedAccount, RemoteAccount
from headwater.domain.plan import AccountRecord
from headwater.domain.states import KeyKind, LinkState
from headwater.engine.listing import Listing, worth_listing
from headwater.engine.snapshot import AccountSnapshot

STARTED = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
LISTING = Listing(STARTED, {"a1": ListedAccount("a1", "taylor@example.com", active=False)})


def _key(enqueued_at: datetime | None) -> ClaimedKey:
    return ClaimedKey("app", KeyKind.USER, "00u1", 1, 0, True, enqueued_at)


def _account(external_id: str, written: datetime | None) -> AccountSnapshot:
    record = AccountRecord(external_id, LinkState.ACTIVE)
    return AccountSnapshot(None, None, (), record, None, (), None, link_written=written)


def test_a_listing_serves_only_keys_enqueued_before_it_began() -> None:
    assert LISTING.serves(_key(STARTED - timedelta(seconds=1)))
    assert LISTING.serves(_key(STARTED))
    assert not LISTING.serves(_key(STARTED + timedelta(seconds=1)))
    assert not LISTING.serves(_key(None))  # not from the outbox (a preview)


def test_an_entry_answers_only_for_an_account_written_before_the_listing_began() -> None:
    before = STARTED - timedelta(minutes=5)
    assert LISTING.answer(_account("a1", before)) == RemoteAccount(
        "a1", "taylor@example.com", active=False
    )
    assert LISTING.answer(_account("a1", STARTED)) is None
    assert LISTING.answer(_account("a1", STARTED + timedelta(seconds=1))) is None
    assert LISTING.answer(_account("a1", None)) is None


def test_an_account_the_listing_did_not_return_is_not_answered() -> None:
    assert LISTING.answer(_account("a2", STARTED - timedelta(minutes=5))) is None


def test_listing_is_worth_it_when_it_costs_fewer_requests_than_reads_by_id() -> None:
    assert worth_listing(3, 3, 100)  # one page against three reads
    assert not worth_listing(1, 1, 100)  # a page against one read: read it
    assert not worth_listing(50, 10_000, 200)  # 50 pages against 50 reads
    assert worth_listing(51, 10_000, 200)
    assert worth_listing(200, 0, 200)  # nothing known yet: one page
