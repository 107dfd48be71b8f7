"""CSV imports over the API (Headwater extension): ``POST /imports/users`` and ``/imports/groups``.

The body is the CSV file itself (``Content-Type: text/csv``), bounded like every body by
``HEADWATER_MAX_BODY_BYTES``; it is spooled to a private temporary file as it arrives and
imported from there, so a request holds one chunk in memory, not the file. Options are query
parameters (``source``, ``match``, ``dryRun``, ``confirm``), each checked: a bad one is Okta's
400 before any row is read. The answer is the import's summary: created, updated, unchanged,
rejected (each with its line and reason) and held rows, as the CLI and the console report it.

Rows held by the mass-change guard are kept: ``GET /imports/holds`` lists them (pending ones
by default), and ``POST /imports/holds/{id}/lifecycle/approve`` (applies the row) or
``/reject`` (leaves the person as they are) decides one; ``POST /imports/holds/lifecycle/
approve|reject`` with ``{"ids": [...]}`` decides several, each on its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.listing import After, page_response
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.csv_import import MATCH_KEYS, MatchKey
from headwater.errors import HeadwaterError, InvalidRequest, NotFound
from headwater.services import csv_import

__all__ = ["router"]

router = APIRouter(tags=["Headwater extension"], route_class=AuthenticatedRoute)

MEDIA_TYPES = ("text/csv", "application/csv")
HOLDS = "/imports/holds"
#: (default, maximum) page sizes of the held rows.
PAGE_SIZES = (200, 1000)
#: Held rows decided by one bulk request, at most.
MAX_BULK = 1000
_FLAGS = {"true": True, "false": False}


def _csv_body(required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    found = _FLAGS.get(value.strip().lower())
    if found is None:
        raise InvalidRequest(f"Api validation failed: {name}", [f"{name}: must be true or false"])
    return found


def _match(value: str | None) -> MatchKey:
    if value is None or value == "":
        return MatchKey.LOGIN
    if value not in MATCH_KEYS:
        raise InvalidRequest(
            "Api validation failed: match", [f"match: must be one of {', '.join(MATCH_KEYS)}"]
        )
    return MatchKey(value)


def _check_media_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise InvalidRequest(
            "Api validation failed: Content-Type",
            ["Content-Type: the body must be a CSV file sent as text/csv"],
        )


async def _spooled(request: Request, folder: Path) -> Path:
    """The body written to a private file in ``folder`` (the body-size bound applies as it is
    read); InvalidRequest when it is empty."""
    path = folder / "upload.csv"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size = 0
    with os.fdopen(descriptor, "wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            handle.write(chunk)
    if not size:
        raise InvalidRequest("The file is empty", ["body: a CSV file is required"])
    return path


@router.post(
    "/imports/users",
    dependencies=[allow(P.USERS_WRITE)],
    openapi_extra=_csv_body(),
    responses={200: {"description": "What the import did (or, with dryRun, would do)"}},
)
async def import_users(
    request: Request,
    db: DbDep,
    actor: ActorDep,
    source: str | None = None,
    match: str | None = None,
    dryRun: str | None = None,
    confirm: str | None = None,
) -> dict[str, Any]:
    """Import people from a CSV file: a header names the columns (profile attributes,
    ``groups``, ``status``); each row creates or updates the person it matches by ``match``
    (login, email or employeeNumber). ``dryRun=true`` checks every row and writes nothing;
    ``confirm=true`` applies deactivations and suspensions above the mass-change threshold,
    which are otherwise held and reported."""
    _check_media_type(request)
    options = csv_import.Options(
        match=_match(match),
        source=source or None,
        dry_run=_flag("dryRun", dryRun),
        confirm=_flag("confirm", confirm),
    )
    who = csv_import.import_actor(actor, source or None)
    with tempfile.TemporaryDirectory(prefix="headwater-upload-") as folder:
        path = await _spooled(request, Path(folder))
        summary = await run_in_threadpool(csv_import.import_users, db, who, path, options)
    return summary.as_json()


@router.post(
    "/imports/groups",
    dependencies=[allow(P.GROUPS_WRITE)],
    openapi_extra=_csv_body(),
    responses={200: {"description": "What the import did (or, with dryRun, would do)"}},
)
async def import_groups(
    request: Request,
    db: DbDep,
    actor: ActorDep,
    source: str | None = None,
    dryRun: str | None = None,
) -> dict[str, Any]:
    """Create groups from a CSV file with a ``name`` column (and ``description``); a group of
    the same name is updated when its description differs."""
    _check_media_type(request)
    dry_run = _flag("dryRun", dryRun)
    who = csv_import.import_actor(actor, source or None)
    with tempfile.TemporaryDirectory(prefix="headwater-upload-") as folder:
        path = await _spooled(request, Path(folder))
        summary = await run_in_threadpool(
            lambda: csv_import.import_groups(db, who, path, dry_run=dry_run)
        )
    return summary.as_json()


# --- held rows ----------------------------------------------------------------------------------


class HoldIdsBody(BaseModel):
    """The held rows to decide (their ids)."""

    model_config = ConfigDict(extra="ignore")

    ids: list[StrictStr] = Field(min_length=1, max_length=MAX_BULK)


def hold_json(row: t.ImportHold, base: str) -> dict[str, Any]:
    href = f"{base}/api/v1{HOLDS}/{row.id}"
    links: dict[str, Any] = {
        "self": {"href": href},
        "user": {"href": f"{base}/api/v1/users/{row.user_id}"},
    }
    if row.decision == "HELD":
        for verb in ("approve", "reject"):
            links[verb] = {"href": f"{href}/lifecycle/{verb}", "hints": {"allow": ["POST"]}}
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.decision,
        "userId": row.user_id,
        "line": row.line,
        "key": row.key,
        "reason": row.reason,
        "row": row.row,
        "match": row.match,
        "source": row.source,
        "created": clock.format_okta(row.created),
        "createdBy": row.created_by,
        "decided": clock.format_okta(row.decided_at),
        "decidedBy": row.decided_by,
        "_links": links,
    }


@router.get(HOLDS, dependencies=[allow(P.USERS_READ)])
def list_holds(
    request: Request,
    db: DbDep,
    status: str | None = None,
    after: After = None,
    limit: int | None = None,
) -> JSONResponse:
    """Rows of CSV imports held by the mass-change guard, oldest first: those waiting for a
    decision (``status=HELD``, the default), or the ``APPROVED`` or ``REJECTED`` ones."""
    query = csv_import.holds_query(status)
    base = base_url(request)
    with db.read() as session:
        return page_response(
            request,
            session,
            query,
            t.ImportHold.id,
            lambda row: hold_json(row, base),
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.get(HOLDS + "/{hold_id}", dependencies=[allow(P.USERS_READ)])
def get_hold(request: Request, db: DbDep, hold_id: str) -> dict[str, Any]:
    with db.read() as session:
        row = session.get(t.ImportHold, hold_id[:64])
        if row is None:
            raise NotFound(f"Not found: Resource not found: {hold_id} (ImportHold)")
        return hold_json(row, base_url(request))


def _decide(
    request: Request, db: DbDep, actor: ActorDep, hold_id: str, approve: bool
) -> dict[str, Any]:
    if len(hold_id) > 64:
        raise NotFound(f"Not found: Resource not found: {hold_id[:64]} (ImportHold)")
    row = csv_import.decide_hold(db, actor, hold_id, approve)
    return hold_json(row, base_url(request))


@router.post(HOLDS + "/{hold_id}/lifecycle/approve", dependencies=[allow(P.USERS_WRITE)])
def approve_hold(request: Request, db: DbDep, actor: ActorDep, hold_id: str) -> dict[str, Any]:
    """Apply the held row now, as an import with ``confirm=true`` would (all of it or nothing);
    400 when it no longer applies to the person, 409 when it was decided already."""
    return _decide(request, db, actor, hold_id, True)


@router.post(HOLDS + "/{hold_id}/lifecycle/reject", dependencies=[allow(P.USERS_WRITE)])
def reject_hold(request: Request, db: DbDep, actor: ActorDep, hold_id: str) -> dict[str, Any]:
    """Drop the held row: the person stays as they are."""
    return _decide(request, db, actor, hold_id, False)


def _bulk(db: DbDep, actor: ActorDep, body: Any, approve: bool) -> dict[str, Any]:
    wanted = parse(HoldIdsBody, body).ids
    decided: list[str] = []
    failed: list[dict[str, str]] = []
    for hold_id in dict.fromkeys(wanted):
        try:
            if len(hold_id) > 64:
                raise NotFound(f"Not found: Resource not found: {hold_id[:64]} (ImportHold)")
            csv_import.decide_hold(db, actor, hold_id, approve)
        except HeadwaterError as exc:
            failed.append({"id": hold_id[:64], "errorCode": exc.code, "errorSummary": exc.summary})
            continue
        decided.append(hold_id)
    return {"decided": decided, "failed": failed}


@router.post(
    HOLDS + "/lifecycle/approve",
    openapi_extra=openapi_body(HoldIdsBody),
    dependencies=[allow(P.USERS_WRITE)],
)
def approve_holds(db: DbDep, actor: ActorDep, body: BodyDep) -> dict[str, Any]:
    """Approve several held rows, each on its own: the answer lists those decided and why
    each other one was not."""
    return _bulk(db, actor, body, True)


@router.post(
    HOLDS + "/lifecycle/reject",
    openapi_extra=openapi_body(HoldIdsBody),
    dependencies=[allow(P.USERS_WRITE)],
)
def reject_holds(db: DbDep, actor: ActorDep, body: BodyDep) -> dict[str, Any]:
    """Reject several held rows, each on its own."""
    return _bulk(db, actor, body, False)
