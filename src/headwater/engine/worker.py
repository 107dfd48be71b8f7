"""The worker loop: claim due keys, reconcile them, repeat; sleep until woken or due.

On PostgreSQL workers wake on ``LISTEN/NOTIFY`` (every enqueue notifies on commit), so an idle
cluster reacts in milliseconds; SQLite polls. Leases are extended while a batch runs, and a
worker that dies simply lets its leases expire: its keys are claimed again by whoever is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from datetime import datetime

from headwater import clock
from headwater.config import Settings
from headwater.db import leases, outbox
from headwater.db.engine import Database
from headwater.db.leases import ClaimedKey
from headwater.engine import schedule
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.metrics import Metrics
from headwater.engine.reconciler import Reconciler

__all__ = ["Worker", "WorkerThread"]

log = logging.getLogger(__name__)

#: Seconds between heartbeats, and between housekeeping runs.
HEARTBEAT_EVERY = 10.0
HOUSEKEEPING_EVERY = 30.0


class Worker:
    """One reconcile worker; ``headwater worker`` runs one, ``serve`` embeds one."""

    def __init__(
        self,
        database: Database,
        connectors: ConnectorFactory,
        settings: Settings,
        metrics: Metrics,
        *,
        worker_id: str | None = None,
        app_ids: Sequence[str] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        #: Claim only these apps' keys (``headwater reconcile APP``); None: every app.
        self.app_ids = list(app_ids) if app_ids is not None else None
        self.reconciler = Reconciler(database, connectors, settings, metrics)
        self._wake = asyncio.Event()
        self.batches = 0

    # --- one step -----------------------------------------------------------------------------

    def _claim(self) -> list[ClaimedKey]:
        with self.database.transaction() as session:
            return leases.claim(
                session,
                self.worker_id,
                limit=self.settings.worker_batch_size,
                lease_seconds=self.settings.lease_seconds,
                app_ids=self.app_ids,
            )

    async def step(self) -> int:
        """Claim and reconcile one batch; returns how many keys it held."""
        keys = await asyncio.to_thread(self._claim)
        if not keys:
            return 0
        heartbeat = asyncio.create_task(self._keep_leases(keys))
        started = asyncio.get_running_loop().time()
        try:
            await self.reconciler.reconcile(keys)
            self.metrics.reconcile_seconds.observe(asyncio.get_running_loop().time() - started)
            self.metrics.keys_reconciled.inc(len(keys))
        except Exception:
            log.exception("reconcile batch failed; keys will be retried")
            await asyncio.to_thread(self._release, keys)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        self.batches += 1
        return len(keys)

    def _release(self, keys: Sequence[ClaimedKey]) -> None:
        with self.database.transaction() as session:
            for key in keys:
                leases.retry_later(
                    session, key, self.settings.retry_base_seconds * 5, count_attempt=False
                )

    async def _keep_leases(self, keys: Sequence[ClaimedKey]) -> None:
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(max(lease / 3, 0.5))
            await asyncio.to_thread(self._extend, keys, lease)

    def _extend(self, keys: Sequence[ClaimedKey], lease: float) -> None:
        with self.database.transaction() as session:
            leases.extend(session, self.worker_id, keys, lease)

    def heartbeat(self) -> int:
        """Say we are alive; returns how many workers are (to share per-app limits)."""
        with self.database.transaction() as session:
            return leases.beat(session, self.worker_id)

    def _sign_off(self) -> None:
        with self.database.transaction() as session:
            leases.sign_off(session, self.worker_id)

    def _next_due(self) -> datetime | None:
        with self.database.read() as session:
            return leases.next_due(session)

    # --- loops --------------------------------------------------------------------------------

    async def drain(self, *, timeout: float = 60.0, horizon: float = 0.0) -> None:
        """Reconcile until no key is due within ``horizon`` seconds (tests, CLI)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if await self.step():
                continue
            next_due = await asyncio.to_thread(self._next_due)
            if next_due is None:
                return
            wait = (next_due - clock.utcnow()).total_seconds()
            if wait > horizon:
                return
            if asyncio.get_running_loop().time() + max(wait, 0) > deadline:
                raise TimeoutError("keys still pending after the drain timeout")
            await asyncio.sleep(max(wait, 0.01))

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        listener = asyncio.create_task(self._listen(stop))
        last_housekeeping = last_heartbeat = -1e9
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                if loop.time() - last_heartbeat > HEARTBEAT_EVERY:
                    last_heartbeat = loop.time()
                    self.reconciler.share = await asyncio.to_thread(self.heartbeat)
                if loop.time() - last_housekeeping > HOUSEKEEPING_EVERY:
                    last_housekeeping = loop.time()
                    await asyncio.to_thread(schedule.start_full_reconciles, self.database)
                    await asyncio.to_thread(schedule.purge_deleted_users, self.database)
                if await self.step():
                    continue
                self._wake.clear()
                next_due = await asyncio.to_thread(self._next_due)
                timeout = self.settings.idle_poll_seconds
                if next_due is not None:
                    timeout = min(timeout, max((next_due - clock.utcnow()).total_seconds(), 0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(stop), timeout=max(timeout, 0.01))
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.reconciler.aclose()
            await asyncio.to_thread(self._sign_off)

    async def _wait(self, stop: asyncio.Event) -> None:
        wake = asyncio.create_task(self._wake.wait())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({wake, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            stopped.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        """PostgreSQL: wake the loop on every NOTIFY from an enqueue."""
        if self.database.dialect != "postgresql":
            return
        import psycopg

        url = self.database.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {outbox.CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


class WorkerThread:
    """A Worker on its own event loop in a daemon thread (inside ``headwater serve``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="headwater-worker", daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        asyncio.run(main())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
