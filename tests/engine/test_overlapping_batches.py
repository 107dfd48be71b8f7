"""A worker keeps several batches of one app in flight: the next batch sends while the last one
finishes and is recorded. The batches share the app's connector, its limits and the pass's
listing; one batch failing gives back only its own keys."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.leases import ClaimedKey
from headwater.domain.states import KeyKind, LinkState
from headwater.engine import listing, recorder
from headwater.engine import reconciler as reconciler_module
from headwater.engine.reconciler import Reconciler
from headwater.engine.worker import Worker
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_users,
    make_runtime,
    queued,
    run_async,
)

#: The batch (numbered in the order their reconciles start) a request or a record belongs to.
BATCH: ContextVar[int | None] = ContextVar("BATCH", default=None)
#: Longest a held request waits for what the test expects to happen meanwhile: past it, the
#: request goes on and the test's assertions tell what did not happen.
HOLD_LIMIT = 10.0

Hold = Callable[[httpx.Request, int | None], Awaitable[None]]


@pytest.fixture
def small_batches(any_db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose workers claim 10 keys at a time, two batches of an app at once."""
    rt = make_runtime(any_db_url, tmp_path, worker_batch_size=10, worker_batches_per_app=2)
    yield rt
    rt.close()


class Downstream(httpx.AsyncBaseTransport):
    """The in-process SCIM server behind a transport that tags each request with its batch,
    may hold it (``hold``) and counts the requests in flight at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hold: Hold | None = None) -> None:
        self.inner = inner
        self.hold = hold
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        tag = BATCH.get()
        if tag is None:  # not sent by a batch (the connection test)
            return await self.inner.handle_async_request(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            events.append(("request", tag))
            if self.hold is not None:
                await self.hold(request, tag)
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        """The server outlives the connectors that reach it."""


class SlowGroupReads(Downstream):
    """A group read whose answer takes a while to arrive: another read of the group can be
    answered meanwhile, before either change is written back."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "GET" and "/Groups/" in request.url.path:
            await asyncio.sleep(0.05)
        return response


#: ("request" | "record", batch) in the order they happened.
events: list[tuple[str, int | None]] = []

Before = Callable[[Reconciler, int], Awaitable[None]]


class Batches:
    """Numbers each batch's reconcile (``BATCH``), keeps its keys and counts the batches
    running at once; ``before`` runs at the start of each (it may raise)."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        before: Before | None = None,
        on_record: Callable[[int | None], None] | None = None,
    ) -> None:
        self.keys: dict[int, list[ClaimedKey]] = {}
        self.running = 0
        self.most_running = 0
        events.clear()
        real_reconcile = Reconciler.reconcile_app
        real_record = recorder.record
        batches = self

        async def reconcile_app(
            reconciler: Reconciler,
            reconcile_id: str,
            app_id: str,
            keys: list[ClaimedKey],
            **options: Any,
        ) -> None:
            tag = len(batches.keys) + 1
            batches.keys[tag] = list(keys)
            BATCH.set(tag)
            batches.running += 1
            batches.most_running = max(batches.most_running, batches.running)
            try:
                if before is not None:
                    await before(reconciler, tag)
                await real_reconcile(reconciler, reconcile_id, app_id, keys, **options)
            finally:
                batches.running -= 1

        def record(*args: Any, **kwargs: Any) -> None:
            events.append(("record", BATCH.get()))
            if on_record is not None:
                on_record(BATCH.get())
            real_record(*args, **kwargs)

        monkeypatch.setattr(Reconciler, "reconcile_app", reconcile_app)
        monkeypatch.setattr(recorder, "record", record)

    def subjects(self, tag: int) -> set[str]:
        return {key.subject_id for key in self.keys[tag] if key.kind is KeyKind.USER}


def serve(runtime: Runtime, server: InProcessScim, hold: Hold | None = None) -> Downstream:
    downstream = Downstream(server.transport, hold)
    runtime.connectors.transports[server.origin + "/"] = downstream
    return downstream


def app_with_users(runtime: Runtime, server: InProcessScim, count: int, **settings: Any) -> str:
    group = create_group(runtime, "Everyone")
    create_users(runtime, count, group_ids=[group])
    app_id = create_scim_app(runtime, server.base_url, "Overlapped", **settings)
    assign_group(runtime, app_id, group)
    return app_id


def active_links(runtime: Runtime, app_id: str) -> set[str]:
    with runtime.database.read() as session:
        rows = session.execute(
            select(t.AppUserLink.user_id).where(
                t.AppUserLink.app_id == app_id, t.AppUserLink.state == LinkState.ACTIVE
            )
        )
        return set(rows.scalars())


async def _until(event: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), HOLD_LIMIT)


def test_the_next_batch_sends_before_the_last_one_is_recorded(
    small_batches: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = small_batches
    server = InProcessScim()
    second_sends = asyncio.Event()

    async def hold(_: httpx.Request, tag: int | None) -> None:
        if tag == 2:
            second_sends.set()
        elif tag == 1:
            await _until(second_sends)  # the first batch waits for the second's requests

    serve(runtime, server, hold)
    batches = Batches(monkeypatch)
    # Room for all of a batch's keys at once and then some: the first batch's keys all start
    # (its tail) while its requests are held, so the second batch is claimed then and has
    # slots of the app's left to send through.
    app_id = app_with_users(runtime, server, 20, max_concurrency=12)

    converge(runtime)

    assert ("request", 2) in events, "the second batch never sent while the first was held"
    assert events.index(("request", 2)) < events.index(("record", 1))
    assert batches.most_running == 2
    assert len(active_links(runtime, app_id)) == 20
    assert len(server.scim.by_user_name()) == 20, "no account twice"


def test_the_next_batch_starts_once_half_of_the_last_ones_keys_have_started(
    small_batches: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of an app take turns: the next one is claimed once half of the last one's keys
    have started (it is read and planned while the second half sends), not beside it from the
    start (two batches in step would tail and record together)."""
    runtime = small_batches
    server = InProcessScim()

    async def hold(_: httpx.Request, __: int | None) -> None:
        await asyncio.sleep(0.01)

    serve(runtime, server, hold)
    batches = Batches(monkeypatch)
    app_id = app_with_users(runtime, server, 20, max_concurrency=3)

    converge(runtime)

    assert batches.most_running == 2
    first_of_second = events.index(("request", 2))
    before = events[:first_of_second].count(("request", 1))
    # The first half of the first batch's 10 keys had each sent its look-up before the second
    # batch sent anything.
    assert before >= 5, before
    assert len(active_links(runtime, app_id)) == 20


def test_the_batches_of_an_app_share_its_concurrency(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime(any_db_url, tmp_path, worker_batch_size=10, worker_batches_per_app=4)
    try:
        server = InProcessScim()

        async def hold(_: httpx.Request, __: int | None) -> None:
            await asyncio.sleep(0.01)  # requests long enough to overlap

        downstream = serve(runtime, server, hold)
        batches = Batches(monkeypatch)
        app_id = app_with_users(runtime, server, 60, max_concurrency=3)

        converge(runtime)

        assert batches.most_running >= 2, "the batches never overlapped"
        assert downstream.most_in_flight <= 3
        assert len(active_links(runtime, app_id)) == 60
    finally:
        runtime.close()


def test_a_failed_batch_gives_back_only_its_own_keys(
    small_batches: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch fails as it records (after its keys were sent, once the second batch
    is under way): only its keys go back to the queue, the second batch's are recorded."""
    runtime = small_batches
    server = InProcessScim()
    second_started = threading.Event()

    async def before(_: Reconciler, tag: int) -> None:
        if tag == 2:
            second_started.set()

    def on_record(tag: int | None) -> None:
        if tag == 1:
            assert second_started.wait(30), "the second batch never started"
            raise OverflowError("date value out of range")

    serve(runtime, server)
    batches = Batches(monkeypatch, before, on_record)
    app_id = app_with_users(runtime, server, 20)

    converge(runtime, settled=False)  # the failed batch's keys retry seconds later

    assert batches.most_running == 2
    failed, sent = batches.subjects(1), batches.subjects(2)
    assert len(failed) == 10 and len(sent) == 10
    left = queued(runtime)
    assert {key.subject_id for key in left if key.kind == KeyKind.USER.value} == failed
    assert active_links(runtime, app_id) == sent


def test_batches_wanting_a_listing_at_once_list_the_app_once(
    small_batches: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker starts an app's next batch once the last one's keys have all started, past
    its listing; two batches that start together (as two lanes did before that rule) must
    still list the app once between them."""
    runtime = small_batches
    server = InProcessScim(max_results=5)
    downstream = serve(runtime, server)
    app_id = app_with_users(runtime, server, 30)
    converge(runtime)

    def full_apps(worker: Worker) -> list[str]:
        lanes = Counter(app for app, _ in worker._in_flight.values())
        return [app for app, n in lanes.items() if n >= worker.settings.worker_batches_per_app]

    monkeypatch.setattr(Worker, "_full_apps", full_apps)

    both_want = asyncio.Event()
    wanting = 0
    real_take = listing.Listings.try_take

    async def try_take(listings: listing.Listings, *args: Any) -> listing.Listing | None:
        nonlocal wanting
        wanting += 1
        if wanting == 2:
            both_want.set()
        return await real_take(listings, *args)

    async def hold(request: httpx.Request, _: int | None) -> None:
        if request.method == "GET" and "filter" not in str(request.url.query):
            await _until(both_want)  # the listing's pages wait for the second batch to want one

    monkeypatch.setattr(listing.Listings, "try_take", try_take)
    downstream.hold = hold
    batches = Batches(monkeypatch)
    server.transport.clear()
    with runtime.database.transaction() as session:
        outbox.enqueue_app(session, app_id, observe=True)  # what a full reconcile enqueues

    converge(runtime)

    assert wanting >= 2, "the second batch never wanted a listing"
    assert batches.most_running == 2
    listed = server.transport.requests("GET", resource="Users")
    pages = [sent for sent in listed if "filter" not in sent.query]
    assert len(pages) == 6, "30 accounts in pages of 5, listed once"
    assert server.transport.writes() == []


def test_a_connector_replaced_under_a_running_batch_is_closed_only_after_it(
    small_batches: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker joining changes this one's share of the app's limits: the next batch builds a
    connector with the new share while the last one still sends through the old."""
    runtime = small_batches
    server = InProcessScim()
    first_sends, second_sends = asyncio.Event(), asyncio.Event()

    async def hold(_: httpx.Request, tag: int | None) -> None:
        if tag == 2:
            second_sends.set()
        elif tag == 1:
            first_sends.set()
            await _until(second_sends)  # sends the rest once the second batch has its connector

    async def before(reconciler: Reconciler, tag: int) -> None:
        if tag == 2:
            await _until(first_sends)  # the first batch sends through the connector it has
            reconciler.share = 2

    serve(runtime, server, hold)
    batches = Batches(monkeypatch, before)
    app_id = app_with_users(runtime, server, 20, max_concurrency=10)

    converge(runtime)

    assert events.index(("request", 2)) < events.index(("record", 1))
    assert batches.most_running == 2
    assert len(active_links(runtime, app_id)) == 20


def test_a_connector_and_the_one_replacing_it_change_one_group_in_turn(
    small_batches: Runtime,
) -> None:
    """An app that takes groups only by PUT: a change is a read of the group and a PUT of it
    whole. A batch still sending through a retired connector and one sending through its
    successor take the same lock for the group, so neither PUT undoes the other's change."""
    runtime = small_batches
    server = InProcessScim()
    runtime.connectors.transports[server.origin + "/"] = SlowGroupReads(server.transport)
    app_id = create_scim_app(runtime, server.base_url, "Whole groups", membership_method="PUT")
    alex = server.scim.create_user("alex@example.com")
    sam = server.scim.create_user("sam@example.com")
    group = server.scim.create_group("Team")

    worker = runtime.worker()
    app = reconciler_module._read_app(runtime.database, app_id)
    assert app is not None

    async def two_batches() -> None:
        BATCH.set(1)
        reconciler = worker.reconciler
        try:
            async with reconciler._using(app) as retired:
                reconciler.share = 2  # a worker joined: the next batch builds a new connector
                async with reconciler._using(app) as successor:
                    assert successor is not retired
                    await asyncio.gather(
                        retired.patch_members(group, add=[alex], remove=[]),
                        successor.patch_members(group, add=[sam], remove=[]),
                    )
        finally:
            await worker.aclose()

    run_async(two_batches)

    assert server.scim.member_ids("Team") == {alex, sam}
