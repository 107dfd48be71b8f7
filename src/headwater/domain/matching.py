"""Matching an app's existing accounts to directory users, pure.

An app connected for the first time already holds accounts. Each is compared with the
directory by the app's matching rules, in order; the first rule that finds exactly one user
wins. A rule that finds several users makes the account a conflict (one account for two
users), and so do two accounts that reach one user (two accounts for one user): linking
either would be a guess, so neither is linked until an admin decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from headwater.domain.downstream import ListedAccount

__all__ = [
    "DEFAULT_RULES",
    "DirectoryPerson",
    "Match",
    "MatchKind",
    "MatchRule",
    "check_rules",
    "match_accounts",
    "parse_rules",
]


class MatchRule(StrEnum):
    """What an account and a user must share (API names)."""

    #: The account's ``userName`` equals the user's login (case-insensitively, as logins are).
    USER_NAME = "userName"
    #: The account's primary email equals the user's email (case-insensitively).
    EMAIL = "email"
    #: The account's ``externalId`` is the user's id (what Headwater itself sends).
    EXTERNAL_ID = "externalId"
    #: The account's enterprise ``employeeNumber`` equals the user's, exactly.
    EMPLOYEE_NUMBER = "employeeNumber"


DEFAULT_RULES: tuple[MatchRule, ...] = (MatchRule.USER_NAME, MatchRule.EMAIL)


def parse_rules(text: str) -> tuple[MatchRule, ...]:
    """The rules named in a comma-separated setting; unknown names are skipped (a stored
    value must never stop an import), and none at all falls back to the default."""
    known = {rule.value.lower(): rule for rule in MatchRule}
    rules: list[MatchRule] = []
    for part in text.split(","):
        rule = known.get(part.strip().lower())
        if rule is not None and rule not in rules:
            rules.append(rule)
    return tuple(rules) or DEFAULT_RULES


def check_rules(text: str) -> str | None:
    """Why a matching setting is refused, or None: every name known, none twice."""
    names = [part.strip() for part in text.split(",")]
    allowed = [rule.value for rule in MatchRule]
    seen: set[str] = set()
    for name in names:
        if name not in allowed:
            return f"must be a comma-separated list of {', '.join(allowed)}"
        if name in seen:
            return f"{name} is named twice"
        seen.add(name)
    return None


@dataclass(frozen=True)
class DirectoryPerson:
    """What matching reads of a directory user."""

    id: str
    login: str
    email: str | None = None
    employee_number: str | None = None


class MatchKind(StrEnum):
    MATCHED = "MATCHED"
    UNMATCHED = "UNMATCHED"
    CONFLICT = "CONFLICT"
    #: Already linked to this very account: nothing to confirm.
    LINKED = "LINKED"


@dataclass(frozen=True)
class Match:
    """The verdict on one account."""

    account_id: str
    kind: MatchKind
    #: The user it matched (MATCHED, LINKED), or the first of the users it reached (CONFLICT).
    user_id: str | None = None
    #: The rule that decided (MATCHED, LINKED, and a conflict found by a rule).
    rule: MatchRule | None = None
    #: Why it is a conflict, in words an admin reads.
    reason: str | None = None
    #: Every user the account reached (a conflict may name two).
    candidates: tuple[str, ...] = ()


def _key(rule: MatchRule, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if rule in (MatchRule.USER_NAME, MatchRule.EMAIL):
        return value.strip().casefold()
    return value


def _account_value(account: ListedAccount, rule: MatchRule) -> str | None:
    match rule:
        case MatchRule.USER_NAME:
            return _key(rule, account.user_name)
        case MatchRule.EMAIL:
            return _key(rule, account.email)
        case MatchRule.EXTERNAL_ID:
            return _key(rule, account.external_id)
        case MatchRule.EMPLOYEE_NUMBER:
            return _key(rule, account.employee_number)


def _person_value(person: DirectoryPerson, rule: MatchRule) -> str | None:
    match rule:
        case MatchRule.USER_NAME:
            return _key(rule, person.login)
        case MatchRule.EMAIL:
            return _key(rule, person.email)
        case MatchRule.EXTERNAL_ID:
            return _key(rule, person.id)
        case MatchRule.EMPLOYEE_NUMBER:
            return _key(rule, person.employee_number)


def match_accounts(
    accounts: Sequence[ListedAccount],
    people: Iterable[DirectoryPerson],
    rules: Sequence[MatchRule],
    *,
    linked: Mapping[str, str] | None = None,
) -> list[Match]:
    """A verdict for every account, in the accounts' order.

    ``linked`` maps a user id to the external id of the account already linked to that user in
    this app: that account reads as LINKED; another account reaching the same user is a
    conflict (the user has an account here already)."""
    linked = linked or {}
    index: dict[MatchRule, dict[str, list[str]]] = {rule: defaultdict(list) for rule in rules}
    for person in people:
        for rule in rules:
            value = _person_value(person, rule)
            if value is not None:
                index[rule][value].append(person.id)
    verdicts: list[Match] = []
    for account in accounts:
        verdict = Match(account.id, MatchKind.UNMATCHED)
        for rule in rules:
            value = _account_value(account, rule)
            found = index[rule].get(value, []) if value is not None else []
            if len(found) == 1:
                verdict = Match(account.id, MatchKind.MATCHED, found[0], rule, None, (found[0],))
                break
            if len(found) > 1:
                verdict = Match(
                    account.id,
                    MatchKind.CONFLICT,
                    found[0],
                    rule,
                    f"{rule.value} matches {len(found)} users",
                    tuple(sorted(found)),
                )
                break
        verdicts.append(verdict)
    return _settle_shared_users(verdicts, linked)


def _settle_shared_users(verdicts: list[Match], linked: Mapping[str, str]) -> list[Match]:
    """Accounts already linked read LINKED; accounts that reach a user another account also
    reaches (or already holds) become conflicts."""
    by_user: dict[str, list[int]] = defaultdict(list)
    for position, verdict in enumerate(verdicts):
        if verdict.kind is MatchKind.MATCHED and verdict.user_id is not None:
            by_user[verdict.user_id].append(position)
    settled = list(verdicts)
    for user_id, positions in by_user.items():
        held = linked.get(user_id)
        for position in positions:
            verdict = verdicts[position]
            if held is not None and held == verdict.account_id:
                settled[position] = Match(
                    verdict.account_id, MatchKind.LINKED, user_id, verdict.rule, None, (user_id,)
                )
            elif held is not None:
                settled[position] = Match(
                    verdict.account_id,
                    MatchKind.CONFLICT,
                    user_id,
                    verdict.rule,
                    "the user already has another account in this app",
                    (user_id,),
                )
            elif len(positions) > 1:
                settled[position] = Match(
                    verdict.account_id,
                    MatchKind.CONFLICT,
                    user_id,
                    verdict.rule,
                    f"{len(positions)} accounts match the same user",
                    (user_id,),
                )
    return settled
