"""Group rules, pure: compile a rule once, order rules so one's output feeds the next, refuse
cycles, and decide which groups the active rules put one user in.

A rule reads groups through ``isMemberOf…`` functions and its excluded groups, and writes its
target groups. Rule B depends on rule A when A writes a group B reads; a cycle there would make
memberships flip-flop, so it is refused when a rule is saved or activated. Without cycles, one
pass in dependency order gives the final memberships for a user.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from headwater.domain.expressions import (
    Compiled,
    Context,
    EvaluationError,
    Facts,
    GroupReference,
    Type,
    compile_expression,
)
from headwater.errors import InvalidRequest

__all__ = [
    "EXPRESSION_TYPE",
    "MAX_EXCLUDED",
    "MAX_GROUPS",
    "MAX_RULES",
    "CompiledRule",
    "RuleDefinition",
    "compile_rule",
    "find_cycle",
    "matching_groups",
    "order_rules",
]

EXPRESSION_TYPE = "urn:okta:expression:1.0"
#: Okta's limit of group rules per organisation.
MAX_RULES = 2000
#: Target groups of one rule.
MAX_GROUPS = 100
#: Excluded users, and excluded groups, of one rule.
MAX_EXCLUDED = 100


@dataclass(frozen=True)
class RuleDefinition:
    """What a rule says, as stored."""

    id: str
    name: str
    expression: str
    group_ids: tuple[str, ...]
    exclude_user_ids: frozenset[str] = frozenset()
    exclude_group_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A rule ready to evaluate; ``reads`` are the groups its result depends on."""

    definition: RuleDefinition
    compiled: Compiled = field(repr=False)
    reads: frozenset[GroupReference]

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def reads_groups(self) -> bool:
        return bool(self.reads)

    def matches(self, user_id: str, facts: Facts) -> bool:
        """Whether the user belongs in the rule's groups. An expression that fails for this
        user (a value of the wrong type) counts as no match: the rule never fails a write."""
        definition = self.definition
        if definition.exclude_user_ids and user_id in definition.exclude_user_ids:
            return False
        if definition.exclude_group_ids and not definition.exclude_group_ids.isdisjoint(
            facts.group_ids
        ):
            return False
        try:
            return self.compiled.test(facts)
        except EvaluationError:
            return False


def compile_rule(definition: RuleDefinition) -> CompiledRule:
    """ExpressionError (Okta's 400 naming the position) when the expression is refused."""
    compiled = compile_expression(
        definition.expression, context=Context.group_rule(), expect=Type.BOOLEAN
    )
    reads = set(compiled.groups_referenced)
    reads.update(GroupReference("id", group_id) for group_id in definition.exclude_group_ids)
    return CompiledRule(definition, compiled, frozenset(reads))


def _depends(reader: CompiledRule, writer: CompiledRule, names: Mapping[str, str]) -> bool:
    return any(
        reference.matches(group_id, names.get(group_id, ""))
        for reference in reader.reads
        for group_id in writer.definition.group_ids
    )


def _edges(rules: Sequence[CompiledRule], names: Mapping[str, str]) -> dict[str, list[str]]:
    """writer id → ids of rules that read a group it writes."""
    readers = [rule for rule in rules if rule.reads]
    return {
        writer.id: [reader.id for reader in readers if _depends(reader, writer, names)]
        for writer in rules
    }


def find_cycle(rules: Sequence[CompiledRule], names: Mapping[str, str]) -> list[str] | None:
    """Rule ids forming a cycle (the first one repeated at the end), or None.

    ``names``: group id → name for the groups the rules write (name-based ``isMemberOf…``
    references are matched against them)."""
    edges = _edges(rules, names)
    state: dict[str, int] = {}
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            following = edges[node]
            if index < len(following):
                stack.append((node, index + 1))
                nxt = following[index]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def order_rules(
    rules: Sequence[CompiledRule], names: Mapping[str, str]
) -> tuple[CompiledRule, ...]:
    """Rules in dependency order (a writer before its readers); input order otherwise.

    A cycle that slipped in (a group renamed after the check) is broken by input order."""
    edges = _edges(rules, names)
    by_id = {rule.id: rule for rule in rules}
    incoming = {rule.id: 0 for rule in rules}
    for targets in edges.values():
        for target in targets:
            incoming[target] += 1
    ready = deque(rule.id for rule in rules if incoming[rule.id] == 0)
    ordered: list[str] = []
    while ready:
        current = ready.popleft()
        ordered.append(current)
        for target in edges[current]:
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    placed = set(ordered)
    ordered += [rule.id for rule in rules if rule.id not in placed]
    return tuple(by_id[rule_id] for rule_id in ordered)


def matching_groups(
    rules: Iterable[CompiledRule],
    user_id: str,
    facts: Facts,
    names: Callable[[str], str],
) -> set[tuple[str, str]]:
    """``(rule id, group id)`` for every group the (ordered) rules put the user in.

    ``facts.group_ids``/``group_names`` start as the user's memberships that no evaluated rule
    gives (manual ones, and those inactive rules keep); each rule's result is added before the
    rules that read it run. ``names`` gives a target group's name."""
    group_ids, group_names = set(facts.group_ids), set(facts.group_names)
    result: set[tuple[str, str]] = set()
    current = Facts(facts.user, facts.internal, facts.appuser, group_ids, group_names)
    for rule in rules:
        if not rule.matches(user_id, current):
            continue
        for group_id in rule.definition.group_ids:
            result.add((rule.id, group_id))
            if group_id not in group_ids:  # later rules see the membership this one gives
                group_ids.add(group_id)
                group_names.add(names(group_id))
    return result


def invalid(cause: str) -> InvalidRequest:
    """Okta's 400 for one field of a rule."""
    field_name = cause.partition(":")[0]
    return InvalidRequest(f"Api validation failed: {field_name}", [cause])
