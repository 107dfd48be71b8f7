"""The runtime: everything a process wires together once, passed down explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.config import Settings
from headwater.connectors.outbound import OutboundPolicy
from headwater.crypto import SecretBox, load_or_create_key
from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.metrics import Metrics

if TYPE_CHECKING:
    from headwater.engine.worker import Worker

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    database: Database
    secrets: SecretBox
    connectors: ConnectorFactory = field(repr=False)
    metrics: Metrics = field(repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, connectors: ConnectorFactory | None = None, migrate: bool = True
    ) -> Runtime:
        """Wire a process; SettingsError (one line) when a setting, the database or the key
        cannot be used."""
        database = Database(settings.resolved_database_url())
        database.check()
        if migrate:
            upgrade(database)
        box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
        metrics = Metrics(database)
        policy = OutboundPolicy.from_text(settings.outbound_allow, settings.outbound_deny)
        factory = connectors or ConnectorFactory(box, policy=policy)
        factory.hooks.append(metrics.observe_request)
        return cls(
            settings=settings, database=database, secrets=box, connectors=factory, metrics=metrics
        )

    def worker(
        self, *, worker_id: str | None = None, app_ids: Sequence[str] | None = None
    ) -> Worker:
        """A reconcile worker wired to this runtime (``app_ids``: claim only those apps)."""
        from headwater.engine.worker import Worker

        return Worker(
            self.database,
            self.connectors,
            self.settings,
            self.metrics,
            worker_id=worker_id,
            app_ids=app_ids,
        )

    def close(self) -> None:
        self.database.dispose()
