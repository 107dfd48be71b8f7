"""Push by rule: every Okta group whose name matches an app's rule gets a push mapping, now and
whenever a group is created or renamed later (``apply_to_group``, called by the directory in
the same transaction as the change).

Matching is case-insensitive on the group name (``STARTS_WITH`` or ``CONTAINS``). Rules are
meant for a bounded number of groups (Okta recommends at most 100), so creating one maps its
groups in a bounded loop; a rule matching more than ``MAX_RULE_MATCHES`` groups is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, false, select, update
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Actor, Target
from headwater.db.rowsets import any_of
from headwater.domain.states import KeyKind
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest, NotFound
from headwater.services import grouppush
from headwater.services.apps import get_app
from headwater.services.validation import plausible_id

__all__ = [
    "MATCHES",
    "RuleSpec",
    "apply_to_group",
    "create_rule",
    "delete_rule",
    "get_rule",
    "rules_query",
]

STARTS_WITH, CONTAINS = "STARTS_WITH", "CONTAINS"
MATCHES = (STARTS_WITH, CONTAINS)
MAX_RULE_MATCHES = 1000
MAX_TEXT = 255
RULE_EVENT = "app.user_management.grouppush.mapping.created.from.rule"


@dataclass(frozen=True)
class RuleSpec:
    name: str
    match: str
    value: str
    status: str = grouppush.ACTIVE


def _invalid(cause: str) -> InvalidRequest:
    return InvalidRequest("Api validation failed: " + cause, [cause])


def _check_text(field: str, value: str) -> str:
    clean = value.strip()
    if not clean or len(clean) > MAX_TEXT or check_text(clean):
        raise _invalid(f"{field}: must be 1 to {MAX_TEXT} characters of text")
    return clean


def _rule_target(rule: t.PushRule) -> Target:
    return Target(rule.id, "GroupPushRule", rule.name, rule.name)


def _log(session: Session, actor: Actor, event_type: str, message: str, *targets: Target) -> None:
    events.record(session, event_type, message, actor=actor, targets=targets)


def matches(match: str, value: str, group_name: str) -> bool:
    """The rule's test, in Python (one group at a time)."""
    name, wanted = group_name.lower(), value.lower()
    return name.startswith(wanted) if match == STARTS_WITH else wanted in name


def _matching(rule: t.PushRule) -> ColumnElement[bool]:
    """The rule's test, in SQL (every group at once)."""
    wanted = rule.value.lower()
    if rule.match == STARTS_WITH:
        return t.Group.name_lower.startswith(wanted, autoescape=True)
    return t.Group.name_lower.contains(wanted, autoescape=True)


# --- Rules -------------------------------------------------------------------------------------


def get_rule(session: Session, app_id: str, rule_id: str) -> t.PushRule:
    rule = session.get(t.PushRule, rule_id) if plausible_id(rule_id) else None
    if rule is None or rule.app_id != app_id:
        raise NotFound(f"Not found: Resource not found: {rule_id} (GroupPushRule)")
    return rule


def rules_query(session: Session, app_id: str) -> Select[t.PushRule]:
    get_app(session, app_id)
    return select(t.PushRule).where(t.PushRule.app_id == app_id)


def create_rule(session: Session, actor: Actor, app_id: str, spec: RuleSpec) -> t.PushRule:
    """Store the rule; an ACTIVE rule maps every matching group at once."""
    get_app(session, app_id)
    if spec.match not in MATCHES:
        raise _invalid("match: must be STARTS_WITH or CONTAINS")
    if spec.status not in (grouppush.ACTIVE, grouppush.INACTIVE):
        raise _invalid("status: must be ACTIVE or INACTIVE")
    now = clock.utcnow()
    rule = t.PushRule(
        id=ids.new_id("gpr"),
        app_id=app_id,
        name=_check_text("name", spec.name),
        match=spec.match,
        value=_check_text("value", spec.value),
        status=spec.status,
        created=now,
        last_updated=now,
    )
    session.add(rule)
    session.flush()
    _log(
        session,
        actor,
        "app.headwater.grouppush.rule.created",
        "Push rule created",
        _rule_target(rule),
    )
    if rule.status == grouppush.ACTIVE:
        _map_matching_groups(session, actor, rule)
    return rule


def _unmapped_matching_groups(session: Session, rule: t.PushRule) -> list[t.Group]:
    mapped = select(t.PushMapping.source_group_id).where(
        t.PushMapping.app_id == rule.app_id, t.PushMapping.source_group_id.is_not(None)
    )
    groups = list(
        session.execute(
            select(t.Group)
            .where(t.Group.type == grouppush.OKTA_GROUP, _matching(rule), t.Group.id.not_in(mapped))
            .order_by(t.Group.id)
            .limit(MAX_RULE_MATCHES + 1)
        ).scalars()
    )
    if len(groups) > MAX_RULE_MATCHES:
        raise _invalid(f"value: the rule matches more than {MAX_RULE_MATCHES} groups")
    return groups


def _map_matching_groups(session: Session, actor: Actor, rule: t.PushRule) -> None:
    taken = grouppush.pushed_names(session, rule.app_id)
    for group in _unmapped_matching_groups(session, rule):
        _map_group(session, actor, rule, group, taken)


def _map_group(
    session: Session, actor: Actor, rule: t.PushRule, group: t.Group, taken: set[str]
) -> None:
    """One rule mapping, unless another mapping already pushes to that downstream name."""
    targets = (_rule_target(rule), Target(group.id, "UserGroup", group.name, group.name))
    if group.name.lower() in taken:
        message = f"No mapping made for {group.name}: another mapping pushes to that name"
        _log(session, actor, f"{RULE_EVENT}.warning.duplicate.name", message, *targets)
        return
    mapping = grouppush.add_mapping(session, rule.app_id, group.id, rule_id=rule.id)
    taken.add(group.name.lower())
    message = f"Group push mapping created from rule {rule.name}"
    _log(session, actor, RULE_EVENT, message, grouppush.mapping_target(mapping), *targets)


def delete_rule(
    session: Session, actor: Actor, app_id: str, rule_id: str, *, delete_mappings: bool
) -> None:
    """Delete the rule; its mappings stay (unlinked from it) unless ``delete_mappings``, which
    deactivates them and has the engine delete them with their downstream groups."""
    rule = get_rule(session, app_id, rule_id)
    if delete_mappings:
        _retire_mappings(session, rule)
        message = f"Push rule {rule.name} deleted with its mappings and groups"
        event = "app.user_management.grouppush.mapping.and.groups.deleted.rule.deleted"
    else:
        message = f"Push rule {rule.name} deleted; its mappings are kept"
        event = "app.headwater.grouppush.rule.deleted"
    _log(session, actor, event, message, _rule_target(rule))
    session.delete(rule)
    session.flush()


def _retire_mappings(session: Session, rule: t.PushRule) -> None:
    mapping_ids = list(
        session.execute(
            select(t.PushMapping.id).where(
                t.PushMapping.rule_id == rule.id, t.PushMapping.delete_requested == false()
            )
        ).scalars()
    )
    if not mapping_ids:
        return
    session.execute(
        update(t.PushMapping)
        .where(any_of(t.PushMapping.id, mapping_ids))
        .values(**grouppush.request_deletion_values())
        .execution_options(synchronize_session=False)
    )
    outbox.enqueue_keys(session, [(rule.app_id, KeyKind.PUSH, m) for m in mapping_ids])


# --- Groups created or renamed -----------------------------------------------------------------


def apply_to_group(session: Session, group_id: str) -> None:
    """Create mappings for ``group_id`` under every matching active rule, and pause rule
    mappings the group no longer matches (called on group create and rename, in the same
    transaction)."""
    group = session.get(t.Group, group_id)
    if group is None or group.type != grouppush.OKTA_GROUP:
        return
    _pause_unmatched(session, group)
    rules = session.execute(
        select(t.PushRule).where(t.PushRule.status == grouppush.ACTIVE).order_by(t.PushRule.id)
    ).scalars()
    mapped = set(
        session.execute(
            select(t.PushMapping.app_id).where(t.PushMapping.source_group_id == group.id)
        ).scalars()
    )
    for rule in rules:
        if rule.app_id in mapped or not matches(rule.match, rule.value, group.name):
            continue
        _map_group(session, SYSTEM, rule, group, grouppush.pushed_names(session, rule.app_id))
        mapped.add(rule.app_id)


def _pause_unmatched(session: Session, group: t.Group) -> None:
    """A renamed group that left its rule's scope: its rule mapping is deactivated (Okta's
    ``mapping.deactivated.source.group.renamed``), the downstream group is left alone."""
    rows = session.execute(
        select(t.PushMapping, t.PushRule)
        .join(t.PushRule, t.PushRule.id == t.PushMapping.rule_id)
        .where(
            t.PushMapping.source_group_id == group.id,
            t.PushMapping.status != grouppush.INACTIVE,
            t.PushMapping.delete_requested == false(),
        )
    ).all()
    for mapping, rule in rows:
        if matches(rule.match, rule.value, group.name):
            continue
        mapping.status = grouppush.INACTIVE
        mapping.last_updated = clock.utcnow()
        message = f"Mapping deactivated: {group.name} no longer matches rule {rule.name}"
        event = "application.provision.group_push.mapping.deactivated.source.group.renamed"
        _log(session, SYSTEM, event, message, grouppush.mapping_target(mapping), _rule_target(rule))
