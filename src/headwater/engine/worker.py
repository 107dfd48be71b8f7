"""The worker loop: claim due keys, reconcile them, repeat; sleep until woken or due.

Each claimed batch of an app runs in a lane of its own, and an app may have up to
``worker_batches_per_app`` lanes at once: its next batch is claimed and planned while the last
one's second half sends, and sends while the last one's slowest requests finish and it is
recorded. The app's lanes share its connector and its limits, so the requests in flight to the
app stay within its concurrency.

On PostgreSQL workers wake on ``LISTEN/NOTIFY`` (every enqueue notifies on commit), so an idle
cluster reacts in milliseconds; SQLite polls. Leases are extended while a batch runs, and a
worker that dies simply lets its leases expire: its keys are claimed again by whoever is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.config import Settings
from headwater.db import events, leases, outbox
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import SYSTEM, Target
from headwater.db.leases import ClaimedKey
from headwater.engine import schedule
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.metrics import Metrics
from headwater.engine.reconciler import Reconciler

__all__ = ["Liveness", "Worker", "WorkerThread"]

log = logging.getLogger(__name__)

#: Seconds between heartbeats, and between housekeeping runs.
HEARTBEAT_EVERY = 10.0
HOUSEKEEPING_EVERY = 30.0
#: Longest wait before a failing app's keys are tried again.
CRASH_BACKOFF_MAX = 600.0
#: Pause after an error in the loop itself (the database away).
LOOP_ERROR_PAUSE = 2.0
#: Seconds a stopping worker gives its running lanes.
STOP_GRACE = 5.0


@dataclass
class Liveness:
    """What ``/health`` says of a worker."""

    alive: bool
    #: Seconds since the loop last went round (a stuck loop stops counting).
    loop_age: float
    #: Seconds since the worker last beat in the heartbeat table.
    heartbeat_age: float | None
    stuck: bool
    last_error: dict[str, str] | None


class Worker:
    """One reconcile worker; ``headwater worker`` runs one, ``serve`` embeds one.

    Each batch of an app's keys goes through its own lane: a slow or hanging app holds only its
    own keys, and an exception in one batch's reconcile is logged, recorded against that app and
    its keys retried later, while every other lane goes on.
    """

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
        #: Keys in flight, by lane: (app, the lane's batch of that app's keys).
        self._in_flight: dict[int, tuple[str, list[ClaimedKey]]] = {}
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._lane_numbers = itertools.count(1)
        #: Lanes whose every key has started sending: their app may take its next batch.
        self._tailing: set[int] = set()
        #: Failed reconciles of an app in a row, whichever lane ran them (their keys back off
        #: further each time: the app, not one batch, is what keeps failing).
        self._crashes: dict[str, int] = {}
        self._last_beat = -1e9
        self._last_tick = time.monotonic()
        self._last_beat_wall: datetime | None = None
        self.last_error: dict[str, str] | None = None

    # --- leases and heartbeat -----------------------------------------------------------------

    def _claim(self) -> list[ClaimedKey]:
        with self.database.transaction() as session:
            return leases.claim(
                session,
                self.worker_id,
                limit=self.settings.worker_batch_size,
                lease_seconds=self.settings.lease_seconds,
                app_ids=self.app_ids,
                exclude_app_ids=self._full_apps(),
                share=self.reconciler.share,
            )

    def _full_apps(self) -> list[str]:
        """Apps the next claim leaves out: those with as many lanes as they may have, and
        those with a lane still starting the first half of its keys (its next batch is claimed
        once that lane is in its tail, so the app's batches take turns rather than run in
        step)."""
        lanes = Counter(app_id for app_id, _ in self._in_flight.values())
        starting = {app_id for n, (app_id, _) in self._in_flight.items() if n not in self._tailing}
        most = self.settings.worker_batches_per_app
        return [app_id for app_id, count in lanes.items() if count >= most or app_id in starting]

    def _room(self) -> bool:
        """Whether another lane may start (``worker_lanes`` apps, each with its batches)."""
        settings = self.settings
        return len(self._in_flight) < settings.worker_lanes * settings.worker_batches_per_app

    def heartbeat(self) -> int:
        """Say we are alive; returns how many workers are (to share per-app limits)."""
        with self.database.transaction() as session:
            if self._last_beat_wall is None:
                self._forget_dead_neighbours(session)
            live = leases.beat(session, self.worker_id)
        self._last_beat_wall = clock.utcnow()
        return live

    def _forget_dead_neighbours(self, session: Session) -> None:
        """Workers of this host whose process is gone (a predecessor killed before it could
        sign off): their leases end now, not when they run out."""
        host = socket.gethostname()
        dead = []
        for worker_id, _ in leases.workers(session):
            name, _, rest = worker_id.partition(":")
            pid_text = rest.partition(":")[0]
            if name != host or not pid_text.isdigit() or int(pid_text) == os.getpid():
                continue
            if not _process_alive(int(pid_text)):
                dead.append(worker_id)
        if dead:
            log.info("releasing the leases of %d dead worker(s) of this host", len(dead))
            leases.forget_workers(session, dead)

    async def _beat_if_due(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_beat >= HEARTBEAT_EVERY:
            self._last_beat = loop.time()
            self.reconciler.share = await asyncio.to_thread(self.heartbeat)

    async def _keeper(self) -> None:
        """Beat and extend the leases of every key in flight while lanes run."""
        lease = self.settings.lease_seconds
        every = min(max(lease / 3, 0.5), HEARTBEAT_EVERY)
        while True:
            await asyncio.sleep(every)
            try:
                await self._beat_if_due()
                keys = [key for _, group in self._in_flight.values() for key in group]
                if keys:
                    await asyncio.to_thread(self._extend, keys, lease)
            except Exception:
                log.warning("could not extend leases; will try again", exc_info=True)

    def _extend(self, keys: Sequence[ClaimedKey], lease: float) -> None:
        with self.database.transaction() as session:
            leases.extend(session, self.worker_id, keys, lease)

    def _sign_off(self) -> None:
        with self.database.transaction() as session:
            leases.sign_off(session, self.worker_id)

    def _next_due(self) -> datetime | None:
        with self.database.read() as session:
            return leases.next_due(session, self._full_apps(), self.worker_id)

    # --- lanes --------------------------------------------------------------------------------

    def _open_lane(self, app_id: str, keys: list[ClaimedKey]) -> int:
        """Number a lane and count its keys in flight at once (the next claim sees them)."""
        number = next(self._lane_numbers)
        self._in_flight[number] = (app_id, keys)
        return number

    async def _lane(self, number: int, app_id: str, keys: list[ClaimedKey]) -> None:
        """One batch of one app's keys, start to finish; whatever goes wrong stays with this
        batch's keys."""
        started = time.monotonic()
        try:
            await self.reconciler.reconcile_app(
                ids.new_id("rcn"), app_id, keys, tail=functools.partial(self._tail, number)
            )
            self.metrics.reconcile_seconds.observe(time.monotonic() - started)
            self.metrics.keys_reconciled.inc(len(keys))
            self._crashes.pop(app_id, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._app_failed(app_id, keys, exc)
        finally:
            self._in_flight.pop(number, None)
            self._tailing.discard(number)

    async def _app_failed(self, app_id: str, keys: list[ClaimedKey], exc: Exception) -> None:
        crashes = self._crashes[app_id] = self._crashes.get(app_id, 0) + 1
        delay = min(CRASH_BACKOFF_MAX, self.settings.retry_base_seconds * 5 * 2 ** (crashes - 1))
        summary = f"{type(exc).__name__}: {_short(str(exc))}"
        log.error(
            "reconcile of app %s failed (%s); its %d key(s) retry in %.0f s",
            app_id,
            summary,
            len(keys),
            delay,
            exc_info=exc,
            extra={"app_id": app_id, "crashes": crashes},
        )
        self.last_error = {"at": clock.utcnow().isoformat(), "appId": app_id, "message": summary}
        self.metrics.reconcile_failures.labels(app_id).inc()
        try:
            await asyncio.to_thread(_release, self.database, app_id, keys, delay, summary, crashes)
        except Exception:
            log.exception("could not release the keys of app %s; their leases will end", app_id)

    async def step(self) -> int:
        """Claim one batch and reconcile it to the end, app lanes side by side (tests, the
        CLI's reconcile of one app: each round reports progress)."""
        await self._beat_if_due()
        keys = await asyncio.to_thread(self._claim)
        if not keys:
            return 0
        keeper = asyncio.create_task(self._keeper())
        try:
            lanes = [(self._open_lane(a, k), a, k) for a, k in _by_app(keys).items()]
            await asyncio.gather(*(self._lane(n, a, k) for n, a, k in lanes))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        self.batches += 1
        return len(keys)

    async def aclose(self) -> None:
        """Close the connectors this worker opened and sign off, so the workers left do not
        count it as live when they share out what is due (``run`` does it when it stops)."""
        await self.reconciler.aclose()
        if self._last_beat_wall is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._sign_off)
            self._last_beat_wall = None

    # --- loops --------------------------------------------------------------------------------

    async def drain(self, *, timeout: float = 60.0, horizon: float = 0.0) -> None:
        """Reconcile until no lane runs and no key is due within ``horizon`` seconds (tests,
        CLI). Lanes start while others run, as in ``run``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        keeper = asyncio.create_task(self._keeper())
        try:
            while True:
                self._wake.clear()
                await self._beat_if_due()
                if self._room() and self._start_lanes(await asyncio.to_thread(self._claim)):
                    continue
                if self._lanes:
                    # Claim again once a lane ends or reaches its tail: its app may take
                    # another batch.
                    woken = asyncio.create_task(self._wake.wait())
                    try:
                        await asyncio.wait(
                            {woken, *self._lanes.values()}, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        woken.cancel()
                    continue
                next_due = await asyncio.to_thread(self._next_due)
                if next_due is None:
                    return
                wait = (next_due - clock.utcnow()).total_seconds()
                if wait > horizon:
                    return
                if loop.time() + max(wait, 0) > deadline:
                    raise TimeoutError("keys still pending after the drain timeout")
                await asyncio.sleep(max(wait, 0.01))
        finally:
            await self._stop_lanes()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: claim for idle apps, start their lanes, sleep until a lane
        ends, a key is enqueued (NOTIFY) or the next key is due."""
        listener = asyncio.create_task(self._listen(stop))
        keeper = asyncio.create_task(self._keeper())
        last_housekeeping = -1e9
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._last_tick = time.monotonic()
                self._wake.clear()
                try:
                    await self._beat_if_due()
                    if loop.time() - last_housekeeping > HOUSEKEEPING_EVERY:
                        last_housekeeping = loop.time()
                        await asyncio.to_thread(schedule.start_full_reconciles, self.database)
                        await asyncio.to_thread(schedule.purge_deleted_users, self.database)
                    if self._room() and self._start_lanes(await asyncio.to_thread(self._claim)):
                        continue
                    next_due = await asyncio.to_thread(self._next_due)
                except Exception as exc:
                    # The database went away, most likely: say so, wait a little, go on.
                    log.exception("worker loop error; retrying")
                    self.last_error = {
                        "at": clock.utcnow().isoformat(),
                        "appId": "",
                        "message": f"{type(exc).__name__}: {_short(str(exc))}",
                    }
                    next_due = clock.utcnow() + timedelta(seconds=LOOP_ERROR_PAUSE)
                timeout = self.settings.idle_poll_seconds
                if next_due is not None:
                    timeout = min(timeout, max((next_due - clock.utcnow()).total_seconds(), 0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(stop), timeout=max(timeout, 0.01))
        finally:
            await self._stop_lanes()
            for task in (listener, keeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.aclose()

    def _start_lanes(self, keys: list[ClaimedKey]) -> bool:
        for app_id, app_keys in _by_app(keys).items():
            number = self._open_lane(app_id, app_keys)
            lane = asyncio.create_task(self._lane(number, app_id, app_keys))
            self._lanes[number] = lane
            lane.add_done_callback(functools.partial(self._lane_done, number))
        if keys:
            self.batches += 1
        return bool(keys)

    def _tail(self, number: int) -> None:
        """Half of a lane's keys have started: claim the app's next batch (see ``_full_apps``)."""
        if number in self._in_flight:
            self._tailing.add(number)
            self._wake.set()

    def _lane_done(self, number: int, _: asyncio.Task[None]) -> None:
        self._lanes.pop(number, None)
        self._wake.set()

    async def _stop_lanes(self) -> None:
        """Let running lanes finish their requests (bounded); keys left in flight are released
        by signing off."""
        lanes = list(self._lanes.values())
        if not lanes:
            return
        _, pending = await asyncio.wait(lanes, timeout=STOP_GRACE)
        for lane in pending:
            lane.cancel()
        if pending:
            await asyncio.wait(pending)

    def liveness(self) -> Liveness:
        loop_age = time.monotonic() - self._last_tick
        beat_age = (
            (clock.utcnow() - self._last_beat_wall).total_seconds()
            if self._last_beat_wall is not None
            else None
        )
        return Liveness(
            alive=True,
            loop_age=loop_age,
            heartbeat_age=beat_age,
            stuck=loop_age > self.settings.worker_stuck_seconds,
            last_error=self.last_error,
        )

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


def _by_app(keys: Sequence[ClaimedKey]) -> dict[str, list[ClaimedKey]]:
    by_app: dict[str, list[ClaimedKey]] = defaultdict(list)
    for key in keys:
        by_app[key.app_id].append(key)
    return by_app


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(
    database: Database,
    app_id: str,
    keys: Sequence[ClaimedKey],
    delay: float,
    summary: str,
    crashes: int,
) -> None:
    """Put a failed app's keys back, later; say so in the system log (once per failing run)."""
    with database.transaction() as session:
        for key in keys:
            leases.retry_later(session, key, delay, count_attempt=False)
        if crashes == 1 and session.get(t.App, app_id) is not None:
            events.record(
                session,
                "app.headwater.reconcile.failed",
                f"Reconcile failed and will be retried: {summary}",
                actor=SYSTEM,
                targets=[Target(app_id, "AppInstance")],
                outcome="FAILURE",
                reason=summary,
            )


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

    def liveness(self) -> Liveness:
        """The worker's liveness; a thread that died (it should not) is not alive."""
        found = self.worker.liveness()
        found.alive = self._thread.is_alive()
        return found

    def stop(self) -> None:
        """Stop the loop and wait for it (idempotent)."""
        if not self._thread.is_alive():
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
