"""Inbound SCIM ``/Bulk`` (RFC 7644 §3.7): reading a BulkRequest, the order its operations run
in, and ``bulkId`` references. Pure: no I/O; ``services.inbound_bulk`` runs the operations.

- The envelope is read by hand, case-insensitively, with bounds on everything: at most
  :data:`MAX_OPERATIONS` operations (more is a 413, as §3.7.4 says), a ``path`` of at most
  :data:`MAX_PATH` characters, a ``bulkId`` of at most :data:`MAX_BULK_ID`. A malformed
  envelope fails the whole request (400); a malformed operation fails only itself.
- ``bulkId:X`` references are resolved in an operation's ``path`` (``/Groups/bulkId:X``) and in
  any string under a key named ``value`` in its ``data`` (``members[].value``,
  ``manager.value``, a PATCH operation's ``value``), to the id the POST carrying ``bulkId`` X
  created. A reference to an operation later in the request is resolved by running that
  operation first (§3.7.2); operations otherwise run in the request's order.
- References forming a cycle (§3.7.1's circular references) are not resolved: every operation
  of the cycle, and any operation waiting on one, fails with 409. A reference to a ``bulkId``
  no POST declares fails its operation with 400 ``invalidValue``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scim2_models import InvalidSyntaxException, InvalidValueException, PayloadTooLargeException

__all__ = [
    "BULK_REQUEST",
    "BULK_RESPONSE",
    "MAX_BULK_ID",
    "MAX_OPERATIONS",
    "MAX_PATH",
    "MAX_PAYLOAD",
    "REFERENCE",
    "BulkRequest",
    "Failure",
    "Operation",
    "order",
    "parse_request",
    "references",
    "resolve",
]

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
REFERENCE = "bulkId:"
#: Bounds, announced in ``ServiceProviderConfig.bulk``.
MAX_OPERATIONS = 100
MAX_PAYLOAD = 1_048_576
MAX_PATH = 512
MAX_BULK_ID = 100
MAX_VERSION = 200
#: How deep a ``data`` document is searched for references (bodies nest less than this).
_MAX_DEPTH = 64
_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PATH = re.compile(r"^/?(Users|Groups)(?:/([^/]+))?$")


@dataclass(frozen=True)
class Failure:
    """Why one operation failed: its result's status and SCIM error."""

    status: int
    detail: str
    scim_type: str | None = None


@dataclass(frozen=True)
class Operation:
    """One operation of a bulk request, as read; ``failure`` when it cannot run at all."""

    index: int
    method: str | None
    path: str | None
    bulk_id: str | None = None
    kind: str | None = None
    resource_id: str | None = None
    version: str | None = None
    data: Any = None
    failure: Failure | None = None
    #: The bulkIds it references (in ``path`` and ``data``).
    needs: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class BulkRequest:
    operations: list[Operation]
    fail_on_errors: int | None


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    """An attribute of a raw payload; SCIM attribute names are case-insensitive."""
    lowered = name.lower()
    return next(
        (v for k, v in mapping.items() if isinstance(k, str) and k.lower() == lowered), None
    )


def parse_request(body: Any) -> BulkRequest:
    """Read a BulkRequest; raises a ``SCIMException`` when the envelope itself is wrong."""
    if not isinstance(body, Mapping):
        raise InvalidSyntaxException(detail="the body must be a BulkRequest object")
    schemas = _get(body, "schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntaxException(detail=f"schemas: must hold {BULK_REQUEST}")
    raw = _get(body, "Operations")
    if not isinstance(raw, list):
        raise InvalidSyntaxException(detail="Operations: a list of operations is required")
    if len(raw) > MAX_OPERATIONS:
        raise PayloadTooLargeException(
            detail=f"a bulk request has at most {MAX_OPERATIONS} operations (maxOperations)"
        )
    fail_on_errors = _get(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or not 1 <= fail_on_errors <= MAX_OPERATIONS
    ):
        raise InvalidValueException(detail=f"failOnErrors: an integer from 1 to {MAX_OPERATIONS}")
    operations = [_operation(index, item) for index, item in enumerate(raw)]
    declared: set[str] = set()
    for operation in operations:
        if operation.method == "POST" and operation.bulk_id is not None:
            if operation.bulk_id in declared:
                raise InvalidValueException(
                    detail=f"bulkId {operation.bulk_id}: declared by two operations"
                )
            declared.add(operation.bulk_id)
    return BulkRequest([_checked(op, declared) for op in operations], fail_on_errors)


def _operation(index: int, item: Any) -> Operation:
    if not isinstance(item, Mapping):
        return Operation(index, None, None, failure=_invalid("an operation must be an object"))
    method = _get(item, "method")
    method = method.upper() if isinstance(method, str) and method.upper() in _METHODS else None
    path = _get(item, "path")
    path = path if isinstance(path, str) and len(path) <= MAX_PATH else None
    bulk_id = _get(item, "bulkId")
    if bulk_id is not None and (
        not isinstance(bulk_id, str) or not 0 < len(bulk_id) <= MAX_BULK_ID
    ):
        return Operation(
            index,
            method,
            path,
            failure=_invalid(f"bulkId: a string of 1 to {MAX_BULK_ID} characters"),
        )
    shell = Operation(index, method, path, bulk_id)
    if method is None:
        return _failed(shell, "method: POST, PUT, PATCH or DELETE")
    if path is None:
        return _failed(shell, f"path: a string of at most {MAX_PATH} characters")
    matched = _PATH.match(path)
    if matched is None:
        return _failed(shell, "path: /Users, /Groups, /Users/{id} or /Groups/{id}")
    kind = "User" if matched.group(1) == "Users" else "Group"
    resource_id = matched.group(2)
    if method == "POST" and resource_id is not None:
        return _failed(shell, "path: a POST targets /Users or /Groups")
    if method != "POST" and resource_id is None:
        return _failed(shell, f"path: a {method} targets /{matched.group(1)}/{{id}}")
    version = _get(item, "version")
    if version is not None and (not isinstance(version, str) or len(version) > MAX_VERSION):
        return _failed(shell, f"version: a string of at most {MAX_VERSION} characters")
    data = _get(item, "data")
    if method != "DELETE" and not isinstance(data, Mapping):
        return _failed(shell, f"data: a {method} carries a JSON object")
    if method == "DELETE":
        data = None
    needs = set(references(data))
    if resource_id is not None and resource_id.startswith(REFERENCE):
        needs.add(resource_id[len(REFERENCE) :])
    return Operation(
        index, method, path, bulk_id, kind, resource_id, version, data, None, frozenset(needs)
    )


def _invalid(detail: str) -> Failure:
    return Failure(400, detail, "invalidValue")


def _failed(operation: Operation, detail: str) -> Operation:
    return Operation(
        operation.index, operation.method, operation.path, operation.bulk_id,
        failure=_invalid(detail),
    )  # fmt: skip


def _checked(operation: Operation, declared: set[str]) -> Operation:
    """An operation referencing a bulkId no POST declares fails on its own."""
    unknown = sorted(operation.needs - declared)
    if operation.failure is None and unknown:
        detail = f"{REFERENCE}{unknown[0][:MAX_BULK_ID]}: no POST in this request declares it"
        return _failed(operation, detail)
    return operation


def _is_reference(key: Any, value: Any) -> bool:
    return (
        isinstance(key, str)
        and key.lower() == "value"
        and isinstance(value, str)
        and value.startswith(REFERENCE)
    )


def references(data: Any, depth: int = 0) -> list[str]:
    """The bulkIds ``data`` references: strings ``bulkId:X`` under a key named ``value``."""
    found: list[str] = []
    if depth > _MAX_DEPTH:
        return found
    if isinstance(data, Mapping):
        for key, value in data.items():
            if _is_reference(key, value):
                found.append(value[len(REFERENCE) :])
            found.extend(references(value, depth + 1))
    elif isinstance(data, list):
        for item in data:
            found.extend(references(item, depth + 1))
    return found


def resolve(data: Any, ids: Callable[[str], str], depth: int = 0) -> Any:
    """``data`` with each reference replaced by the id ``ids`` gives for its bulkId."""
    if depth > _MAX_DEPTH:
        return data
    if isinstance(data, Mapping):
        resolved: dict[str, Any] = {}
        for key, value in data.items():
            if _is_reference(key, value):
                resolved[key] = ids(value[len(REFERENCE) :])
            else:
                resolved[key] = resolve(value, ids, depth + 1)
        return resolved
    if isinstance(data, list):
        return [resolve(item, ids, depth + 1) for item in data]
    return data


def order(operations: list[Operation]) -> tuple[list[Operation], list[Operation]]:
    """The order to run the operations in: the request's, except that an operation runs after
    the POSTs whose bulkIds it references. Returns (runnable in order, blocked by a cycle)."""
    declares = {
        op.bulk_id: op.index
        for op in operations
        if op.method == "POST" and op.bulk_id is not None and op.failure is None
    }
    pending = dict(enumerate(operations))
    done: set[int] = set()
    ordered: list[Operation] = []
    progress = True
    while pending and progress:
        progress = False
        for index in sorted(pending):
            operation = pending[index]
            waits = {declares[name] for name in operation.needs if name in declares}
            if waits <= done:
                ordered.append(operation)
                done.add(index)
                del pending[index]
                progress = True
                break
    return ordered, [pending[index] for index in sorted(pending)]
