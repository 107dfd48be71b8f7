"""Group rules at work: memberships a rule holds, written set-based with their downstream keys.

A membership row exists while it is ``manual`` or some rule holds it (``group_rule_members``).
Every write here happens in the caller's transaction and enqueues the keys of the memberships
that really appeared or disappeared (``outbox.enqueue_membership_change``), so a rule's effect
reaches the apps exactly as an admin's change would.

Two ways in:

* :func:`evaluate_user`: after a user is created, changes profile or status, or joins or leaves
  a group by hand, the active rules are evaluated for that user, in dependency order, in the
  same transaction. Compiled rules are cached per process and refreshed when a rule's
  ``revision`` moves.
* :func:`sweep_batch`: activation evaluates one rule over the whole directory, one bounded
  batch of users per transaction, resuming from ``sweep_after``.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater import clock
from headwater.db import core, outbox
from headwater.db import tables as t
from headwater.db.events import SYSTEM, Actor, Target, record
from headwater.db.rowsets import any_of, rows_in
from headwater.domain.expressions import Facts
from headwater.domain.group_rules import (
    CompiledRule,
    RuleDefinition,
    compile_rule,
    matching_groups,
    order_rules,
)
from headwater.domain.lifecycle import DELETED
from headwater.domain.states import RuleStatus

__all__ = [
    "SWEEP_BATCH",
    "Holding",
    "SweepProgress",
    "active_rules",
    "compile_row",
    "definition_of",
    "evaluate_user",
    "facts_of",
    "forget_user",
    "group_deleted",
    "group_renamed",
    "release_rule",
    "sweep_batch",
    "write_changes",
]

#: Users evaluated per activation transaction.
SWEEP_BATCH = 2000
#: Rows per statement when a change is written.
_CHUNK = 500
#: Above this many memberships of one group in one write, one summary event is logged
#: instead of one event per membership.
_EVENTS_EACH = 50

#: (rule id, group id, user id)
Holding = tuple[str, str, str]


def definition_of(row: t.GroupRule) -> RuleDefinition:
    return RuleDefinition(
        row.id,
        row.name,
        row.expression,
        tuple(row.group_ids),
        frozenset(row.exclude_user_ids),
        frozenset(row.exclude_group_ids),
    )


# --- The cache of compiled active rules ---------------------------------------------------------


@dataclass(frozen=True)
class _Active:
    key: frozenset[tuple[str, int]]
    ordered: tuple[CompiledRule, ...]
    names: dict[str, str]
    by_name: bool


_compiled: dict[tuple[str, int], CompiledRule] = {}
_active: dict[str, _Active] = {}
_lock = threading.Lock()


def compile_row(row: t.GroupRule) -> CompiledRule:
    """The rule compiled, from the cache while its revision is unchanged."""
    key = (row.id, row.revision)
    found = _compiled.get(key)
    if found is None:
        found = compile_rule(definition_of(row))
        with _lock:
            if len(_compiled) > 10_000:
                _compiled.clear()
            _compiled[key] = found
    return found


#: Built once: every create and profile change reads it.
_ACTIVE_STAMPS = select(t.GroupRule.id, t.GroupRule.revision).where(
    t.GroupRule.status == RuleStatus.ACTIVE
)


def active_rules(session: Session) -> _Active:
    """The active rules, compiled and in dependency order: one small query when unchanged."""
    bind = str(session.get_bind().engine.url)
    stamps = frozenset(
        (rule_id, revision) for rule_id, revision in core.execute(session, _ACTIVE_STAMPS).all()
    )
    cached = _active.get(bind)
    if cached is not None and cached.key == stamps:
        return cached
    missing = sorted(
        rule_id for rule_id, revision in stamps if (rule_id, revision) not in _compiled
    )
    for chunk in _chunks(missing):
        for row in session.execute(
            select(t.GroupRule).where(any_of(t.GroupRule.id, chunk))
        ).scalars():
            compile_row(row)
    found = [_compiled.get(stamp) for stamp in sorted(stamps)]
    compiled = [rule for rule in found if rule is not None]
    if len(compiled) != len(found):
        # A rule changed between the two reads (or the cache was trimmed): read them whole.
        return _active_uncached(session)
    targets = {group_id for rule in compiled for group_id in rule.definition.group_ids}
    names = dict(
        session.execute(select(t.Group.id, t.Group.name).where(any_of(t.Group.id, targets))).all()
    )
    fresh = _Active(
        stamps,
        order_rules(compiled, names),
        names,
        any(ref.kind != "id" for rule in compiled for ref in rule.reads),
    )
    with _lock:
        _active[bind] = fresh
    return fresh


def _active_uncached(session: Session) -> _Active:
    """The active rules read whole (a rule changed between two reads of this transaction)."""
    rows = (
        session.execute(select(t.GroupRule).where(t.GroupRule.status == RuleStatus.ACTIVE))
        .scalars()
        .all()
    )
    rules = [compile_row(row) for row in sorted(rows, key=lambda row: row.id)]
    targets = {group_id for rule in rules for group_id in rule.definition.group_ids}
    names = dict(
        session.execute(select(t.Group.id, t.Group.name).where(any_of(t.Group.id, targets))).all()
    )
    return _Active(
        frozenset((row.id, row.revision) for row in rows),
        order_rules(rules, names),
        names,
        any(ref.kind != "id" for rule in rules for ref in rule.reads),
    )


# --- Writing what rules hold --------------------------------------------------------------------


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def write_changes(
    session: Session,
    actor: Actor,
    adds: Iterable[Holding],
    removes: Iterable[Holding],
    *,
    because: str = "",
) -> tuple[int, int]:
    """Record rule holdings added and removed; memberships appear and disappear accordingly
    (one held by hand or by another rule stays). Logs and enqueues the real changes; returns
    (memberships added, memberships removed)."""
    now = clock.utcnow()
    added_pairs: list[tuple[str, str]] = []
    removed_pairs: list[tuple[str, str]] = []
    insert = _insert(session)
    add_list = sorted(set(adds))
    holding_rows = insert(t.GroupRuleMember.__table__).on_conflict_do_nothing()
    membership_rows = insert(t.Membership.__table__).on_conflict_do_nothing()
    for chunk in _chunks(add_list):
        # executemany through Core: one compiled statement, whatever the chunk's size.
        session.execute(
            holding_rows,
            [{"rule_id": r, "group_id": g, "user_id": u, "created": now} for r, g, u in chunk],
        )
        pairs = sorted({(g, u) for _, g, u in chunk})
        present = set(
            session.execute(
                select(t.Membership.group_id, t.Membership.user_id).where(
                    rows_in((t.Membership.group_id, t.Membership.user_id), pairs)
                )
            ).all()
        )
        new = [(g, u) for g, u in pairs if (g, u) not in present]
        if new:
            session.execute(
                membership_rows,
                [{"group_id": g, "user_id": u, "created": now, "manual": False} for g, u in new],
            )
        added_pairs += new
    remove_list = sorted(set(removes))
    for chunk in _chunks(remove_list):
        session.execute(
            delete(t.GroupRuleMember).where(
                rows_in(
                    (
                        t.GroupRuleMember.rule_id,
                        t.GroupRuleMember.group_id,
                        t.GroupRuleMember.user_id,
                    ),
                    chunk,
                )
            )
        )
        pairs = sorted({(g, u) for _, g, u in chunk})
        held = exists().where(
            t.GroupRuleMember.group_id == t.Membership.group_id,
            t.GroupRuleMember.user_id == t.Membership.user_id,
        )
        rows = session.execute(
            delete(t.Membership)
            .where(
                rows_in((t.Membership.group_id, t.Membership.user_id), pairs),
                t.Membership.manual.is_(False),
                ~held,
            )
            .returning(t.Membership.group_id, t.Membership.user_id)
        ).all()
        removed_pairs += [(g, u) for g, u in rows]
    _announce(session, actor, added_pairs, removed_pairs, because, now)
    return len(added_pairs), len(removed_pairs)


def _announce(
    session: Session,
    actor: Actor,
    added: list[tuple[str, str]],
    removed: list[tuple[str, str]],
    because: str,
    now: Any,
) -> None:
    changed: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for group_id, user_id in added:
        changed[group_id][0].append(user_id)
    for group_id, user_id in removed:
        changed[group_id][1].append(user_id)
    if not changed:
        return
    session.execute(
        update(t.Group)
        .where(any_of(t.Group.id, sorted(changed)))
        .values(last_membership_updated=now)
        .execution_options(synchronize_session=False)
    )
    groups = dict(
        session.execute(
            select(t.Group.id, t.Group.name).where(any_of(t.Group.id, sorted(changed)))
        ).all()
    )
    debug = {"reason": because} if because else None
    for group_id, (joined, left) in sorted(changed.items()):
        name = groups.get(group_id, group_id)
        group = Target(group_id, "UserGroup", name, name)
        for event_type, message, users in (
            ("group.user_membership.add", "Add user to group membership", joined),
            ("group.user_membership.remove", "Remove user from group membership", left),
        ):
            if not users:
                continue
            if len(users) <= _EVENTS_EACH:
                logins = dict(
                    session.execute(
                        select(t.User.id, t.User.login).where(any_of(t.User.id, users))
                    ).all()
                )
                for user_id in users:
                    login = logins.get(user_id, user_id)
                    person = Target(user_id, "User", login, login)
                    record(
                        session,
                        event_type,
                        message,
                        actor=actor,
                        targets=(person, group),
                        debug=debug,
                    )
            else:
                record(
                    session,
                    event_type,
                    f"{message}: {len(users)} users",
                    actor=actor,
                    targets=(group,),
                    debug={**(debug or {}), "count": len(users)},
                )
        for users in (joined, left):
            for chunk in _chunks(users):
                outbox.enqueue_membership_change(session, group_id, list(chunk))


# --- One user ------------------------------------------------------------------------------------


class _Internal(Mapping[str, object]):
    """``user.getInternalProperty``'s values, formatted only when an expression asks."""

    __slots__ = ("_values",)

    def __init__(self, user_id: str, status: str, created: Any, last_updated: Any) -> None:
        self._values = (user_id, status, created, last_updated)

    def _get(self, name: str) -> object:
        user_id, status, created, last_updated = self._values
        if name == "id":
            return user_id
        if name == "status":
            return status
        if name in ("created", "lastUpdated"):
            value = created if name == "created" else last_updated
            return value.isoformat() if value is not None else None
        raise KeyError(name)

    def __getitem__(self, name: str) -> object:
        return self._get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(("id", "status", "created", "lastUpdated"))

    def __len__(self) -> int:
        return 4


def facts_of(user: Any, group_ids: set[str], group_names: set[str]) -> Facts:
    """Facts of a ``t.User`` or a row with the same columns."""
    internal = _Internal(user.id, user.status, user.created, user.last_updated)
    return Facts(user=user.profile, internal=internal, group_ids=group_ids, group_names=group_names)


def evaluate_user(session: Session, user: t.User, actor: Actor = SYSTEM) -> tuple[int, int]:
    """Bring what the active rules hold for ``user`` in line with its profile now."""
    active = active_rules(session)
    if not active.ordered or user.status == DELETED:
        return 0, 0
    session.flush()
    memberships = session.execute(
        select(t.Membership.group_id, t.Membership.manual).where(t.Membership.user_id == user.id)
    ).all()
    holdings = session.execute(
        select(t.GroupRuleMember.rule_id, t.GroupRuleMember.group_id).where(
            t.GroupRuleMember.user_id == user.id
        )
    ).all()
    active_ids = {rule.id for rule in active.ordered}
    kept = {group_id for group_id, manual in memberships if manual}
    kept |= {group_id for rule_id, group_id in holdings if rule_id not in active_ids}
    names: set[str] = set()
    if active.by_name and kept:
        names = set(session.execute(select(t.Group.name).where(any_of(t.Group.id, kept))).scalars())
    wanted = matching_groups(
        active.ordered,
        user.id,
        facts_of(user, kept, names),
        lambda group_id: active.names.get(group_id, ""),
    )
    current = {(r, g) for r, g in holdings if r in active_ids}
    adds = [(r, g, user.id) for r, g in wanted - current]
    removes = [(r, g, user.id) for r, g in current - wanted]
    if not adds and not removes:
        return 0, 0
    return write_changes(session, actor, adds, removes, because="group rule")


def forget_user(session: Session, user_id: str) -> None:
    """A deleted user's rule holdings go with their memberships."""
    session.execute(delete(t.GroupRuleMember).where(t.GroupRuleMember.user_id == user_id))


# --- A whole rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepProgress:
    """One batch of an activation: users evaluated, memberships added and removed."""

    evaluated: int
    added: int
    removed: int
    done: bool


def _needs_each_user(session: Session, rule: CompiledRule) -> bool:
    """Whether the sweep must evaluate every active rule per user: the rule reads groups, or
    another active rule reads a group this one writes."""
    if rule.reads_groups:
        return True
    active = active_rules(session)
    targets = set(rule.definition.group_ids)
    for other in active.ordered:
        if other.id == rule.id:
            continue
        for reference in other.reads:
            if any(reference.matches(g, active.names.get(g, "")) for g in targets):
                return True
    return False


def sweep_batch(
    session: Session, rule_id: str, actor: Actor = SYSTEM, *, batch: int = SWEEP_BATCH
) -> SweepProgress:
    """Evaluate the next batch of users for an activating rule (in this transaction)."""
    row = session.get(t.GroupRule, rule_id, with_for_update=True)
    if row is None or row.status != RuleStatus.ACTIVE or row.sweep_after is None:
        return SweepProgress(0, 0, 0, True)
    rule = compile_row(row)
    each = _needs_each_user(session, rule)
    columns = (t.User.id, t.User.profile, t.User.status, t.User.created, t.User.last_updated)
    query = (
        (select(t.User) if each else select(*columns))
        .where(t.User.id > row.sweep_after, t.User.status != DELETED)
        .order_by(t.User.id)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # a concurrent profile change waits for this batch
    users: list[Any] = list(session.execute(query).scalars() if each else session.execute(query))
    added = removed = 0
    if each:
        for user in users:
            a, r = evaluate_user(session, user, actor)
            added, removed = added + a, removed + r
    elif users:
        ids = [user.id for user in users]
        matched = {user.id for user in users if rule.matches(user.id, facts_of(user, set(), set()))}
        held = set(
            session.execute(
                select(t.GroupRuleMember.user_id).where(
                    t.GroupRuleMember.rule_id == rule_id, any_of(t.GroupRuleMember.user_id, ids)
                )
            ).scalars()
        )
        groups = rule.definition.group_ids
        existing = set(
            session.execute(
                select(t.GroupRuleMember.group_id, t.GroupRuleMember.user_id).where(
                    t.GroupRuleMember.rule_id == rule_id, any_of(t.GroupRuleMember.user_id, ids)
                )
            ).all()
        )
        adds = [(rule_id, g, u) for u in matched for g in groups if (g, u) not in existing]
        removes = [(rule_id, g, u) for g, u in existing if u in held - matched]
        added, removed = write_changes(session, actor, adds, removes, because=f"rule {row.name}")
    done = len(users) < batch
    row.sweep_after = None if done else users[-1].id
    return SweepProgress(len(users), added, removed, done)


def release_rule(session: Session, rule_id: str, actor: Actor, *, remove_users: bool) -> int:
    """Take back what a rule holds (``remove_users``: memberships no one else holds go, and
    active rules reading those groups are evaluated again for the people concerned) or hand
    it over (every membership it holds becomes manual, so it stays). Returns the memberships
    removed."""
    if not remove_users:
        mine = exists().where(
            t.GroupRuleMember.group_id == t.Membership.group_id,
            t.GroupRuleMember.user_id == t.Membership.user_id,
            t.GroupRuleMember.rule_id == rule_id,
        )
        session.execute(
            update(t.Membership)
            .where(t.Membership.manual.is_(False), mine)
            .values(manual=True)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(t.GroupRuleMember).where(t.GroupRuleMember.rule_id == rule_id))
        return 0
    removed = 0
    affected: set[str] = set()
    while True:
        rows = session.execute(
            select(t.GroupRuleMember.group_id, t.GroupRuleMember.user_id)
            .where(t.GroupRuleMember.rule_id == rule_id)
            .limit(SWEEP_BATCH)
        ).all()
        if not rows:
            break
        _, gone = write_changes(
            session, actor, [], [(rule_id, g, u) for g, u in rows], because="rule removed"
        )
        removed += gone
        affected.update(u for _, u in rows)
    if any(rule.reads_groups for rule in active_rules(session).ordered):
        # Active rules that read the groups this one gave up see the change now.
        for user_id in sorted(affected):
            user = session.get(t.User, user_id)
            if user is not None:
                evaluate_user(session, user, actor)
    return removed


# --- Rules that lose a group ---------------------------------------------------------------------


def _names_group(rule: CompiledRule, group_id: str) -> bool:
    definition = rule.definition
    return (
        group_id in definition.group_ids
        or group_id in definition.exclude_group_ids
        or any(ref.kind == "id" and ref.value == group_id for ref in rule.reads)
    )


def group_deleted(session: Session, group_id: str, group_name: str) -> list[str]:
    """Rules naming a group being deleted turn INVALID (with a system log event) and change
    nothing more; the memberships of the group itself go with it. Returns their ids."""
    rows = session.execute(
        select(t.GroupRule).where(t.GroupRule.status != RuleStatus.INVALID).order_by(t.GroupRule.id)
    ).scalars()
    invalidated: list[str] = []
    now = clock.utcnow()
    for row in rows:
        if not _names_group(compile_row(row), group_id):
            continue
        reason = f"group {group_name} ({group_id}) was deleted"
        row.status = RuleStatus.INVALID
        row.invalid_reason = reason
        row.sweep_after = None
        row.revision += 1
        row.last_updated = now
        invalidated.append(row.id)
        record(
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


def group_renamed(session: Session, group_id: str) -> None:
    """Active rules filling a renamed group get a new revision, so every process reloads the
    names that ``isMemberOfGroupName…`` functions of later rules are matched against."""
    filling = [
        rule.id for rule in active_rules(session).ordered if group_id in rule.definition.group_ids
    ]
    if filling:
        session.execute(
            update(t.GroupRule)
            .where(any_of(t.GroupRule.id, filling))
            .values(revision=t.GroupRule.revision + 1)
            .execution_options(synchronize_session=False)
        )
