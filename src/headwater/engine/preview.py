"""Plan and explain: what a reconcile would send now, and why a user has what they have.

Both reuse the reconciler's own snapshot and planner, so the preview is exactly what a real
reconcile would do; a read-only connector refuses every write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from headwater.db import outbox
from headwater.db import tables as t
from headwater.db.leases import ClaimedKey
from headwater.domain import operations as ops
from headwater.engine import snapshot
from headwater.engine.connectors import ConnectionInfo
from headwater.engine.reconciler import Reconciler, account_facts
from headwater.errors import NotFound
from headwater.runtime import Runtime

__all__ = ["ReadOnlyConnector", "explain_user", "plan_app"]

CHUNK = 500


class ReadOnlyConnector:
    """Delegates reads to a real connector and refuses every write (dry runs)."""

    _READS = frozenset(
        {
            "find_user",
            "get_user",
            "find_group",
            "get_group",
            "list_users",
            "list_groups",
            "test_connection",
            "aclose",
        }
    )

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in self._READS:
            raise PermissionError(f"dry run: {name} refused")
        return getattr(self._inner, name)


def app_subjects(runtime: Runtime, app_id: str) -> tuple[list[str], list[str]]:
    """Every user and push mapping a full reconcile of the app would visit."""
    with runtime.database.read() as session:
        direct = select(t.AppUserAssignment.user_id).where(t.AppUserAssignment.app_id == app_id)
        grouped = (
            select(t.Membership.user_id)
            .join(t.AppGroupAssignment, t.AppGroupAssignment.group_id == t.Membership.group_id)
            .where(t.AppGroupAssignment.app_id == app_id)
        )
        linked = select(t.AppUserLink.user_id).where(t.AppUserLink.app_id == app_id)
        users = sorted(set(session.execute(direct.union(grouped, linked)).scalars()))
        mappings = list(
            session.execute(
                select(t.PushMapping.id)
                .where(t.PushMapping.app_id == app_id)
                .order_by(t.PushMapping.id)
            ).scalars()
        )
    return users, mappings


async def plan_app(runtime: Runtime, app_id: str, *, observe: bool = False) -> dict[str, Any]:
    """The operations a reconcile of ``app_id`` would send now, in sending order."""
    with runtime.database.read() as session:
        app = snapshot.load_app(session, app_id)
    if app is None:
        raise NotFound()
    users, mappings = await asyncio.to_thread(app_subjects, runtime, app_id)
    keys = [ClaimedKey(app_id, outbox.USER, u, 0, 0, observe) for u in users]
    keys += [ClaimedKey(app_id, outbox.PUSH, m, 0, 0, observe) for m in mappings]
    reconciler = Reconciler(runtime, worker_id="plan")
    connector = None
    if observe and app.base_url:
        info = ConnectionInfo(app.id, app.base_url, app.auth_scheme or "NONE", app.secret_encrypted)
        connector = ReadOnlyConnector(runtime.connectors.build(info, app.settings))
    planned: list[ops.Operation] = []
    waiting: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    try:
        for start in range(0, len(keys), CHUNK):
            accounts, pushes = await reconciler.dry_run(app, keys[start : start + CHUNK], connector)
            for work in accounts:
                if work.mapping_error:
                    waiting.append({"userId": work.key.subject_id, "error": work.mapping_error})
                elif work.plan is not None:
                    planned.extend(work.plan.operations)
            for push in pushes:
                if push.plan is not None:
                    planned.extend(push.plan.operations)
                    orphans.extend(
                        {"mappingId": push.key.subject_id, "externalId": e}
                        for e in sorted(push.plan.orphans)
                    )
    finally:
        if connector is not None:
            await connector.aclose()
    planned.sort(key=ops.rank)
    described = [ops.describe(op) for op in planned]
    summary: dict[str, int] = {}
    for item in described:
        summary[item["op"]] = summary.get(item["op"], 0) + 1
    return {
        "appId": app_id,
        "observed": observe,
        "operations": described,
        "summary": summary,
        "errors": waiting,
        "orphans": orphans,
    }


def explain_user(runtime: Runtime, app_id: str, user_id: str) -> dict[str, Any]:
    """Why the user has (or lacks) an account in the app, and each pushed membership."""
    with runtime.database.read() as session:
        app = snapshot.load_app(session, app_id)
        user = session.get(t.User, user_id)
        if app is None or user is None or user.status == "DELETED":
            raise NotFound()
        session.expunge(user)  # read after the session ends: keep its loaded attributes
        snap = snapshot.load_accounts(session, app_id, [user_id])[user_id]
        pushes = snapshot.load_push(
            session,
            app_id,
            list(
                session.execute(
                    select(t.PushMapping.id).where(t.PushMapping.app_id == app_id)
                ).scalars()
            ),
        )
        in_groups = set(
            session.execute(
                select(t.Membership.group_id).where(t.Membership.user_id == user_id)
            ).scalars()
        )
    desired, attributes, error = account_facts(user_id, snap, app)
    name = user.profile.get("firstName") or user.login
    reasons = [f"{name} is {user.status} in the directory."]
    grants: list[dict[str, Any]] = []
    if snap.direct is not None:
        grants.append({"type": "USER", "detail": "assigned directly"})
        reasons.append(f"{name} is assigned to {app.label} directly.")
    for grant in snap.groups:
        winner = (
            desired.winning_group is not None and desired.winning_group.group_id == grant.group_id
        )
        grants.append(
            {
                "type": "GROUP",
                "groupId": grant.group_id,
                "groupName": grant.group_name,
                "priority": grant.priority,
                "profileSource": winner,
            }
        )
        reasons.append(
            f"{name} has {app.label} because of group {grant.group_name}, priority {grant.priority}"
            + (" (its profile wins)." if winner else ".")
        )
    if not grants:
        reasons.append(f"{name} is not assigned to {app.label}, directly or through a group.")
    record = snap.record
    account = {
        "wanted": desired.assigned,
        "active": desired.active,
        "scope": desired.scope,
        "userName": attributes.user_name if attributes else snap.user_name,
        "externalId": record.external_id if record else None,
        "state": record.state if record else "NONE",
        "mappingError": error,
    }
    if desired.assigned and not desired.active:
        reasons.append(f"The account should be inactive ({user.status}).")
    if desired.leave_alone:
        reasons.append("The user is suspended; this app leaves suspended accounts alone.")
    memberships = []
    recorded = {m.mapping_id for m in snap.memberships}
    for mapping_id, push in sorted(pushes.items()):
        member = push.source_group_id in in_groups
        eligible = any(u == user_id for u, _ in push.eligible)
        entry = {
            "mappingId": mapping_id,
            "sourceGroupId": push.source_group_id,
            "sourceGroupName": push.source_name,
            "mappingStatus": push.status,
            "memberOfSource": member,
            "eligible": eligible,
            "pushed": mapping_id in recorded,
        }
        memberships.append(entry)
        if member and eligible:
            reasons.append(
                f"{name} is pushed to {push.custom_name or push.source_name} "
                f"(mapping {mapping_id}, {push.status})."
            )
        elif member:
            reasons.append(
                f"{name} is in {push.source_name} but has no active account in "
                f"{app.label}, so is not pushed."
            )
    return {
        "appId": app_id,
        "userId": user_id,
        "account": account,
        "grants": grants,
        "memberships": memberships,
        "reasons": reasons,
    }
