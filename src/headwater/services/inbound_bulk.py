"""Inbound SCIM ``/Bulk``: a source's bulk request, run one operation at a time.

Each operation is one transaction, applied by the same functions as the single endpoints
(``services.inbound``): the source masters what it creates, the system log names it, and the
downstream keys are enqueued in that operation's transaction. An operation that fails rolls
back alone; the ones before it stay (RFC 7644 §3.7's model: a bulk request is not atomic).
After ``failOnErrors`` failures the rest are not run. Reading the request, the order and the
``bulkId`` references are ``domain.inbound_bulk``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from headwater.db import tables as t
from headwater.db.engine import Database
from headwater.domain.inbound_bulk import REFERENCE, BulkRequest, Failure, Operation, order, resolve
from headwater.errors import Unauthenticated
from headwater.services import inbound

__all__ = ["Outcome", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one operation did: a status and where, or why it failed (``error``: a
    ``Failure``, or the exception the single endpoint would have answered with; its status
    is then the edge's mapping of it, ``status`` only a placeholder)."""

    operation: Operation
    status: int
    location: str | None = None
    version: str | None = None
    error: Failure | Exception | None = None


class _Unresolved(Exception):
    def __init__(self, bulk_id: str) -> None:
        super().__init__(bulk_id)
        self.bulk_id = bulk_id


def run(database: Database, source_id: str, request: BulkRequest, base: str) -> list[Outcome]:
    """Run the request's operations; the outcomes in the request's order (those not run after
    ``failOnErrors`` failures are left out)."""
    runnable, blocked = order(request.operations)
    cycle = Failure(409, "bulkId references form a cycle; they are not resolved")
    queue: list[tuple[Operation, Failure | None]] = [(op, None) for op in runnable]
    queue += [(op, cycle) for op in blocked]
    created: dict[str, str | None] = {}
    outcomes: list[Outcome] = []
    errors = 0
    for operation, failure in queue:
        if request.fail_on_errors is not None and errors >= request.fail_on_errors:
            break
        failure = failure or operation.failure
        if failure is not None:
            outcome = Outcome(operation, failure.status, _location(operation, base), error=failure)
        else:
            outcome = _run_one(database, source_id, operation, base, created)
        if operation.method == "POST" and operation.bulk_id is not None:
            created.setdefault(operation.bulk_id, None)
        if outcome.error is not None:
            errors += 1
        outcomes.append(outcome)
    return sorted(outcomes, key=lambda outcome: outcome.operation.index)


def _location(operation: Operation, base: str, resource_id: str | None = None) -> str | None:
    if operation.kind is None:
        return None
    key = resource_id or operation.resource_id
    if key is None:
        return None
    return f"{base}/{operation.kind}s/{key}"


def _run_one(
    database: Database,
    source_id: str,
    operation: Operation,
    base: str,
    created: dict[str, str | None],
) -> Outcome:
    def ids(bulk_id: str) -> str:
        found = created.get(bulk_id)
        if found is None:
            raise _Unresolved(bulk_id)
        return found

    target = operation.resource_id
    try:
        if target is not None and target.startswith(REFERENCE):
            target = ids(target[len(REFERENCE) :])
        data = resolve(operation.data, ids)
    except _Unresolved as exc:
        detail = f"{REFERENCE}{exc.bulk_id}: the operation declaring it failed or did not run"
        failure = Failure(409, detail)
        return Outcome(operation, 409, _location(operation, base), error=failure)
    try:
        with database.transaction() as session:
            source = session.get(t.Source, source_id)
            if source is None:
                raise Unauthenticated()
            status, resource_id, version = _apply(session, source, operation, target, data, base)
    except Exception as exc:  # the single endpoint's answer, in this operation's result
        if not _expected(exc):
            log.exception("bulk operation %s %s failed", operation.method, operation.path)
        return Outcome(operation, 500, _location(operation, base, target), error=exc)
    if operation.method == "POST" and operation.bulk_id is not None:
        created[operation.bulk_id] = resource_id
    return Outcome(operation, status, _location(operation, base, resource_id), version)


def _expected(exc: Exception) -> bool:
    from scim2_models import SCIMException

    from headwater.domain.inbound import InvalidResource
    from headwater.errors import HeadwaterError

    return isinstance(exc, SCIMException | InvalidResource | HeadwaterError)


def _apply(
    session: Any, source: t.Source, operation: Operation, target: str | None, data: Any, base: str
) -> tuple[int, str, str | None]:
    """Apply one operation; (status, resource id, version)."""
    method, version = operation.method, operation.version
    if operation.kind == "User":
        if method == "POST":
            user = inbound.create_user(session, source, data)
            return 201, user.id, inbound.user_resource(user, base)["meta"]["version"]
        assert target is not None
        if method == "DELETE":
            inbound.delete_user(session, source, target, version)
            return 204, target, None
        if method == "PUT":
            user = inbound.replace_user(session, source, target, data, version)
        else:
            user = inbound.patch_user(session, source, target, data, version)
        return 200, user.id, inbound.user_resource(user, base)["meta"]["version"]
    if method == "POST":
        group = inbound.create_group(session, source, data)
        return 201, group.id, _group_version(session, group, base)
    assert target is not None
    if method == "DELETE":
        inbound.delete_group(session, source, target, version)
        return 204, target, None
    if method == "PUT":
        group = inbound.replace_group(session, source, target, data, version)
    else:
        group = inbound.patch_group(session, source, target, data, version)
    return 200, group.id, _group_version(session, group, base)


def _group_version(session: Any, group: t.Group, base: str) -> str:
    document = inbound.group_resource(session, group, base, members=False)
    return str(document["meta"]["version"])
