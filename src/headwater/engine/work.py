"""The work items of one reconcile: a key, what was read for it, its plan, and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.connectors.errors import DownstreamError
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.domain.desired import DesiredAccount
from headwater.domain.downstream import AccountAttributes, RemoteAccount
from headwater.domain.plan import UNOBSERVED, AccountPlan, PushPlan
from headwater.engine.executor import AccountResult, GroupResult, MembershipResult
from headwater.engine.snapshot import AccountSnapshot, PushSnapshot

__all__ = ["AccountWork", "Outcome", "PushWork"]


@dataclass
class AccountWork:
    key: ClaimedKey
    snapshot: AccountSnapshot
    desired: DesiredAccount
    attributes: AccountAttributes | None
    mapping_error: str | None = None
    observed: RemoteAccount | Any | None = UNOBSERVED
    plan: AccountPlan | None = None
    #: Reading the downstream back failed; the key fails with this error.
    error: DownstreamError | None = None


@dataclass
class PushWork:
    key: ClaimedKey
    snapshot: PushSnapshot
    observed_members: frozenset[str] | Any | None = UNOBSERVED
    known_accounts: dict[str, str] = field(default_factory=dict)
    plan: PushPlan | None = None
    error: DownstreamError | None = None


@dataclass
class Outcome:
    """What happened to one key: operations done, and the error that stopped it, if any."""

    key: ClaimedKey
    done: list[tuple[ops.Operation, AccountResult | GroupResult | MembershipResult | None]] = field(
        default_factory=list
    )
    error: Exception | None = None
    failed: ops.Operation | None = None
    #: Reconcile again after this many seconds without counting a failure.
    requeue: float | None = None
    #: The work item the outcome belongs to (its plan and snapshot, for the recorder).
    work: AccountWork | PushWork | None = None
