"""Attribute mappings per app and the app user schema: read them, change them.

A change is checked (each expression type-checked, bounds), stored, and the keys of exactly the
users whose sent attributes change are enqueued in the same transaction. ``impact`` (the
engine's ``preview.mapping_impact``, passed in by the edge) says who they are. A change that
would update more accounts than the app's mass-change threshold allows is held: stored as
pending, applied only when an administrator approves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.mass_change import tripped
from headwater.domain.profile_mapping import (
    AppMapping,
    AppSchema,
    MappingImpact,
    schema_updated,
)
from headwater.domain.settings import ProvisioningSettings
from headwater.errors import InvalidRequest, NotFound
from headwater.services import user_schema

__all__ = ["Impact", "Saved", "decide", "load", "update", "update_schema"]

#: Who a mapping change reaches (the engine's preview, passed in by the edge).
Impact = Callable[[Session, str, AppMapping], MappingImpact]
#: Properties one app's mapping may change.
MAX_PROPERTIES = 200


@dataclass(frozen=True)
class Saved:
    """The mapping in force, what the change reached, and whether it is held."""

    mapping: AppMapping
    affected: int
    held: bool = False
    pending: AppMapping | None = None


def _app(session: Session, app_id: str, *, lock: bool = False) -> t.App:
    app = session.get(t.App, app_id, with_for_update=lock)
    if app is None:
        raise NotFound()
    return app


def load(session: Session, app_id: str) -> tuple[t.App, AppMapping, AppMapping | None]:
    """The app, its mapping in force and a held (pending) one, if any."""
    app = _app(session, app_id)
    schema = AppSchema.from_json(app.user_schema)
    mapping = AppMapping.from_json(app.attribute_mapping, schema)
    stored = app.attribute_mapping or {}
    pending = AppMapping.from_json(stored["pending"], schema) if stored.get("pending") else None
    return app, mapping, pending


def _target(app: t.App) -> list[Target]:
    return [Target(app.id, "AppInstance", app.name, app.label)]


def _apply(
    session: Session, app: t.App, mapping: AppMapping, impact: MappingImpact, actor: Actor
) -> None:
    app.attribute_mapping = None if mapping.is_default else mapping.to_json()
    app.membership_reads = mapping.membership_reads_json()
    app.last_updated = clock.utcnow()
    outbox.enqueue_many_users(session, app.id, list(impact.affected))
    events.record(
        session,
        "app.headwater.mapping.updated",
        f"attribute mapping of {app.label} changed: {len(impact.affected)} account(s) to update",
        actor=actor,
        targets=_target(app),
        debug={"affected": len(impact.affected)},
    )


def update(session: Session, app_id: str, properties: Any, actor: Actor, impact: Impact) -> Saved:
    """Apply Okta's ``properties`` changes (400 naming the property and the position)."""
    app = _app(session, app_id, lock=True)
    _, current, _ = load(session, app_id)
    changed = current.updated(properties, MAX_PROPERTIES, user_schema.expression_types(session))
    reach = impact(session, app_id, changed)
    settings = ProvisioningSettings.from_json(app.provisioning)
    if tripped(reach.updates, reach.active, settings):
        app.attribute_mapping = {
            **current.to_json(),
            "pending": {**changed.to_json(), "affected": len(reach.affected)},
        }
        events.record(
            session,
            "app.headwater.mass_change.held",
            f"attribute mapping change of {app.label} held: it would update "
            f"{reach.updates} of {reach.active} active accounts",
            actor=actor,
            targets=_target(app),
            debug={"updates": reach.updates, "active": reach.active},
        )
        return Saved(current, len(reach.affected), held=True, pending=changed)
    _apply(session, app, changed, reach, actor)
    return Saved(changed, len(reach.affected))


def decide(session: Session, app_id: str, approve: bool, actor: Actor, impact: Impact) -> Saved:
    """Approve (applied now, whatever the threshold) or reject a held mapping change."""
    app = _app(session, app_id, lock=True)
    _, current, pending = load(session, app_id)
    if pending is None:
        raise InvalidRequest(
            "Api validation failed: mapping", ["mapping: no held change to decide"]
        )
    if not approve:
        app.attribute_mapping = None if current.is_default else current.to_json()
        events.record(
            session,
            "app.headwater.mass_change.rejected",
            f"held attribute mapping change of {app.label} rejected",
            actor=actor,
            targets=_target(app),
        )
        return Saved(current, 0)
    reach = impact(session, app_id, pending)
    _apply(session, app, pending, reach, actor)
    return Saved(pending, len(reach.affected))


def update_schema(session: Session, app_id: str, body: Any, actor: Actor) -> AppSchema:
    """Okta's partial update of the app user schema's custom attributes."""
    app = _app(session, app_id, lock=True)
    _, mapping, pending = load(session, app_id)
    if not isinstance(body, Mapping):
        raise InvalidRequest("Api validation failed: body", ["body: must be a JSON object"])
    custom = ((body.get("definitions") or {}).get("custom") or {}).get("properties")
    if custom is None:
        raise InvalidRequest(
            "Api validation failed: definitions.custom.properties",
            ["definitions.custom.properties: is required"],
        )
    mapped = set(mapping.properties) | set(pending.properties if pending else ())
    schema = schema_updated(mapping.schema, custom, app_id=app.id, mapped=mapped)
    app.user_schema = schema.to_json() if schema.custom else None
    app.last_updated = clock.utcnow()
    events.record(
        session,
        "app.headwater.app_schema.updated",
        f"app user schema of {app.label} changed: {len(schema.custom)} custom attribute(s)",
        actor=actor,
        targets=_target(app),
    )
    return schema
