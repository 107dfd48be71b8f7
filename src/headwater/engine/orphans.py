"""Removing orphans: members of pushed groups that belong to no account Headwater manages.

The engine never removes them on its own (unless the app's policy says so); an admin asks for
it, and this is the one place a request waits on a downstream. No database transaction is open
during the calls, and an orphan is forgotten only once its removal succeeded.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.connectors.errors import DownstreamError
from headwater.db import events
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import Actor, Target
from headwater.db.rowsets import any_of, rows_in
from headwater.domain.connection import ConnectionInfo
from headwater.domain.operations import RemoveMembers
from headwater.engine import snapshot
from headwater.engine.connectors import ConnectorFactory
from headwater.engine.executor import execute
from headwater.errors import InvalidRequest, NotFound

__all__ = ["OrphanBatch", "remember", "remove_orphans"]


def remember(session: Session, app_id: str, mapping_id: str, found: frozenset[str]) -> None:
    """Replace the orphans recorded for a pushed group with those its last read-back found."""
    session.execute(delete(t.Orphan).where(t.Orphan.mapping_id == mapping_id))
    now = clock.utcnow()
    for external_id in sorted(found):
        session.add(
            t.Orphan(mapping_id=mapping_id, app_id=app_id, external_id=external_id, seen=now)
        )


def _check_mapping(session: Session, app_id: str, mapping_id: str) -> None:
    mapping = session.get(t.PushMapping, mapping_id) if mapping_id.isalnum() else None
    if mapping is None or mapping.app_id != app_id or mapping.delete_requested:
        raise NotFound(f"Not found: Resource not found: {mapping_id} (GroupPushMapping)")


@dataclass(frozen=True)
class OrphanBatch:
    """Orphans of one pushed group, to remove with one membership change."""

    mapping_id: str
    group_external_id: str
    external_ids: tuple[str, ...]


def _orphan_batches(
    session: Session, app_id: str, mapping_id: str | None, external_ids: list[str] | None
) -> list[OrphanBatch]:
    """Recorded orphans still unknown (an account linked since then is never removed)."""
    if mapping_id is not None:
        _check_mapping(session, app_id, mapping_id)
    linked = select(t.AppUserLink.external_id).where(
        t.AppUserLink.app_id == app_id, t.AppUserLink.external_id.is_not(None)
    )
    query = (
        select(t.Orphan.mapping_id, t.Group.external_id, t.Orphan.external_id.label("member"))
        .join(t.PushMapping, t.PushMapping.id == t.Orphan.mapping_id)
        .join(t.Group, t.Group.id == t.PushMapping.target_group_id)
        .where(
            t.Orphan.app_id == app_id,
            t.Group.external_id.is_not(None),
            t.Orphan.external_id.not_in(linked),
        )
        .order_by(t.Orphan.mapping_id, t.Orphan.external_id)
    )
    if mapping_id is not None:
        query = query.where(t.Orphan.mapping_id == mapping_id)
    if external_ids is not None:
        query = query.where(any_of(t.Orphan.external_id, external_ids))
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in session.execute(query):
        grouped[(row.mapping_id, row.external_id)].append(row.member)
    return [OrphanBatch(m, g, tuple(members)) for (m, g), members in grouped.items()]


def _prepare_removal(
    database: Database, app_id: str, mapping_id: str | None, external_ids: list[str] | None
) -> tuple[snapshot.AppSnapshot, list[OrphanBatch]]:
    with database.read() as session:
        app = snapshot.load_app(session, app_id)
        if app is None:
            raise NotFound(f"Not found: Resource not found: {app_id} (AppInstance)")
        if not app.connection_enabled or not app.base_url:
            cause = "the app has no enabled provisioning connection"
            raise InvalidRequest("Api validation failed: " + cause, [cause])
        return app, _orphan_batches(session, app_id, mapping_id, external_ids)


def _forget_orphans(database: Database, actor: Actor, app_id: str, done: list[OrphanBatch]) -> None:
    if not done:
        return
    keys = [(b.mapping_id, e) for b in done for e in b.external_ids]
    with database.transaction() as session:
        session.execute(
            delete(t.Orphan).where(rows_in((t.Orphan.mapping_id, t.Orphan.external_id), keys))
        )
        message = f"{len(keys)} unknown member(s) removed from pushed groups"
        events.record(
            session,
            "app.headwater.grouppush.orphans.removed",
            message,
            actor=actor,
            targets=[Target(app_id, "AppInstance")],
            debug={"removed": len(keys)},
        )


async def _send_removals(
    connectors: ConnectorFactory, app: snapshot.AppSnapshot, batches: list[OrphanBatch]
) -> tuple[list[OrphanBatch], list[dict[str, Any]]]:
    info = ConnectionInfo(
        app.id, app.base_url or "", app.auth_scheme or "NONE", app.secret_encrypted
    )
    connector = connectors.build(info, app.settings, capabilities=app.capabilities)
    done: list[OrphanBatch] = []
    errors: list[dict[str, Any]] = []
    try:
        for batch in batches:
            members = tuple((None, external_id) for external_id in batch.external_ids)
            operation = RemoveMembers(batch.mapping_id, batch.group_external_id, members)
            try:
                await execute(operation, connector, app.settings)
            except DownstreamError as exc:
                errors.append({"mappingId": batch.mapping_id, "errorSummary": exc.message})
                continue
            done.append(batch)
    finally:
        await connector.aclose()
    return done, errors


async def remove_orphans(
    database: Database,
    connectors: ConnectorFactory,
    actor: Actor,
    app_id: str,
    *,
    mapping_id: str | None = None,
    external_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Remove recorded orphans downstream (all of the app's, one mapping's, or the listed
    ones), then forget them; failures are reported per mapping and the orphans are kept."""
    app, batches = await asyncio.to_thread(
        _prepare_removal, database, app_id, mapping_id, external_ids
    )
    done, errors = await _send_removals(connectors, app, batches)
    await asyncio.to_thread(_forget_orphans, database, actor, app_id, done)
    return {"removed": sum(len(b.external_ids) for b in done), "errors": errors}
