"""The directory's user schema: read it, change it, and hold profile writes and saved
expressions to it.

Removing a custom attribute is refused while an app's attribute mapping (in force or held) or
username template reads it, naming the app: the app would otherwise send something else without
anyone deciding it. Group rules reading it turn INVALID with a system log event instead and
change nothing (Okta's behaviour for a rule that lost what it reads); fixing the rule makes it
INACTIVE again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import core, events
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Actor, Target
from headwater.domain.expressions import Type
from headwater.domain.mapping import check_user_name_template, template_reads
from headwater.domain.profile_mapping import AppMapping, AppSchema
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import RuleStatus
from headwater.domain.user_schema import UserSchema
from headwater.errors import InvalidRequest
from headwater.services import rule_evaluation

__all__ = ["check_profile", "check_template", "expression_types", "load", "update"]

SCHEMA_ID = "default"


#: Built once: every create and profile change reads it.
_DEFINITION = select(t.UserSchema.definition).where(t.UserSchema.id == SCHEMA_ID)


def load(session: Session, *, lock: bool = False) -> UserSchema:
    if lock:  # the row stays in the session for ``update`` to change
        row = session.get(t.UserSchema, SCHEMA_ID, with_for_update=True)
        return UserSchema.from_json(row.definition if row else None)
    # Every create and profile change reads it: the column alone, without an ORM object.
    definition = core.execute(session, _DEFINITION).scalar()
    return UserSchema.from_json(definition)


def expression_types(session: Session) -> dict[str, Type] | None:
    """The attribute types expressions are checked against when saved (None: no custom
    attribute is declared, any attribute may be read)."""
    return load(session).expression_types()


def check_profile(
    session: Session, profile: Mapping[str, Any], changed: Collection[str], *, complete: bool
) -> None:
    """400 naming each changed attribute whose value the schema refuses."""
    load(session).check_profile(profile, changed, complete=complete)


def check_template(session: Session, template: str, where: str) -> None:
    """A username template may read only attributes the schema declares (when it declares
    custom ones)."""
    types = expression_types(session)
    if types is not None:
        check_user_name_template(template, where, types)


def _refuse(where: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Api validation failed: {where}", [f"{where}: {problem}"])


def _check_apps(session: Session, removed: Collection[str]) -> None:
    """Refuse a removal while a mapping or a username template reads the attribute."""
    for app in session.execute(select(t.App).order_by(t.App.id)).scalars():
        schema = AppSchema.from_json(app.user_schema)
        stored = app.attribute_mapping or {}
        mappings = [AppMapping.from_json(stored, schema)]
        if stored.get("pending"):
            mappings.append(AppMapping.from_json(stored["pending"], schema))
        template = ProvisioningSettings.from_json(app.provisioning).user_name_template
        template_names = template_reads(template)
        for name in sorted(removed):
            where = f"definitions.custom.properties.{name}"
            reading = sorted({p for mapping in mappings for p in mapping.reads_user(name)})
            if reading:
                raise _refuse(
                    where,
                    f"is read by the attribute mapping of app {app.label} ({app.id}): "
                    f"{', '.join(reading)}; change the mapping first",
                )
            if name in template_names:
                raise _refuse(
                    where,
                    f"is read by the username template of app {app.label} ({app.id}); "
                    "change the template first",
                )


def _invalidate_rules(session: Session, removed: Collection[str]) -> list[str]:
    """Rules reading a removed attribute turn INVALID with a system log event; nothing else
    changes (the memberships they hold stay until the rule is fixed or deleted)."""
    rows = session.execute(
        select(t.GroupRule).where(t.GroupRule.status != RuleStatus.INVALID).order_by(t.GroupRule.id)
    ).scalars()
    invalidated: list[str] = []
    now = clock.utcnow()
    for row in rows:
        reads = rule_evaluation.compile_row(row).compiled.attributes_referenced
        lost = sorted(name for name in removed if ("user", name) in reads)
        if not lost:
            continue
        reason = f"attribute user.{lost[0]} was removed from the user schema"
        row.status = RuleStatus.INVALID
        row.invalid_reason = reason
        row.sweep_after = None
        row.revision += 1
        row.last_updated = now
        invalidated.append(row.id)
        events.record(
            session,
            "group.rule.invalidate",
            f"Group rule invalidated: {reason}",
            actor=SYSTEM,
            targets=(Target(row.id, "GroupRule", row.name, row.name),),
            outcome="FAILURE",
            reason=reason,
            severity="WARN",
        )
    return invalidated


def update(session: Session, body: Any, actor: Actor) -> UserSchema:
    """Okta's partial update: ``definitions.custom.properties``, ``null`` removes one. The base
    attributes cannot change (``definitions.base`` is ignored, as a client that sends the whole
    schema back would send it)."""
    if not isinstance(body, Mapping):
        raise _refuse("body", "must be a JSON object")
    definitions = body.get("definitions")
    custom = definitions.get("custom") if isinstance(definitions, Mapping) else None
    changes = custom.get("properties") if isinstance(custom, Mapping) else None
    if changes is None:
        raise _refuse("definitions.custom.properties", "is required")
    current = load(session, lock=True)
    new = current.updated(changes)
    if new == current:
        return current
    removed = sorted(set(current.by_name) - set(new.by_name))
    if removed:
        _check_apps(session, removed)
        _invalidate_rules(session, removed)
    row = session.get(t.UserSchema, SCHEMA_ID)
    now = clock.utcnow()
    if row is None:
        session.add(t.UserSchema(id=SCHEMA_ID, definition=new.to_json(), last_updated=now))
    else:
        row.definition = new.to_json()
        row.last_updated = now
    added = sorted(set(new.by_name) - set(current.by_name))
    events.record(
        session,
        "system.headwater.user_schema.update",
        f"User schema changed: {len(new.custom)} custom attribute(s)",
        actor=actor,
        targets=(Target(SCHEMA_ID, "UserSchema", "default", "User"),),
        debug={"added": ",".join(added), "removed": ",".join(removed)},
    )
    session.flush()
    return new


def last_updated(session: Session) -> Any:
    row = session.get(t.UserSchema, SCHEMA_ID)
    return row.last_updated if row else None
