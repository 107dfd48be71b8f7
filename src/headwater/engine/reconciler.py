"""The reconciler: claimed keys in, downstream converged and outcomes recorded.

For each app in a batch: read a snapshot (short read transaction), optionally read the
downstream back, plan with pure functions, record intents (short write transaction), send the
operations through the connector with bounded concurrency, then record outcomes (another short
write transaction). No transaction is open while a request is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from headwater import clock
from headwater.connectors.errors import AppUnavailableError, DownstreamError
from headwater.db import outbox
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.domain.desired import DesiredAccount, desired_account
from headwater.domain.downstream import AccountAttributes
from headwater.domain.mapping import MappingError, account_attributes
from headwater.domain.plan import (
    AccountFacts,
    AccountPlan,
    PushFacts,
    plan_account,
    plan_push,
)
from headwater.domain.retry import RetryPolicy
from headwater.engine import guard, recorder, snapshot
from headwater.engine.connectors import ConnectionInfo
from headwater.engine.executor import (
    Connector,
    execute,
)
from headwater.engine.limits import AppLimits
from headwater.engine.snapshot import AccountSnapshot, AppSnapshot
from headwater.engine.work import AccountWork, Outcome, PushWork

if TYPE_CHECKING:
    from headwater.runtime import Runtime

__all__ = ["AccountWork", "Outcome", "PushWork", "Reconciler", "account_facts"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def account_facts(
    user_id: str, snap: AccountSnapshot, app: AppSnapshot
) -> tuple[DesiredAccount, AccountAttributes | None, str | None]:
    """Desired state and mapped attributes of one user (a mapping failure is returned, not
    raised: it becomes a Task)."""
    desired = desired_account(snap.user, snap.direct, snap.groups, app.settings)
    if not desired.assigned or snap.user is None:
        return desired, None, None
    try:
        attributes = account_attributes(
            user_id,
            snap.user.profile,
            desired.app_profile,
            user_name_template=app.settings.user_name_template,
            user_name_override=snap.direct.user_name if snap.direct else None,
            active=desired.active,
            manager_id=snap.manager_external_id,
        )
    except MappingError as exc:
        return desired, None, str(exc)
    return desired, attributes, None


class Reconciler:
    """Reconciles batches of claimed keys for one worker."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.policy = policy or RetryPolicy(base=runtime.settings.retry_base_seconds)
        self._connectors: dict[str, tuple[Any, Any]] = {}
        self.limits: dict[str, AppLimits] = {}
        #: Live workers sharing each app's limits (kept current by the worker loop).
        self.share = 1

    async def aclose(self) -> None:
        for _, connector in self._connectors.values():
            await connector.aclose()
        self._connectors.clear()

    # --- database helpers (run in a thread so the event loop keeps sending) -------------

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _limits_for(self, app: AppSnapshot) -> AppLimits:
        settings = app.settings
        concurrency = max(1, math.ceil(settings.max_concurrency / self.share))
        rate = settings.rate_limit_per_second / self.share
        limits = self.limits.get(app.id)
        if limits is None or (limits.concurrency, limits.rate) != (concurrency, rate):
            limits = self.limits[app.id] = AppLimits(concurrency, rate)
        return limits

    async def _connector(self, app: AppSnapshot) -> Connector:
        limits = self._limits_for(app)
        fingerprint = (
            app.base_url,
            app.auth_scheme,
            app.connection_updated,
            app.settings,
            id(limits),
        )
        cached = self._connectors.get(app.id)
        if cached is not None and cached[0] == fingerprint:
            connector: Connector = cached[1]
            return connector
        if cached is not None:
            await cached[1].aclose()
        info = ConnectionInfo(
            app.id, app.base_url or "", app.auth_scheme or "NONE", app.secret_encrypted
        )
        built = self.runtime.connectors.build(info, app.settings, limits)
        self._connectors[app.id] = (fingerprint, built)
        return built

    # --- entry point --------------------------------------------------------------------

    async def reconcile(self, keys: list[ClaimedKey]) -> None:
        by_app: dict[str, list[ClaimedKey]] = defaultdict(list)
        for key in keys:
            by_app[key.app_id].append(key)
        await asyncio.gather(*(self._reconcile_app(a, k) for a, k in by_app.items()))

    async def _reconcile_app(self, app_id: str, keys: list[ClaimedKey]) -> None:
        database = self.runtime.database
        app = await self._db(_read, database, snapshot.load_app, app_id)
        if app is None or app.status != "ACTIVE" or not app.connection_enabled:
            # Nothing to send; activating the app or its connection enqueues every key again.
            await self._db(recorder.finish_all, database, keys)
            return
        if app.quarantined and not await self._probe(app, keys):
            return
        connector = await self._connector(app)
        try:
            accounts, pushes = await self._prepare(app, keys)
            await self._observe(app, connector, accounts, pushes)
            outcomes = await self._plan_and_apply(app, connector, accounts, pushes)
        except AppUnavailableError as exc:
            await self._db(recorder.quarantine, database, app, keys, str(exc))
            return
        await self._db(recorder.record, database, app, outcomes, self.policy)
        limits = self.limits.get(app.id)
        if limits is not None and limits.failing():
            # Most recent calls failed: stop hammering; the keys already carry their backoff.
            limits.reset()
            await self._db(recorder.quarantine, database, app, [], "most recent requests failed")

    async def _probe(self, app: AppSnapshot, keys: list[ClaimedKey]) -> bool:
        """A quarantined app: hold its keys until the probe time, then test the connection."""
        now = clock.utcnow()
        if app.next_probe is not None and clock.as_utc(app.next_probe) > now:
            delay = (clock.as_utc(app.next_probe) - now).total_seconds()
            await self._db(recorder.hold, self.runtime.database, keys, delay)
            return False
        connector = await self._connector(app)
        try:
            await connector.test_connection()  # type: ignore[attr-defined]
        except DownstreamError as exc:
            await self._db(recorder.quarantine, self.runtime.database, app, keys, str(exc))
            return False
        await self._db(recorder.release_quarantine, self.runtime.database, app)
        return True

    async def dry_run(
        self, app: AppSnapshot, keys: list[ClaimedKey], connector: Connector | None
    ) -> tuple[list[AccountWork], list[PushWork]]:
        """Plan ``keys`` exactly as a reconcile would, sending nothing. With a connector (a
        read-only one), downstream state is read back first, as a full reconcile does."""
        accounts, pushes = await self._prepare(app, keys, finish_missing=False)
        if connector is not None:
            await self._observe(app, connector, accounts, pushes)
        for work in accounts:
            if work.mapping_error is None:
                work.plan = plan_account(self.facts_for(work), app.settings)
        for push in pushes:
            push.plan = plan_push(_push_facts(push), app.settings)
        return accounts, pushes

    # --- steps ---------------------------------------------------------------------------

    async def _prepare(
        self, app: AppSnapshot, keys: list[ClaimedKey], *, finish_missing: bool = True
    ) -> tuple[list[AccountWork], list[PushWork]]:
        def load() -> tuple[list[AccountWork], list[PushWork]]:
            user_keys = [k for k in keys if k.kind == outbox.USER]
            push_keys = [k for k in keys if k.kind == outbox.PUSH]
            with self.runtime.database.read() as session:
                snaps = snapshot.load_accounts(session, app.id, [k.subject_id for k in user_keys])
                pushes = snapshot.load_push(session, app.id, [k.subject_id for k in push_keys])
                # Only a push that reads its group back needs every linked account of the
                # app (to tell known members from orphans); skip that scan otherwise.
                reads_back = any(
                    k.observe or (k.subject_id in pushes and pushes[k.subject_id].full_push)
                    for k in push_keys
                )
                known = snapshot.known_accounts(session, app.id) if reads_back else {}
            accounts = []
            for key in user_keys:
                snap = snaps[key.subject_id]
                desired, attributes, error = account_facts(key.subject_id, snap, app)
                accounts.append(AccountWork(key, snap, desired, attributes, error))
            push_work = [
                PushWork(k, pushes[k.subject_id], known_accounts=known)
                for k in push_keys
                if k.subject_id in pushes
            ]
            missing = [k for k in push_keys if k.subject_id not in pushes]
            if missing and finish_missing:
                recorder.finish_all(self.runtime.database, missing)
            return accounts, push_work

        return await self._db(load)

    async def _observe(
        self,
        app: AppSnapshot,
        connector: Connector,
        accounts: list[AccountWork],
        pushes: list[PushWork],
    ) -> None:
        """Read the downstream back where asked (full reconcile, push now, new links)."""
        limit = asyncio.Semaphore(app.settings.max_concurrency)

        async def observe_account(work: AccountWork) -> None:
            record = work.snapshot.record
            if work.key.observe and record is not None and record.external_id:
                async with limit:
                    try:
                        work.observed = await connector.get_user(record.external_id)
                    except AppUnavailableError:
                        raise
                    except DownstreamError as exc:
                        work.error = exc

        async def observe_push(work: PushWork) -> None:
            snap = work.snapshot
            wanted = work.key.observe or snap.full_push
            if not wanted or not snap.target_external_id or snap.status == "INACTIVE":
                return
            async with limit:
                try:
                    group = await connector.get_group(snap.target_external_id)
                except AppUnavailableError:
                    raise
                except DownstreamError as exc:
                    work.error = exc
                    return
            if group is None:
                work.observed_members = None
            elif group.member_ids is not None and app.settings.group_members_returned:
                work.observed_members = group.member_ids

        await asyncio.gather(
            *(observe_account(w) for w in accounts), *(observe_push(w) for w in pushes)
        )

    async def _plan_and_apply(
        self,
        app: AppSnapshot,
        connector: Connector,
        accounts: list[AccountWork],
        pushes: list[PushWork],
    ) -> list[Outcome]:
        settings = app.settings
        outcomes: list[Outcome] = []
        runnable: list[tuple[Outcome, list[ops.Operation]]] = []
        for work in accounts:
            outcome = Outcome(work.key, work=work)
            outcomes.append(outcome)
            if work.error is not None:
                outcome.error = work.error
                continue
            if work.mapping_error is not None:
                outcome.error = MappingError(work.mapping_error)
                continue
            work.plan = plan_account(self.facts_for(work), settings)
        deprovisions = await self._screen_mass_change(app, accounts)
        if deprovisions:
            await self._db(self._mark_deprovisioning, app, deprovisions)
        for work, outcome in zip(accounts, outcomes, strict=True):
            if work.plan is None:
                continue
            if work.plan.wait:
                outcome.requeue = 1.0
            elif work.plan.operations:
                runnable.append((outcome, list(work.plan.operations)))
        push_outcomes = []
        for push in pushes:
            outcome = Outcome(push.key, work=push)
            outcomes.append(outcome)
            if push.error is not None:
                outcome.error = push.error
                continue
            push.plan = plan_push(_push_facts(push), settings)
            push_outcomes.append((push, outcome))
        if push_outcomes:
            await self._db(self._record_intents, app, push_outcomes)
        for push, outcome in push_outcomes:
            assert push.plan is not None
            if push.plan.needs_group:
                outcome.requeue = 0.0
            runnable.append((outcome, list(push.plan.operations)))
        limit = asyncio.Semaphore(settings.max_concurrency)
        await asyncio.gather(*(self._run(connector, settings, o, p, limit) for o, p in runnable))
        return outcomes

    async def _screen_mass_change(
        self, app: AppSnapshot, accounts: list[AccountWork]
    ) -> list[AccountWork]:
        """Deprovisions that may run now; the rest wait for an admin's decision."""
        leaving = [w for w in accounts if w.plan is not None and w.plan.deprovision]
        staying = [
            w.key.subject_id for w in accounts if w.plan is not None and not w.plan.deprovision
        ]

        def screen() -> set[str]:
            with self.runtime.database.transaction() as session:
                guard.settle(session, app.id, staying)
                if not leaving:
                    return set()
                return guard.screen(
                    session, app.id, app.label, app.settings, [w.key.subject_id for w in leaving]
                )

        blocked = await self._db(screen)
        for work in leaving:
            if work.key.subject_id in blocked:
                work.plan = AccountPlan((), reason="held by the mass-change guard")
        return [w for w in leaving if w.key.subject_id not in blocked]

    @staticmethod
    def facts_for(work: AccountWork) -> AccountFacts:
        snap = work.snapshot
        return AccountFacts(
            user_id=work.key.subject_id,
            desired=work.desired,
            attributes=work.attributes,
            record=snap.record,
            memberships=snap.memberships,
            observed=work.observed,
        )

    def _mark_deprovisioning(self, app: AppSnapshot, works: list[AccountWork]) -> None:
        """Mark accounts DEPROVISIONING (no push may add them from now on), then re-read their
        memberships under that mark and plan again: what we remove is complete."""
        user_ids = [w.key.subject_id for w in works]
        with self.runtime.database.transaction() as session:
            recorder.mark_deprovisioning(session, app.id, user_ids)
            fresh = snapshot.load_memberships(session, app.id, user_ids)
        for work in works:
            work.snapshot = _with_memberships(
                work.snapshot, tuple(fresh.get(work.key.subject_id, ()))
            )
            work.plan = plan_account(self.facts_for(work), app.settings)

    def _record_intents(self, app: AppSnapshot, pushes: list[tuple[PushWork, Outcome]]) -> None:
        """Record pending memberships before any add is sent; drop members whose account is
        being deprovisioned (they must not be added back)."""
        with self.runtime.database.transaction() as session:
            for push, _ in pushes:
                assert push.plan is not None
                push.plan = recorder.record_push_intents(session, app.id, push.plan)

    async def _run(
        self,
        connector: Connector,
        settings: Any,
        outcome: Outcome,
        operations: Iterable[ops.Operation],
        limit: asyncio.Semaphore,
    ) -> None:
        async with limit:
            for operation in operations:
                try:
                    result = await execute(operation, connector, settings)
                except AppUnavailableError:
                    raise
                except (DownstreamError, MappingError) as exc:
                    outcome.error = exc
                    outcome.failed = operation
                    return
                outcome.done.append((operation, result))


def _push_facts(work: PushWork) -> PushFacts:
    snap = work.snapshot
    return PushFacts(
        mapping_id=snap.mapping_id,
        status=snap.status,
        source_name=snap.source_name,
        custom_name=snap.custom_name,
        target_external_id=snap.target_external_id,
        target_name=snap.target_name,
        eligible=snap.eligible,
        recorded=snap.recorded,
        full_push=snap.full_push,
        delete_requested=snap.delete_requested,
        delete_target=snap.delete_target,
        observed_members=work.observed_members,
        known_accounts=work.known_accounts,
    )


def _with_memberships(snap: AccountSnapshot, memberships: tuple[Any, ...]) -> AccountSnapshot:
    return replace(snap, memberships=memberships)


def _read(database: Any, fn: Callable[..., T], *args: Any) -> T:
    with database.read() as session:
        return fn(session, *args)
