"""The reconciler: claimed keys in, downstream converged and outcomes recorded.

For each app in a batch, in order:

1. **load** what the planner needs (one short read transaction, set-based queries);
2. **read back** the downstream where asked (full reconcile, push now): a full reconcile's
   accounts from one listing of the app shared by the pass, where it can (``listing``);
3. **plan** with pure functions (``domain.plan``);
4. **guard and intents** (one short write transaction): the mass-change guard's verdict and the
   DEPROVISIONING marks become facts, and the accounts are planned again with them; pushed
   groups are planned again with the members still admitted, whose adds are recorded pending;
5. **send** the operations through the connector, each key's in order, keys in parallel within
   the app's limits (the accounts to create looked up in batches first, and writes gathered
   into Bulk requests, where the connector and the app can);
6. **decide** each key's fate (``domain.fate``) and **record** everything (one short write
   transaction).

No transaction is open while a request is in flight. Previews run steps 1 to 4 without writing
(``preview``), so the plan they show is the plan that is sent for the same state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import ParamSpec, TypeVar

from headwater import clock
from headwater.config import Settings
from headwater.connectors.errors import AppUnavailableError, DownstreamError
from headwater.db import leases
from headwater.db.engine import Database
from headwater.domain import operations as ops
from headwater.domain.connection import ConnectionInfo
from headwater.domain.fate import ErrorClass, Fate, decide
from headwater.domain.mapping import MappingError
from headwater.domain.retry import RetryPolicy
from headwater.domain.states import AppStatus, KeyKind
from headwater.engine import (
    capabilities,
    guard,
    imports,
    intents,
    listing,
    observe,
    quarantine,
    recorder,
    snapshot,
    trail,
    unmanaged,
)
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.executor import MembershipResult, execute, prefetch
from headwater.engine.failures import classify, retry_after
from headwater.engine.limits import AppLimits
from headwater.engine.metrics import Metrics
from headwater.engine.ports import AccountLister, BatchedLookups, BulkWrites, Connector
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import AccountWork, Batch, Outcome, PushWork, Work
from headwater.engine.work import load as load_work

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class Reconciler:
    """Reconciles batches of claimed keys for one worker."""

    def __init__(
        self,
        database: Database,
        connectors: ConnectorFactory,
        settings: Settings,
        metrics: Metrics,
        *,
        policy: RetryPolicy | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.database = database
        self.connectors = connectors
        self.metrics = metrics
        self.policy = policy or RetryPolicy(base=settings.retry_base_seconds)
        self.jitter = jitter
        self._connectors: dict[str, tuple[tuple[object, ...], Connector]] = {}
        #: Batches using each connector (by ``id``): one replaced while a batch of its app
        #: still sends through it is retired, and closed when the last such batch ends.
        self._users: dict[int, int] = {}
        self._retired: dict[int, Connector] = {}
        #: Each app's group locks, handed to every connector built for it: a batch sending
        #: through a retired connector and one sending through its successor take the same.
        self._group_locks: dict[str, dict[str, asyncio.Lock]] = {}
        self.limits: dict[str, AppLimits] = {}
        #: The listing of each app's accounts its full reconcile shares.
        self.listings = listing.Listings()
        #: Live workers sharing each app's limits (kept current by the worker loop).
        self.share = 1

    async def aclose(self) -> None:
        connectors = [c for _, c in self._connectors.values()] + list(self._retired.values())
        self._connectors.clear()
        self._retired.clear()
        for connector in connectors:
            await connector.aclose()

    async def _db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Database work runs in a thread, so the event loop keeps sending meanwhile."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # --- connectors ---------------------------------------------------------------------------

    def _limits_for(self, app: AppSnapshot) -> AppLimits:
        settings = app.settings
        concurrency = max(1, math.ceil(settings.max_concurrency / self.share))
        rate = settings.rate_limit_per_second / self.share
        limits = self.limits.get(app.id)
        if limits is None or (limits.concurrency, limits.rate) != (concurrency, rate):
            limits = self.limits[app.id] = AppLimits(concurrency, rate)
        return limits

    async def _connector(self, app: AppSnapshot) -> Connector:
        """The app's connector, kept across batches while its connection is unchanged (and
        its limits: a new share of them builds a new connector)."""
        limits = self._limits_for(app)
        fingerprint = (
            app.base_url,
            app.auth_scheme,
            app.connection_updated,
            app.settings,
            app.capabilities,
            id(limits),
        )
        cached = self._connectors.get(app.id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        info = ConnectionInfo(
            app.id, app.base_url or "", app.auth_scheme or "NONE", app.secret_encrypted
        )
        locks = self._group_locks.setdefault(app.id, {})
        built = self.connectors.build(info, app.settings, limits, app.capabilities, locks)
        # Replaced before anything is awaited, so a batch of the app starting meanwhile
        # neither builds one more nor closes this one twice.
        self._connectors[app.id] = (fingerprint, built)
        if cached is not None:
            old = cached[1]
            if self._users.get(id(old)):
                self._retired[id(old)] = old  # another batch still sends through it
            else:
                await old.aclose()
        return built

    @asynccontextmanager
    async def _using(self, app: AppSnapshot) -> AsyncIterator[Connector]:
        """The app's connector for one batch: not closed under it if a batch of the app
        started later replaces it."""
        connector = await self._connector(app)
        key = id(connector)
        self._users[key] = self._users.get(key, 0) + 1
        try:
            yield connector
        finally:
            left = self._users.pop(key) - 1
            if left:
                self._users[key] = left
            else:
                retired = self._retired.pop(key, None)
                if retired is not None:
                    await retired.aclose()

    # --- entry point --------------------------------------------------------------------------

    async def reconcile_app(
        self,
        reconcile_id: str,
        app_id: str,
        keys: list[leases.ClaimedKey],
        *,
        tail: Callable[[], None] | None = None,
    ) -> None:
        """Reconcile one app's claimed keys (the worker runs each batch in a lane); imports and
        unmanaged accounts have keys of their own kinds, run beside the accounts'. ``tail`` is
        called once half of the batch's keys have started sending: the worker may then claim
        the app's next batch, which is read and planned while the second half sends."""
        database = self.database
        claimed = keys
        app = await self._db(_read_app, database, app_id)
        if app is None or app.status != AppStatus.ACTIVE or not app.connection_enabled:
            # Nothing to send; activating the app or its connection enqueues every key again.
            # An import cannot wait for that: it fails, saying why.
            await self._db(imports.abandon, database, keys, "the app or its connection is inactive")
            await self._db(recorder.finish_all, database, keys)
            return
        async with self._using(app) as connector:
            if app.quarantined and not await self._probe(app, connector, keys):
                return
            strays = [k for k in keys if k.kind is KeyKind.UNMANAGED]
            if strays:
                await unmanaged.run_stray_keys(database, app, connector, strays)
            keys = [k for k in keys if k.kind in (KeyKind.USER, KeyKind.PUSH)]
            if keys:
                await self._reconcile_keys(reconcile_id, app, connector, keys, tail)
            # Imports last: they read the whole app, and the other keys need not wait for it.
            import_keys = [k for k in claimed if k.kind is KeyKind.IMPORT]
            if import_keys:
                await imports.run_import_keys(database, app, connector, import_keys, self.listings)

    async def _reconcile_keys(
        self,
        reconcile_id: str,
        app: AppSnapshot,
        connector: Connector,
        keys: list[leases.ClaimedKey],
        tail: Callable[[], None] | None = None,
    ) -> None:
        """The six steps for the account and push keys of one app."""
        database = self.database
        batch = await self._db(_load, database, app, keys)
        if batch.gone:
            await self._db(recorder.finish_all, database, batch.gone)
        try:
            listed = await self._listing(app, connector, batch)
            await observe.read_back(app, connector, batch.accounts, batch.pushes, listed)
        except AppUnavailableError as exc:
            self.listings.drop(app.id)
            await self._db(_quarantine, database, app, keys, str(exc))
            return
        batch.plan_accounts(app.settings)
        await self._db(self._guard_and_mark, app, batch)
        batch.plan_pushes(app.settings)
        await self._db(self._admit_and_record_pending, app, batch)
        outcomes = await self._send(app, connector, batch, tail)
        learned = _learned(app, connector)
        if learned:
            await self._db(_learn, database, app, learned)
        fates = [(outcome, self._fate(outcome)) for outcome in outcomes]
        await self._db(recorder.record, database, app, fates)
        for outcome, fate in fates:
            trail.log_outcome(reconcile_id, outcome, fate)
        limits = self.limits.get(app.id)
        if limits is not None and limits.failing():
            # Most recent calls failed: stop hammering; the keys already carry their backoff.
            limits.reset()
            self.listings.drop(app.id)
            await self._db(_quarantine, database, app, [], "most recent requests failed")

    async def _listing(
        self, app: AppSnapshot, connector: Connector, batch: Batch
    ) -> listing.Listing | None:
        """The listing this batch's accounts are read back from: the one the pass holds, or
        a new one when the accounts it cannot answer for (this batch's, and those still
        waiting in the outbox) would cost more reads alone than the listing's pages."""
        listings = self.listings
        if not listings.lists(app, connector):
            return None
        held = listings.held(app, connector)
        reads = [
            w
            for w in batch.accounts
            if w.key.observe and w.snapshot.record is not None and w.snapshot.record.external_id
        ]
        unserved = [w for w in reads if held is None or not held.serves(w.key)]
        if not unserved:
            return held
        since = held.started if held is not None else None
        waiting, accounts = await self._db(_pass_left, self.database, app.id, since)
        assert isinstance(connector, AccountLister)
        wanted = len(unserved) + waiting
        if not listing.worth_listing(wanted, accounts, connector.listing_page_size):
            return held
        return await listings.try_take(app, connector, wanted)

    async def _probe(
        self, app: AppSnapshot, connector: Connector, keys: list[leases.ClaimedKey]
    ) -> bool:
        """A quarantined app: hold its keys until the probe time, then test the connection."""
        now = clock.utcnow()
        if app.next_probe is not None and clock.as_utc(app.next_probe) > now:
            delay = (clock.as_utc(app.next_probe) - now).total_seconds()
            await self._db(_hold, self.database, keys, delay)
            return False
        try:
            await connector.test_connection()
        except DownstreamError as exc:
            await self._db(_quarantine, self.database, app, keys, str(exc))
            return False
        await self._db(_leave_quarantine, self.database, app)
        return True

    # --- steps --------------------------------------------------------------------------------

    def _guard_and_mark(self, app: AppSnapshot, batch: Batch) -> None:
        """The guard's verdict and the DEPROVISIONING marks, as facts; then plan again."""
        leaving = batch.leaving()
        if not leaving and not batch.staying():
            return
        with self.database.transaction() as session:
            blocked = guard.screen(
                session,
                app,
                [w.key.subject_id for w in leaving],
                [w.key.subject_id for w in batch.staying()],
            )
            admitted = [w for w in leaving if w.key.subject_id not in blocked]
            fresh = (
                intents.mark_deprovisioning(session, app.id, [w.key.subject_id for w in admitted])
                if admitted
                else {}
            )
        batch.hold(blocked)
        for work in admitted:
            # Memberships as they stand under the mark: what the removals must cover.
            memberships = tuple(fresh.get(work.key.subject_id, ()))
            work.snapshot = replace(work.snapshot, memberships=memberships)
        if leaving:
            batch.plan_accounts(app.settings)

    def _admit_and_record_pending(self, app: AppSnapshot, batch: Batch) -> None:
        """Members may be added only while their account stays active: read that under a lock,
        plan the pushes again with it, and record their adds pending, all in one transaction."""
        candidates = {
            m[0]
            for work in batch.pushes
            if work.plan is not None
            for op in intents.adds_of(work.plan)
            for m in op.members
        }
        if not candidates:
            return
        with self.database.transaction() as session:
            admitted = intents.admitted_members(session, app.id, candidates)
            for work in batch.pushes:
                if work.plan is not None and intents.adds_of(work.plan):
                    work.admitted = admitted
            batch.plan_pushes(app.settings)
            for work in batch.pushes:
                if work.plan is not None:
                    intents.record_pending(session, work.plan)

    async def _send(
        self,
        app: AppSnapshot,
        connector: Connector,
        batch: Batch,
        tail: Callable[[], None] | None = None,
    ) -> list[Outcome]:
        """Send each key's operations in order; keys run in parallel within the app's limit.
        Once the app is found unavailable, nothing more is sent to it. ``tail`` is called
        when half of the keys have started (or at once, when there is nothing to send)."""
        unavailable = asyncio.Event()
        outcomes = [_outcome_before_sending(work) for work in batch.items]
        creating = [
            op.attributes.user_name
            for outcome in outcomes
            if outcome.error is None and outcome.work.plan is not None
            for op in outcome.work.plan.operations
            if isinstance(op, ops.CreateAccount)
        ]
        known = await prefetch(connector, creating, app.settings) if creating else {}
        width = connector.bulk_operations if isinstance(connector, BulkWrites) else 0
        # With Bulk, a key waiting for its answer holds no connection: let enough keys run
        # to fill the requests (the transport still bounds the requests in flight).
        limit = asyncio.Semaphore(app.settings.max_concurrency * max(1, width))

        def sends(outcome: Outcome) -> bool:
            plan = outcome.work.plan
            return outcome.error is None and plan is not None and bool(plan.operations)

        # A task only for a key with something to send.
        sending = [o for o in outcomes if sends(o)]
        waiting = len(sending)
        # The next batch is claimed, read and planned while this one's second half sends, so
        # the app's slots do not empty between batches.
        lead = waiting // 2

        def started() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting == lead and tail is not None:
                tail()

        async def run(outcome: Outcome) -> None:
            plan = outcome.work.plan
            assert plan is not None
            async with limit:
                started()
                for operation in plan.operations:
                    if unavailable.is_set():
                        outcome.error = AppUnavailableError("the app stopped answering")
                        outcome.error_class = ErrorClass.UNAVAILABLE
                        return
                    try:
                        result = await execute(operation, connector, app.settings, known)
                    except (DownstreamError, MappingError) as exc:
                        error_class = classify(exc, operation)
                        if _goes_stale(operation, error_class, outcome.work):
                            # Offboarding wins: the account goes, the membership is left stale.
                            assert isinstance(operation, ops.RemoveMembers)
                            outcome.stale.append((operation, exc))
                            continue
                        outcome.error, outcome.failed = exc, operation
                        outcome.error_class = error_class
                        if error_class is ErrorClass.UNAVAILABLE:
                            unavailable.set()
                        return
                    outcome.done.append((operation, result))

        if sending:
            await asyncio.gather(*(run(o) for o in sending))
        elif tail is not None:
            tail()
        return outcomes

    def _fate(self, outcome: Outcome) -> Fate:
        error = outcome.error
        return decide(
            error=outcome.error_class,
            attempts=outcome.key.attempts,
            policy=self.policy,
            jitter=self.jitter(),
            message=(str(error) or type(error).__name__) if error is not None else "",
            retry_after=retry_after(error),
            requeue=outcome.requeue,
            cap=_offboarding_left(outcome),
            refused=any(
                isinstance(result, MembershipResult) and result.rejected
                for _, result in outcome.done
            ),
        )


def _offboarding_left(outcome: Outcome) -> float | None:
    """Seconds left before a leaving account must go whatever its removals do: no retry of
    a failed removal may wait longer than that."""
    failed = outcome.failed
    work = outcome.work
    if not (isinstance(failed, ops.RemoveMembers) and failed.offboarding):
        return None
    assert isinstance(work, AccountWork)
    return work.offboarding_left(clock.utcnow())


def _goes_stale(operation: ops.Operation, error_class: ErrorClass, work: Work) -> bool:
    """A leaving account's membership removal that failed for good, or keeps failing past the
    app's offboarding deadline, no longer holds the account back."""
    if not (isinstance(operation, ops.RemoveMembers) and operation.offboarding):
        return False
    if error_class is ErrorClass.PERMANENT:
        return True
    if error_class is not ErrorClass.TRANSIENT or not isinstance(work, AccountWork):
        return False
    left = work.offboarding_left(clock.utcnow())
    return left is not None and left <= 0


def _outcome_before_sending(work: Work) -> Outcome:
    """An outcome with what is known before anything is sent: a read-back or mapping failure,
    or a plan that asks to look again later."""
    outcome = Outcome(work)
    if work.error is not None:
        outcome.error = work.error
        outcome.error_class = classify(work.error, None)
    elif isinstance(work, AccountWork) and work.mapping_error is not None:
        outcome.error = MappingError(work.mapping_error)
        outcome.error_class = ErrorClass.PERMANENT
    elif isinstance(work, AccountWork) and work.plan is not None and work.plan.wait:
        outcome.requeue = 1.0
    elif isinstance(work, PushWork) and work.plan is not None and work.plan.needs_group:
        outcome.requeue = 0.0
    return outcome


# --- short transactions (run in a thread) -------------------------------------------------------


def _read_app(database: Database, app_id: str) -> AppSnapshot | None:
    with database.read() as session:
        return snapshot.load_app(session, app_id)


def _load(database: Database, app: AppSnapshot, keys: Sequence[leases.ClaimedKey]) -> Batch:
    with database.read() as session:
        return load_work(session, app, keys)


def _pass_left(database: Database, app_id: str, since: datetime | None) -> tuple[int, int]:
    with database.read() as session:
        return listing.pass_left(session, app_id, since)


def _hold(database: Database, keys: Sequence[leases.ClaimedKey], delay: float) -> None:
    with database.transaction() as session:
        quarantine.hold(session, keys, delay)


def _quarantine(
    database: Database, app: AppSnapshot, keys: Sequence[leases.ClaimedKey], reason: str
) -> None:
    with database.transaction() as session:
        quarantine.enter(session, app, keys, reason)


def _learned(app: AppSnapshot, connector: Connector) -> list[str]:
    """What the app refused during this batch, and is not yet stored."""
    known = app.capabilities
    learned = []
    if connector.patch_refused and known.patch_refused_at is None:
        learned.append(capabilities.PATCH)
    if (
        isinstance(connector, BatchedLookups)
        and connector.or_filter_refused
        and known.or_filter_refused_at is None
    ):
        learned.append(capabilities.OR_FILTER)
    bulk_refused = isinstance(connector, BulkWrites) and connector.bulk_refused
    if bulk_refused and known.bulk_refused_at is None:
        learned.append(capabilities.BULK)
    return learned


def _learn(database: Database, app: AppSnapshot, learned: Sequence[str]) -> None:
    with database.transaction() as session:
        capabilities.refused(session, app, learned)


def _leave_quarantine(database: Database, app: AppSnapshot) -> None:
    with database.transaction() as session:
        quarantine.leave(session, app)
