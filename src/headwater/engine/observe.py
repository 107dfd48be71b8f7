"""Reading the downstream back: accounts on a full reconcile, pushed groups on a full reconcile
or a push that replaces the whole membership. What is read becomes facts for the planner; an
account or group the downstream lost reads as ``None``, one not read stays ``UNOBSERVED``.

A group read without its members (the app hides them) is unknown, not empty. Where the app
offers a way to ask about one account at a time (the dialect's ``member_check``), the accounts
Headwater links in the app but does not want in the group are checked, within a per-pass
budget, so a member added by hand downstream can be proved and taken out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from headwater.connectors.errors import AppUnavailableError, DownstreamError
from headwater.domain.states import MappingStatus
from headwater.engine.listing import Listing
from headwater.engine.ports import Connector
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import AccountWork, PushWork

__all__ = ["read_back", "share_budget"]

_A = TypeVar("_A")


async def read_back(
    app: AppSnapshot,
    connector: Connector,
    accounts: list[AccountWork],
    pushes: list[PushWork],
    listing: Listing | None = None,
) -> None:
    """Fill ``observed`` facts where the keys ask for them, with the app's concurrency: an
    account from ``listing`` where it can answer (see ``engine.listing``), else read alone.

    A failed read fails its key only; ``AppUnavailableError`` stops the whole app."""
    limit = asyncio.Semaphore(app.settings.max_concurrency)

    def unread(work: AccountWork) -> bool:
        """Whether the account must be read alone (the listing answers the others here)."""
        record = work.snapshot.record
        if not (work.key.observe and record is not None and record.external_id):
            return False
        if listing is not None and listing.serves(work.key):
            listed = listing.answer(work.snapshot)
            if listed is not None:
                work.observed = listed
                return False
        return True

    async def account(work: AccountWork) -> None:
        record = work.snapshot.record
        assert record is not None and record.external_id
        async with limit:
            try:
                work.observed = await connector.get_user(record.external_id)
            except AppUnavailableError:
                raise
            except DownstreamError as exc:
                work.error = exc

    def wanted(work: PushWork) -> bool:
        snap = work.snapshot
        asked = work.key.observe or snap.full_push
        return bool(asked and snap.target_external_id and snap.status != MappingStatus.INACTIVE)

    async def push(work: PushWork) -> None:
        snap = work.snapshot
        assert snap.target_external_id
        async with limit:
            try:
                group = await connector.get_group(snap.target_external_id)
            except AppUnavailableError:
                raise
            except DownstreamError as exc:
                work.error = exc
                return
        if group is None:
            work.observed_members = None
        elif group.member_ids is None:
            work.members_unknown = True
        else:
            work.observed_members = group.member_ids

    # A task only for what is read: a batch of new accounts reads nothing.
    reads = [account(w) for w in accounts if unread(w)] + [push(w) for w in pushes if wanted(w)]
    if reads:
        await asyncio.gather(*reads)
    await _check_hidden_members(app, connector, pushes, limit)


def _outsiders(work: PushWork) -> list[str]:
    """The accounts Headwater links in the app that the group should not hold and that it never
    pushed there (only a check can prove one of them is there). Wanted members need no check:
    an add of a member already there changes nothing, and one add carries many members where
    a check asks about one; members pushed before and no longer wanted are removed anyway."""
    snap = work.snapshot
    skip = {e for _, e in snap.eligible} | {e for _, e in snap.recorded}
    return sorted(e for e in work.known_accounts if e not in skip)


def share_budget(sizes: list[int], budget: int) -> list[int]:
    """Split ``budget`` checks between groups needing ``sizes`` checks: each gets an equal
    share, and what a small group does not use goes to the others."""
    shares = [0] * len(sizes)
    left = budget
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        share = min(sizes[index], left // (len(order) - position))
        shares[index] = share
        left -= share
    return shares


async def _check_hidden_members(
    app: AppSnapshot, connector: Connector, pushes: list[PushWork], limit: asyncio.Semaphore
) -> None:
    """Check, for each group read without members, the accounts it should not hold, within the
    app's ``member_check_budget`` (requests per pass). Where the app lists an account's groups,
    one read answers for every group; else each (group, account) pair is one filter. More
    candidates than the budget: a random sample each pass, so repeated passes cover them all."""
    unknown = [w for w in pushes if w.members_unknown and w.error is None]
    budget = app.settings.member_check_budget
    if not unknown or budget <= 0:
        return
    candidates = [_outsiders(w) for w in unknown]
    accounts = sorted({e for ids in candidates for e in ids})
    if not accounts:
        for work in unknown:
            work.found_members = frozenset()
        return

    async def ask(call: Awaitable[_A]) -> _A:
        async with limit:
            return await call

    first = random.choice(accounts)
    try:
        groups = await ask(connector.groups_of(first))
    except AppUnavailableError:
        raise
    except DownstreamError:
        return  # the members stay unknown: nothing is removed on a guess
    if groups is None:
        await _by_group_filter(connector, unknown, candidates, budget, ask)
        return
    rest = [e for e in accounts if e != first]
    sample = rest if len(rest) < budget else random.sample(rest, budget - 1)
    answers = await asyncio.gather(
        *(ask(connector.groups_of(e)) for e in sample), return_exceptions=True
    )
    _reraise(answers)
    of: dict[str, frozenset[str]] = {first: groups}
    for account, answer in zip(sample, answers, strict=True):
        if isinstance(answer, frozenset):
            of[account] = answer
    for work, ids in zip(unknown, candidates, strict=True):
        group = work.snapshot.target_external_id
        work.found_members = frozenset(e for e in ids if group in of.get(e, frozenset()))


def _reraise(answers: list[Any]) -> None:
    """Raise what must stop the app (or is not a downstream error); a failed check alone only
    leaves what it asked about unknown."""
    for answer in answers:
        if isinstance(answer, BaseException) and (
            isinstance(answer, AppUnavailableError) or not isinstance(answer, DownstreamError)
        ):
            raise answer


async def _by_group_filter(
    connector: Connector,
    unknown: list[PushWork],
    candidates: list[list[str]],
    budget: int,
    ask: Callable[[Awaitable[bool | None]], Awaitable[bool | None]],
) -> None:
    """One filter per (group, account): the budget is shared between the groups."""
    shares = share_budget([len(c) for c in candidates], budget)

    async def check(work: PushWork, sample: list[str]) -> None:
        group = work.snapshot.target_external_id
        assert group is not None
        answers = await asyncio.gather(
            *(ask(connector.has_member(group, e)) for e in sample), return_exceptions=True
        )
        _reraise(answers)
        if any(answer is None for answer in answers):
            return  # the app offers no way to tell
        # A check that failed leaves its account unknown: nothing is removed on a guess.
        work.found_members = frozenset(e for e, a in zip(sample, answers, strict=True) if a is True)

    samples = [
        ids if len(ids) <= share else random.sample(ids, share)
        for ids, share in zip(candidates, shares, strict=True)
    ]
    await asyncio.gather(*(check(w, s) for w, s in zip(unknown, samples, strict=True) if s))
