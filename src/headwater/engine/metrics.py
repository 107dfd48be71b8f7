"""Prometheus metrics: downstream requests and reconcile timings as they happen, queue depth,
open tasks and quarantined apps read from the database at scrape time.

Labels carry app ids, methods, path templates and status codes only: never user data or
credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from headwater.db import tables as t

if TYPE_CHECKING:
    from headwater.db.engine import Database

__all__ = ["Metrics"]


class _DatabaseCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "headwater_pending_keys",
            "Reconcile keys waiting, by app and kind",
            labels=["app", "kind"],
        )
        tasks = GaugeMetricFamily("headwater_open_tasks", "Open tasks, by app", labels=["app"])
        quarantined = GaugeMetricFamily(
            "headwater_quarantined_apps", "Apps whose provisioning is paused by quarantine"
        )
        stale = GaugeMetricFamily(
            "headwater_stale_memberships",
            "Pushed memberships left behind by an offboarding that went ahead, by app",
            labels=["app"],
        )
        with self.database.read() as session:
            for app_id, kind, count in session.execute(
                select(t.ReconcileKey.app_id, t.ReconcileKey.kind, func.count()).group_by(
                    t.ReconcileKey.app_id, t.ReconcileKey.kind
                )
            ):
                pending.add_metric([app_id, kind], count)
            for app_id, count in session.execute(
                select(t.Task.app_id, func.count()).group_by(t.Task.app_id)
            ):
                tasks.add_metric([app_id], count)
            quarantined.add_metric(
                [],
                session.execute(
                    select(func.count()).where(t.App.quarantined_since.is_not(None))
                ).scalar_one(),
            )
            for app_id, count in session.execute(
                select(t.PushMapping.app_id, func.count())
                .join(t.PushMember, t.PushMember.mapping_id == t.PushMapping.id)
                .where(t.PushMember.stale_since.is_not(None))
                .group_by(t.PushMapping.app_id)
            ):
                stale.add_metric([app_id], count)
        yield pending
        yield tasks
        yield quarantined
        yield stale


class Metrics:
    """One registry per runtime (no process globals, so tests stay independent)."""

    def __init__(self, database: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "headwater_downstream_requests",
            "Requests sent to downstream apps",
            ["app", "method", "path", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "headwater_downstream_request_seconds",
            "Downstream request latency",
            ["app", "method"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "headwater_reconcile_batch_seconds",
            "Time to reconcile one batch of keys",
            registry=self.registry,
        )
        self.keys_reconciled = Counter(
            "headwater_keys_reconciled", "Keys reconciled", registry=self.registry
        )
        self.reconcile_failures = Counter(
            "headwater_reconcile_failures",
            "Reconciles of an app that failed unexpectedly (their keys are retried later)",
            ["app"],
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(database))
        self._counted: dict[tuple[str, str, str, int | None], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def observe_request(
        self, app_id: str, method: str, path: str, status: int | None, seconds: float
    ) -> None:
        """Count one downstream request. The labelled children are kept: ``labels()`` looks
        its child up under a lock and validates the labels on every call, once per request."""
        counted = self._counted.get((app_id, method, path, status))
        if counted is None:
            code = "error" if status is None else str(status)
            counted = self._counted[(app_id, method, path, status)] = self.requests.labels(
                app_id, method, path, code
            )
        counted.inc()
        timed = self._timed.get((app_id, method))
        if timed is None:
            timed = self._timed[(app_id, method)] = self.request_seconds.labels(app_id, method)
        timed.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
