"""CSV imports over the API (Headwater extension): ``POST /imports/users`` and ``/imports/groups``.

The body is the CSV file itself (``Content-Type: text/csv``), bounded like every body by
``HEADWATER_MAX_BODY_BYTES``; it is spooled to a private temporary file as it arrives and
imported from there, so a request holds one chunk in memory, not the file. Options are query
parameters (``source``, ``match``, ``dryRun``, ``confirm``), each checked: a bad one is Okta's
400 before any row is read. The answer is the import's summary: created, updated, unchanged,
rejected (each with its line and reason) and held rows, as the CLI and the console report it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from headwater.api.deps import ActorDep, DbDep, allow
from headwater.domain.access import Permission as P
from headwater.domain.csv_import import MATCH_KEYS, MatchKey
from headwater.errors import InvalidRequest
from headwater.services import csv_import

__all__ = ["router"]

router = APIRouter(tags=["Headwater extension"])

MEDIA_TYPES = ("text/csv", "application/csv")
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
        match=_match(match), dry_run=_flag("dryRun", dryRun), confirm=_flag("confirm", confirm)
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
