"""Group rule use-cases (Okta's ``/api/v1/groups/rules``): create, replace, activate,
deactivate, delete, list.

A rule is created INACTIVE and checked when saved: the expression parses and type-checks, the
groups it names exist, counts are bounded, and no cycle runs through ``isMemberOf…``. Activation
marks it ACTIVE in one transaction, then :func:`run_sweep` evaluates it over the directory one
batch per transaction (``rule_evaluation``); from the moment it is ACTIVE every profile change
evaluates it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.db.events import Actor, Target, record
from headwater.db.rowsets import any_of
from headwater.domain import profiles
from headwater.domain.expressions import Context, Type, compile_expression
from headwater.domain.group_rules import (
    MAX_EXCLUDED,
    MAX_GROUPS,
    MAX_RULES,
    RuleDefinition,
    compile_rule,
    find_cycle,
    invalid,
)
from headwater.domain.lifecycle import DELETED
from headwater.domain.states import GroupType, RuleStatus
from headwater.errors import InvalidRequest, NotFound
from headwater.services import rule_evaluation, user_schema
from headwater.services.rule_evaluation import SweepProgress
from headwater.services.validation import plausible_id

__all__ = [
    "MAX_NAME",
    "Preview",
    "RuleSpec",
    "activate_rule",
    "create_rule",
    "deactivate_rule",
    "delete_rule",
    "get_rule",
    "holdings_of_user",
    "preview",
    "replace_rule",
    "rules_query",
    "run_sweep",
]

#: Okta's limit on a rule's name.
MAX_NAME = 50


@dataclass(frozen=True)
class RuleSpec:
    """What a caller asks a rule to be (the wire format is the API's business)."""

    name: str
    expression: str
    group_ids: Sequence[str]
    exclude_user_ids: Sequence[str] = ()
    exclude_group_ids: Sequence[str] = ()


def _target(rule: t.GroupRule) -> Target:
    return Target(rule.id, "GroupRule", rule.name, rule.name)


def _log(session: Session, actor: Actor, event_type: str, message: str, rule: t.GroupRule) -> None:
    record(session, event_type, message, actor=actor, targets=(_target(rule),))


def get_rule(session: Session, rule_id: str, *, lock: bool = False) -> t.GroupRule:
    rule = (
        session.get(t.GroupRule, rule_id, with_for_update=lock) if plausible_id(rule_id) else None
    )
    if rule is None:
        raise NotFound(f"Not found: Resource not found: {rule_id} (GroupRule)")
    return rule


def rules_query(search: str | None = None) -> Select[t.GroupRule]:
    """Rules in creation order; ``search`` matches a part of the name (any case)."""
    query = select(t.GroupRule)
    if search:
        if len(search) > 255 or profiles.check_text(search):
            raise invalid("search: must be up to 255 characters of text")
        query = query.where(func.lower(t.GroupRule.name).contains(search.lower(), autoescape=True))
    return query


@dataclass(frozen=True)
class RuleListing:
    """A page of rules with what a list shows beside each: memberships held, group names."""

    rules: list[t.GroupRule]
    held: dict[str, int]
    group_names: dict[str, str]


def list_rules(session: Session, search: str | None = None, *, limit: int) -> RuleListing:
    """Up to ``limit`` rules in creation order, with their holdings counted and their groups
    named (three queries, whatever the page's size)."""
    rules = list(
        session.execute(rules_query(search).order_by(t.GroupRule.id).limit(limit)).scalars()
    )
    held = session.execute(
        select(t.GroupRuleMember.rule_id, func.count())
        .where(any_of(t.GroupRuleMember.rule_id, [rule.id for rule in rules]))
        .group_by(t.GroupRuleMember.rule_id)
    ).all()
    names = session.execute(
        select(t.Group.id, t.Group.name).where(
            any_of(t.Group.id, {g for rule in rules for g in rule.group_ids})
        )
    ).all()
    return RuleListing(rules, {r: int(n) for r, n in held}, {g: str(n) for g, n in names})


# --- Checks -------------------------------------------------------------------------------------


def _ids(field: str, values: Sequence[str], limit: int, *, at_least: int = 0) -> list[str]:
    unique = list(dict.fromkeys(values))
    if not at_least <= len(unique) <= limit:
        raise invalid(f"{field}: {at_least} to {limit} ids")
    for value in unique:
        if not isinstance(value, str) or not plausible_id(value):
            raise invalid(f"{field}: {str(value)[:64]!r} is not an id")
    return unique


def _check_groups(session: Session, field: str, group_ids: Sequence[str]) -> None:
    found = dict(
        session.execute(select(t.Group.id, t.Group.type).where(t.Group.id.in_(group_ids))).all()
    )
    for group_id in group_ids:
        if group_id not in found:
            raise invalid(f"{field}: group {group_id} does not exist")
        if field.startswith("actions") and found[group_id] != GroupType.OKTA_GROUP:
            raise invalid(
                f"{field}: group {group_id} is an {found[group_id]}; rules fill Okta groups"
            )


def _check_users(session: Session, user_ids: Sequence[str]) -> None:
    found = set(
        session.execute(
            select(t.User.id).where(t.User.id.in_(user_ids), t.User.status != DELETED)
        ).scalars()
    )
    for user_id in user_ids:
        if user_id not in found:
            raise invalid(f"conditions.people.users.exclude: user {user_id} does not exist")


def _definition(session: Session, rule_id: str, spec: RuleSpec) -> RuleDefinition:
    name = spec.name.strip() if isinstance(spec.name, str) else ""
    if not 1 <= len(name) <= MAX_NAME or profiles.check_text(name):
        raise invalid(f"name: 1 to {MAX_NAME} characters of text")
    if not isinstance(spec.expression, str) or not spec.expression.strip():
        raise invalid("conditions.expression.value: an expression is required")
    problem = profiles.check_text(spec.expression)
    if problem:
        raise invalid(f"conditions.expression.value: {problem}")
    groups = _ids("actions.assignUserToGroups.groupIds", spec.group_ids, MAX_GROUPS, at_least=1)
    users = _ids("conditions.people.users.exclude", spec.exclude_user_ids, MAX_EXCLUDED)
    excluded = _ids("conditions.people.groups.exclude", spec.exclude_group_ids, MAX_EXCLUDED)
    definition = RuleDefinition(
        rule_id, name, spec.expression, tuple(groups), frozenset(users), frozenset(excluded)
    )
    try:
        compiled = compile_rule(definition)
    except InvalidRequest as error:
        problem = error.causes[0] if error.causes else error.summary
        field = "conditions.expression.value"
        raise InvalidRequest(f"Api validation failed: {field}", [f"{field}: {problem}"]) from None
    types = user_schema.expression_types(session)
    if types is not None:
        try:
            compile_expression(
                definition.expression, context=Context.group_rule(types), expect=Type.BOOLEAN
            )
        except InvalidRequest as error:
            problem = error.causes[0] if error.causes else error.summary
            field = "conditions.expression.value"
            raise InvalidRequest(
                f"Api validation failed: {field}", [f"{field}: {problem}"]
            ) from None
    _check_groups(session, "actions.assignUserToGroups.groupIds", groups)
    _check_groups(session, "conditions.people.groups.exclude", excluded)
    by_id = sorted(ref.value for ref in compiled.reads if ref.kind == "id")
    _check_groups(session, "conditions.expression.value", by_id)
    _check_users(session, users)
    return definition


def _check_cycles(session: Session, definition: RuleDefinition) -> None:
    """No chain of rules may feed itself through the groups they read and write. The stored
    rules have no cycle, so only a rule that reads groups can close one."""
    if not compile_rule(definition).reads:
        return
    rows = session.execute(select(t.GroupRule).where(t.GroupRule.id != definition.id)).scalars()
    rules = [rule_evaluation.compile_row(row) for row in rows]
    rules.append(compile_rule(definition))
    targets = sorted({g for rule in rules for g in rule.definition.group_ids})
    names = dict(
        session.execute(select(t.Group.id, t.Group.name).where(any_of(t.Group.id, targets))).all()
    )
    cycle = find_cycle(rules, names)
    if cycle is None:
        return
    by_id = {rule.id: rule.definition.name for rule in rules}
    chain = " → ".join(by_id[rule_id] for rule_id in cycle)
    raise invalid(
        "conditions.expression.value: the rules would feed each other through group "
        f"membership: {chain}"
    )


# --- Use-cases ----------------------------------------------------------------------------------


def create_rule(session: Session, actor: Actor, spec: RuleSpec) -> t.GroupRule:
    """A new rule, INACTIVE as Okta creates them."""
    count = session.execute(select(func.count()).select_from(t.GroupRule)).scalar_one()
    if count >= MAX_RULES:
        raise invalid(f"name: an organisation has at most {MAX_RULES} group rules")
    rule_id = ids.new_id("0pr")
    definition = _definition(session, rule_id, spec)
    _check_cycles(session, definition)
    now = clock.utcnow()
    rule = t.GroupRule(
        id=rule_id,
        name=definition.name,
        status=RuleStatus.INACTIVE,
        expression=definition.expression,
        group_ids=list(definition.group_ids),
        exclude_user_ids=sorted(definition.exclude_user_ids),
        exclude_group_ids=sorted(definition.exclude_group_ids),
        invalid_reason=None,
        revision=1,
        sweep_after=None,
        created=now,
        last_updated=now,
    )
    session.add(rule)
    session.flush()
    _log(session, actor, "group.rule.create", f"Create group rule {rule.name}", rule)
    return rule


def replace_rule(session: Session, actor: Actor, rule_id: str, spec: RuleSpec) -> t.GroupRule:
    """Okta's PUT: only an INACTIVE (or INVALID) rule may change; a fixed INVALID rule is
    INACTIVE again."""
    rule = get_rule(session, rule_id, lock=True)
    if rule.status == RuleStatus.ACTIVE:
        raise invalid("status: an active rule cannot be changed; deactivate it first")
    definition = _definition(session, rule.id, spec)
    _check_cycles(session, definition)
    rule.name = definition.name
    rule.expression = definition.expression
    rule.group_ids = list(definition.group_ids)
    rule.exclude_user_ids = sorted(definition.exclude_user_ids)
    rule.exclude_group_ids = sorted(definition.exclude_group_ids)
    rule.status = RuleStatus.INACTIVE
    rule.invalid_reason = None
    rule.revision += 1
    rule.last_updated = clock.utcnow()
    session.flush()
    _log(session, actor, "group.rule.update", f"Update group rule {rule.name}", rule)
    return rule


def activate_rule(session: Session, actor: Actor, rule_id: str) -> t.GroupRule:
    """ACTIVE from now on (profile changes evaluate it); the directory-wide evaluation is
    :func:`run_sweep`'s, starting from the first user. Activating an active rule changes
    nothing."""
    rule = get_rule(session, rule_id, lock=True)
    if rule.status == RuleStatus.ACTIVE:
        return rule
    if rule.status == RuleStatus.INVALID:
        raise invalid(f"status: the rule is invalid ({rule.invalid_reason}); fix it first")
    definition = _definition(
        session,
        rule.id,
        RuleSpec(
            rule.name,
            rule.expression,
            rule.group_ids,
            rule.exclude_user_ids,
            rule.exclude_group_ids,
        ),
    )
    _check_cycles(session, definition)
    rule.status = RuleStatus.ACTIVE
    rule.sweep_after = ""
    rule.revision += 1
    rule.last_updated = clock.utcnow()
    session.flush()
    _log(session, actor, "group.rule.activate", f"Activate group rule {rule.name}", rule)
    return rule


def deactivate_rule(
    session: Session, actor: Actor, rule_id: str, *, remove_users: bool = False
) -> t.GroupRule:
    """INACTIVE: profile changes no longer evaluate it. The memberships it holds stay (as
    Okta's), frozen, unless ``remove_users``."""
    rule = get_rule(session, rule_id, lock=True)
    if rule.status != RuleStatus.ACTIVE and not remove_users:
        return rule
    if rule.status == RuleStatus.ACTIVE:
        rule.status = RuleStatus.INACTIVE
        rule.sweep_after = None
        rule.revision += 1
        rule.last_updated = clock.utcnow()
        session.flush()
        _log(session, actor, "group.rule.deactivate", f"Deactivate group rule {rule.name}", rule)
    if remove_users:
        rule_evaluation.release_rule(session, rule.id, actor, remove_users=True)
    return rule


def delete_rule(session: Session, actor: Actor, rule_id: str, *, remove_users: bool) -> None:
    """Delete an inactive rule. ``remove_users``: memberships only it holds go; otherwise they
    stay, as manual memberships (Okta's default)."""
    rule = get_rule(session, rule_id, lock=True)
    if rule.status == RuleStatus.ACTIVE:
        raise invalid("status: an active rule cannot be deleted; deactivate it first")
    rule_evaluation.release_rule(session, rule.id, actor, remove_users=remove_users)
    _log(session, actor, "group.rule.delete", f"Delete group rule {rule.name}", rule)
    session.delete(rule)
    session.flush()


def run_sweep(
    database: Database,
    rule_id: str,
    actor: Actor,
    *,
    batch: int = rule_evaluation.SWEEP_BATCH,
    progress: Callable[[SweepProgress, int], None] | None = None,
) -> SweepProgress:
    """Evaluate an activated rule over the whole directory, one batch per transaction, and
    return the totals. ``progress(batch result, users so far)`` after each batch. Resumable:
    a sweep cut short continues from the last committed batch."""
    evaluated = added = removed = 0
    while True:
        with database.transaction() as session:
            step = rule_evaluation.sweep_batch(session, rule_id, actor, batch=batch)
        evaluated, added, removed = (
            evaluated + step.evaluated,
            added + step.added,
            removed + step.removed,
        )
        if progress is not None:
            progress(step, evaluated)
        if step.done:
            return SweepProgress(evaluated, added, removed, True)


def holdings_of_user(session: Session, user_id: str) -> list[tuple[t.GroupRule, str]]:
    """(rule, group id) for every membership of the user a rule holds."""
    rows = session.execute(
        select(t.GroupRule, t.GroupRuleMember.group_id)
        .join(t.GroupRuleMember, t.GroupRuleMember.rule_id == t.GroupRule.id)
        .where(t.GroupRuleMember.user_id == user_id)
        .order_by(t.GroupRule.id)
    ).all()
    return [(rule, group_id) for rule, group_id in rows]


@dataclass(frozen=True)
class Preview:
    """Who an expression would match: a count over the people read, and a sample."""

    matched: int
    scanned: int
    sample: tuple[str, ...]
    complete: bool


def preview(
    session: Session, expression: str, *, sample: int = 10, limit: int = 100_000
) -> Preview:
    """Evaluate ``expression`` as a rule over up to ``limit`` people (read-only, in pages);
    InvalidRequest when it would be refused on save."""
    definition = RuleDefinition("preview", "preview", expression, ("preview",))
    try:
        rule = compile_rule(definition)
    except InvalidRequest as error:
        problem = error.causes[0] if error.causes else error.summary
        raise invalid(f"conditions.expression.value: {problem}") from None
    matched, scanned = 0, 0
    logins: list[str] = []
    after = ""
    columns = (
        t.User.id,
        t.User.login,
        t.User.profile,
        t.User.status,
        t.User.created,
        t.User.last_updated,
    )
    while scanned < limit:
        rows = session.execute(
            select(*columns)
            .where(t.User.id > after, t.User.status != DELETED)
            .order_by(t.User.id)
            .limit(min(2000, limit - scanned))
        ).all()
        if not rows:
            return Preview(matched, scanned, tuple(sorted(logins)[:sample]), True)
        groups: dict[str, set[str]] = {}
        names: dict[str, set[str]] = {}
        if rule.reads_groups:
            for user_id, group_id, name in session.execute(
                select(t.Membership.user_id, t.Group.id, t.Group.name)
                .join(t.Group, t.Group.id == t.Membership.group_id)
                .where(any_of(t.Membership.user_id, [row.id for row in rows]))
            ):
                groups.setdefault(user_id, set()).add(group_id)
                names.setdefault(user_id, set()).add(name)
        for row in rows:
            facts = rule_evaluation.facts_of(
                row, groups.get(row.id, set()), names.get(row.id, set())
            )
            if rule.matches(row.id, facts):
                matched += 1
                if len(logins) < sample:
                    logins.append(row.login)
        scanned += len(rows)
        after = rows[-1].id
    return Preview(matched, scanned, tuple(sorted(logins)), False)
