"""Reading the downstream back: accounts on a full reconcile, pushed groups on a full reconcile
or a push that replaces the whole membership. What is read becomes facts for the planner; an
account or group the downstream lost reads as ``None``, one not read stays ``UNOBSERVED``.
"""

from __future__ import annotations

import asyncio

from headwater.connectors.errors import AppUnavailableError, DownstreamError
from headwater.domain.states import MappingStatus
from headwater.engine.ports import Connector
from headwater.engine.snapshot import AppSnapshot
from headwater.engine.work import AccountWork, PushWork

__all__ = ["read_back"]


async def read_back(
    app: AppSnapshot, connector: Connector, accounts: list[AccountWork], pushes: list[PushWork]
) -> None:
    """Fill ``observed`` facts where the keys ask for them, with the app's concurrency.

    A failed read fails its key only; ``AppUnavailableError`` stops the whole app."""
    limit = asyncio.Semaphore(app.settings.max_concurrency)

    async def account(work: AccountWork) -> None:
        record = work.snapshot.record
        if not (work.key.observe and record is not None and record.external_id):
            return
        async with limit:
            try:
                work.observed = await connector.get_user(record.external_id)
            except AppUnavailableError:
                raise
            except DownstreamError as exc:
                work.error = exc

    async def push(work: PushWork) -> None:
        snap = work.snapshot
        wanted = work.key.observe or snap.full_push
        if not wanted or not snap.target_external_id or snap.status == MappingStatus.INACTIVE:
            return
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

    await asyncio.gather(*(account(w) for w in accounts), *(push(w) for w in pushes))
