"""The work items of one reconcile: a key, what was read for it, its plan, and its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from headwater.connectors.errors import DownstreamError
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.domain.desired import DesiredAccount, desired_account
from headwater.domain.downstream import AccountAttributes, RemoteAccount
from headwater.domain.fate import ErrorClass
from headwater.domain.mapping import MappingError
from headwater.domain.plan import (
    UNOBSERVED,
    AccountFacts,
    AccountPlan,
    PushFacts,
    PushPlan,
    Unobserved,
    plan_account,
    plan_push,
)
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import KeyKind
from headwater.engine import snapshot
from headwater.engine.executor import OperationResult
from headwater.engine.snapshot import AccountSnapshot, AppSnapshot, PushSnapshot

__all__ = [
    "AccountWork",
    "Batch",
    "Outcome",
    "PushWork",
    "Work",
    "account_work",
    "load",
    "mapped",
    "mapping_inputs",
]


@dataclass
class AccountWork:
    """One user's account in the app being reconciled."""

    key: ClaimedKey
    snapshot: AccountSnapshot
    desired: DesiredAccount
    attributes: AccountAttributes | None
    #: The attribute mapping failed for this user (a permanent error for this key only).
    mapping_error: str | None = None
    #: The account as read back (full reconcile); ``None`` when the downstream lost it.
    observed: RemoteAccount | Unobserved | None = UNOBSERVED
    #: The mass-change guard holds this user's deprovision.
    held: bool = False
    plan: AccountPlan | None = None
    #: Reading the downstream back failed; the key fails with this error.
    error: DownstreamError | None = None
    #: The app's offboarding deadline, in seconds.
    deadline: int = 300

    def offboarding_left(self, now: datetime) -> float | None:
        """Seconds before this leaving account must be deactivated whatever its membership
        removals do (None when it is not being deprovisioned)."""
        started = self.snapshot.deprovision_started
        deadline = self.deadline
        if started is None:
            return float(deadline)
        return deadline - (now - started).total_seconds()

    def facts(self) -> AccountFacts:
        snap = self.snapshot
        return AccountFacts(
            user_id=self.key.subject_id,
            desired=self.desired,
            attributes=self.attributes,
            record=snap.record,
            memberships=snap.memberships,
            observed=self.observed,
            held=self.held,
        )


def account_work(key: ClaimedKey, snap: AccountSnapshot, app: AppSnapshot) -> AccountWork:
    """Desired state and mapped attributes of one user; a mapping failure is kept on the work
    item (it fails this key only, as a Task)."""
    desired = desired_account(snap.user, snap.direct, snap.groups, app.settings)
    deadline = app.settings.offboarding_deadline
    attributes, error = mapped(snap, app, desired)
    return AccountWork(key, snap, desired, attributes, mapping_error=error, deadline=deadline)


def mapped(
    snap: AccountSnapshot, app: AppSnapshot, desired: DesiredAccount
) -> tuple[AccountAttributes | None, str | None]:
    """The attributes the app's mapping gives this user (None when not assigned), or the
    mapping's error for this user."""
    inputs = mapping_inputs(snap, app.settings, desired)
    if inputs is None:
        return None, None
    try:
        attributes = app.mapping.attributes(**inputs)
    except MappingError as exc:
        return None, str(exc)
    return attributes, None


def mapping_inputs(
    snap: AccountSnapshot, settings: ProvisioningSettings, desired: DesiredAccount
) -> dict[str, Any] | None:
    """The arguments of ``AppMapping.attributes`` for this user (None when not assigned)."""
    if not desired.assigned or snap.user is None:
        return None
    record = snap.record
    return {
        "user_id": snap.user.id,
        "profile": snap.user.profile,
        "app_profile": desired.app_profile,
        "user_name_template": settings.user_name_template,
        "user_name_override": snap.direct.user_name if snap.direct else None,
        "active": desired.active,
        "manager_id": snap.manager_external_id,
        "internal": {"id": snap.user.id, "status": snap.user.status},
        "last_pushed": record.last_pushed if record and record.external_id else None,
        "group_ids": snap.group_ids,
        "group_names": snap.group_names,
    }


@dataclass
class PushWork:
    """One Group Push mapping of the app being reconciled."""

    key: ClaimedKey
    snapshot: PushSnapshot
    #: The downstream group's member ids as read back; ``None`` when the group is gone.
    observed_members: frozenset[str] | Unobserved | None = UNOBSERVED
    #: The group was read and the app did not say who its members are.
    members_unknown: bool = False
    #: Members hidden: linked accounts a check proved to be in the group (None: none checked).
    found_members: frozenset[str] | None = None
    #: Account external id → user id for every linked account (only loaded when read back).
    known_accounts: dict[str, str] = field(default_factory=dict)
    #: Users that may be added (checked under a lock just before sending); None: all eligible.
    admitted: frozenset[str] | None = None
    plan: PushPlan | None = None
    error: DownstreamError | None = None

    def facts(self) -> PushFacts:
        snap = self.snapshot
        return PushFacts(
            mapping_id=snap.mapping_id,
            status=snap.status,
            source_name=snap.source_name,
            custom_name=snap.custom_name,
            target_external_id=snap.target_external_id,
            target_name=snap.target_name,
            eligible=snap.eligible,
            recorded=snap.recorded,
            full_push=snap.full_push,
            delete_requested=snap.delete_requested,
            delete_target=snap.delete_target,
            observed_members=self.observed_members,
            members_unknown=self.members_unknown,
            found_members=self.found_members or frozenset(),
            known_accounts=self.known_accounts,
            admitted=self.admitted,
        )


Work = AccountWork | PushWork


@dataclass
class Outcome:
    """What happened to one key: operations done, and the error that stopped it, if any."""

    work: Work
    done: list[tuple[ops.Operation, OperationResult]] = field(default_factory=list)
    error: Exception | None = None
    error_class: ErrorClass | None = None
    #: The operation that failed.
    failed: ops.Operation | None = None
    #: Look again after this many seconds without counting a failure.
    requeue: float | None = None
    #: Membership removals that failed while the account went anyway (offboarding wins).
    stale: list[tuple[ops.RemoveMembers, Exception]] = field(default_factory=list)

    @property
    def key(self) -> ClaimedKey:
        return self.work.key


@dataclass
class Batch:
    """One app's share of a claimed batch, read in a handful of set-based queries."""

    accounts: list[AccountWork]
    pushes: list[PushWork]
    #: Push keys whose mapping no longer exists: nothing to do.
    gone: list[ClaimedKey]

    @property
    def items(self) -> list[Work]:
        return [*self.accounts, *self.pushes]

    def plan_accounts(self, settings: ProvisioningSettings) -> None:
        """Plan every account that could be read and mapped (pure)."""
        for work in self.accounts:
            if work.error is None and work.mapping_error is None:
                work.plan = plan_account(work.facts(), settings)

    def plan_pushes(self, settings: ProvisioningSettings) -> None:
        for work in self.pushes:
            if work.error is None:
                work.plan = plan_push(work.facts(), settings)

    def leaving(self) -> list[AccountWork]:
        """Accounts whose plan takes the account away."""
        return [w for w in self.accounts if w.plan is not None and w.plan.deprovision]

    def staying(self) -> list[AccountWork]:
        return [w for w in self.accounts if w.plan is not None and not w.plan.deprovision]

    def hold(self, blocked: frozenset[str]) -> None:
        """The guard's verdict, as a fact for the next planning pass."""
        for work in self.accounts:
            work.held = work.key.subject_id in blocked


def load(session: Session, app: AppSnapshot, keys: Sequence[ClaimedKey]) -> Batch:
    """Work items for ``keys`` (one app's), from one read transaction."""
    user_keys = [k for k in keys if k.kind is KeyKind.USER]
    push_keys = [k for k in keys if k.kind is KeyKind.PUSH]
    accounts = snapshot.load_accounts(
        session,
        app.id,
        [k.subject_id for k in user_keys],
        all_groups=app.mapping.reads_membership,
    )
    pushes = snapshot.load_push(session, app.id, [k.subject_id for k in push_keys])
    # Only a push that reads its group back needs every linked account of the app (to tell
    # known members from orphans); skip that scan otherwise.
    reads_back = any(
        k.observe or (k.subject_id in pushes and pushes[k.subject_id].full_push) for k in push_keys
    )
    known = snapshot.known_accounts(session, app.id) if reads_back else {}
    return Batch(
        accounts=[account_work(k, accounts[k.subject_id], app) for k in user_keys],
        pushes=[
            PushWork(k, pushes[k.subject_id], known_accounts=known)
            for k in push_keys
            if k.subject_id in pushes
        ],
        gone=[k for k in push_keys if k.subject_id not in pushes],
    )
