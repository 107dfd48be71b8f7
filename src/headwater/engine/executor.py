"""Sends planned operations through a connector; knows nothing of the database.

Each operation returns what the recorder needs (ids, whether an account was linked or made).
An account create is lookup-then-POST, and a 409 falls back to lookup-and-link, so a retried or
crashed create never leaves a duplicate account or group. The look-up may have been made
beforehand for the whole batch (``known``: see ``prefetch``); a 409 is then looked up again.
With ``lookup_before_create`` off the POST goes first and only a 409 is looked up: the app's
own uniqueness of userName (RFC 7644 §3.3) stands in for the look-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from headwater.connectors.errors import (
    ConflictError,
    DownstreamError,
    NotFoundError,
    OperationRefused,
    PermanentError,
)
from headwater.domain.downstream import AccountAttributes, GroupState, RemoteAccount
from headwater.domain.operations import (
    AddMembers,
    CreateAccount,
    DeleteAccount,
    DeleteGroup,
    EnsureGroup,
    Operation,
    RemoveMembers,
    RenameGroup,
    ReplaceMembers,
    SetActive,
    UpdateAccount,
)
from headwater.domain.settings import ProvisioningSettings, UpdateMethod
from headwater.engine.ports import BatchedLookups, Connector

__all__ = [
    "AccountResult",
    "GroupResult",
    "MembershipResult",
    "OperationResult",
    "execute",
    "prefetch",
]

log = logging.getLogger(__name__)

#: What a batched look-up settled: an account, or None where the app has none.
Known = Mapping[str, RemoteAccount | None]


@dataclass(frozen=True)
class AccountResult:
    external_id: str
    #: True when an existing downstream account was found and linked instead of created.
    linked: bool = False


@dataclass(frozen=True)
class MembershipResult:
    """Members the downstream refused one by one (isolated from their batch)."""

    rejected: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class GroupResult:
    external_id: str
    display_name: str
    linked: bool = False


OperationResult = AccountResult | GroupResult | MembershipResult | None


async def _update(
    connector: Connector, external_id: str, attrs: AccountAttributes, settings: ProvisioningSettings
) -> None:
    if settings.update_method is UpdateMethod.PATCH:
        await connector.patch_user(external_id, attrs)
    else:
        await connector.replace_user(external_id, attrs)


async def prefetch(
    connector: Connector, user_names: Sequence[str], settings: ProvisioningSettings
) -> Known:
    """Look the accounts about to be created up in batches, when the connector can: one
    request per ``lookup_batch`` names instead of one each. A batch that fails settles
    nothing (its names are looked up alone, as without batching). Nothing is looked up when
    creates go first."""
    if not settings.lookup_before_create or not isinstance(connector, BatchedLookups):
        return {}
    size = connector.lookup_batch
    names = list(dict.fromkeys(user_names))
    if size < 2 or len(names) < 2:
        return {}
    known: dict[str, RemoteAccount | None] = {}

    async def one(chunk: Sequence[str]) -> None:
        try:
            known.update(await connector.find_users(chunk))
        except DownstreamError as exc:
            log.info("batched look-up failed, looking up one by one: %s", exc)

    await asyncio.gather(*(one(names[i : i + size]) for i in range(0, len(names), size)))
    return known


async def _create_account(
    connector: Connector,
    attrs: AccountAttributes,
    settings: ProvisioningSettings,
    known: Known,
) -> AccountResult:
    if not settings.lookup_before_create and settings.create_users:
        found = None
    elif attrs.user_name in known:
        found = known[attrs.user_name]
    else:
        found = await connector.find_user(attrs.user_name)
    if found is None:
        if not settings.create_users:
            raise PermanentError("Matching user not found and user creation is disabled")
        try:
            created = await connector.create_user(attrs)
            return AccountResult(created.id)
        except ConflictError:
            found = await connector.find_user(attrs.user_name)
            if found is None:
                raise
    await _update(connector, found.id, attrs, settings)
    return AccountResult(found.id, linked=True)


async def _ensure_group(connector: Connector, display_name: str) -> GroupResult:
    found = await connector.find_group(display_name)
    if found is not None:
        return GroupResult(found.id, found.display_name, linked=True)
    try:
        created = await connector.create_group(display_name)
        return GroupResult(created.id, created.display_name)
    except ConflictError:
        found = await connector.find_group(display_name)
        if found is None:
            raise
        return GroupResult(found.id, found.display_name, linked=True)


def _bad_input(exc: PermanentError) -> bool:
    return not isinstance(exc, NotFoundError | ConflictError) and exc.status in (400, 422)


async def _try_add(
    connector: Connector, group_id: str, members: list[tuple[str, str]], whole: GroupState | None
) -> PermanentError | None:
    """Add ``members``; the bad-input refusal, or None when they were added."""
    try:
        await connector.patch_members(group_id, add=[m[1] for m in members], remove=[], whole=whole)
    except PermanentError as exc:
        if not _bad_input(exc):
            raise
        return exc
    return None


async def _add_isolating(
    connector: Connector,
    group_id: str,
    members: list[tuple[str, str]],
    whole: GroupState | None = None,
) -> list[tuple[str, str, str]]:
    """Add members; when the downstream rejects a batch as bad input, split it until each bad
    member is alone, so one bad member does not hold back the rest."""
    refusal = await _try_add(connector, group_id, members, whole)
    if refusal is None:
        return []
    return await _isolate(connector, group_id, members, whole, refusal)


async def _isolate(
    connector: Connector,
    group_id: str,
    members: list[tuple[str, str]],
    whole: GroupState | None,
    refusal: PermanentError,
) -> list[tuple[str, str, str]]:
    if len(members) == 1:
        user_id, external_id = members[0]
        return [(user_id, external_id, str(refusal))]
    middle = len(members) // 2
    halves = [members[:middle], members[middle:]]
    refusals = [await _try_add(connector, group_id, half, whole) for half in halves]
    if all(r is not None and _same_refusal(r, refusal) for r in refusals):
        # Both halves refused just as the whole was: the request itself is refused, not a
        # member (splitting further would send 2N-1 requests to learn nothing).
        raise OperationRefused(
            f"The app refuses the operation itself: {refusal.message}",
            status=refusal.status,
            detail=refusal.detail,
        )
    rejected: list[tuple[str, str, str]] = []
    for half, half_refusal in zip(halves, refusals, strict=True):
        if half_refusal is not None:
            rejected += await _isolate(connector, group_id, half, whole, half_refusal)
    return rejected


def _same_refusal(one: PermanentError, other: PermanentError) -> bool:
    return (one.status, one.detail) == (other.status, other.detail)


async def _rename_group(connector: Connector, op: RenameGroup) -> None:
    """Never give a group a name another downstream group holds (Okta's "group already
    exists": a Task, not a duplicate)."""
    holder = await connector.find_group(op.display_name)
    if holder is not None and holder.id != op.group_external_id:
        raise ConflictError(f"A group named {op.display_name} already exists in the app")
    await connector.rename_group(op.group_external_id, op.display_name)


async def execute(
    op: Operation,
    connector: Connector,
    settings: ProvisioningSettings,
    known: Known | None = None,
) -> OperationResult:
    """Send one operation; raises connector errors unchanged for the caller to classify.
    ``known``: accounts already looked up for this batch (``prefetch``)."""
    match op:
        case CreateAccount(_, attrs):
            return await _create_account(connector, attrs, settings, known or {})
        case UpdateAccount(_, external_id, attrs):
            await _update(connector, external_id, attrs, settings)
            return AccountResult(external_id)
        case SetActive(_, external_id, active, attrs):
            if attrs is not None:
                await _update(connector, external_id, replace(attrs, active=active), settings)
            else:
                await connector.set_active(external_id, active)
            return AccountResult(external_id)
        case DeleteAccount(_, external_id):
            await connector.delete_user(external_id)
            return None
        case EnsureGroup(_, display_name):
            return await _ensure_group(connector, display_name)
        case RenameGroup():
            await _rename_group(connector, op)
            return None
        case AddMembers(_, external_id, members, whole):
            rejected = await _add_isolating(connector, external_id, list(members), whole)
            return MembershipResult(tuple(rejected))
        case RemoveMembers(_, external_id, members, _, whole):
            await connector.remove_members(external_id, [m[1] for m in members], whole=whole)
            return None
        case ReplaceMembers(_, external_id, display_name, members, recorded):
            await connector.replace_members(
                external_id, display_name, [m[1] for m in members], recorded=recorded
            )
            return None
        case DeleteGroup(_, external_id):
            await connector.delete_group(external_id)
            return None
    raise TypeError(op)  # pragma: no cover
