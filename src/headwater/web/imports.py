"""Import: upload a CSV file of people, preview its first rows and a dry run, then import it.

The upload is kept between the preview and the import in the data folder (mode 0600, named by
a random id and bound to the admin who sent it), so that the import writes exactly the file
that was previewed; it is deleted once imported, and any upload older than an hour goes at the
next preview.

Rows the mass-change guard held are listed on the import page, each with approve and reject
buttons (forms with the CSRF token, like every console form).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response

from headwater.domain.access import Permission as P
from headwater.domain.csv_import import MATCH_KEYS, MatchKey
from headwater.errors import HeadwaterError, InvalidRequest
from headwater.services import csv_import
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    Form,
    FormDep,
    SignedIn,
    UploadDep,
    allow,
    db_of,
    error_message,
    render,
    runtime_of,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

PREVIEW_ROWS = 10
#: Held rows listed on the import page at most (the API and the CLI list them all).
HOLDS_SHOWN = 200
#: Uploads older than this are deleted at the next preview.
KEEP_SECONDS = 3600


def _folder(request: Request) -> Path:
    folder = Path(runtime_of(request).settings.data_dir) / "imports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue


def _options(form: Form) -> tuple[str, str]:
    match = form.get("match") or MatchKey.LOGIN.value
    if match not in MATCH_KEYS:
        raise InvalidRequest("Api validation failed: match", [f"match: one of {MATCH_KEYS}"])
    return match, form.get("source")[:100]


def _context(**values: Any) -> dict[str, Any]:
    defaults = {"holds": [], "holds_shown": HOLDS_SHOWN}
    return {"section": "import", "match_keys": MATCH_KEYS, "error": None, **defaults, **values}


@router.get("/import", dependencies=[allow(P.USERS_READ)])
def import_page(request: Request, admin: AdminDep) -> Response:
    holds = csv_import.list_holds(db_of(request), None, HOLDS_SHOWN)
    context = _context(match="login", source="", holds=holds, holds_shown=HOLDS_SHOWN)
    return render(request, "imports/upload.html", context)


@router.post("/import/holds/{hold_id}/{verb}", dependencies=[allow(P.USERS_WRITE)])
def decide_hold(
    request: Request, admin: AdminDep, form: FormDep, hold_id: str, verb: str
) -> Response:
    """Approve (apply) or reject one held row, then back to the import page."""
    if verb not in ("approve", "reject"):
        raise InvalidRequest("Unknown action.", ["action: approve or reject"])
    approve = verb == "approve"
    try:
        hold = csv_import.decide_hold(db_of(request), admin.actor, hold_id[:64], approve)
    except HeadwaterError as exc:
        session_of(request).flash("error", error_message(exc))
    else:
        done = "approved and applied" if approve else "rejected; the person was left as is"
        session_of(request).flash("ok", f"Held row for {hold.key} (line {hold.line}) {done}.")
    return see_other(f"{PREFIX}/import")


@router.post("/import/preview", dependencies=[allow(P.USERS_WRITE)])
async def preview(request: Request, admin: AdminDep, form: UploadDep) -> Response:
    """Keep the upload, and show its first rows and what a dry run of it reports."""
    upload = form.file("file")
    match, source = form.get("match") or "login", form.get("source")
    data = b""
    if upload is not None:
        data = await upload.read()
        await upload.close()
    if not data:
        context = _context(match=match, source=source, error="Choose a CSV file to import.")
        return render(request, "imports/upload.html", context, 400)
    try:
        match, source = _options(form)
        actor = csv_import.import_actor(admin.actor, source or None)
        options = csv_import.Options(match=MatchKey(match), dry_run=True)
        header, first = csv_import.preview(data, PREVIEW_ROWS)
        summary = csv_import.import_users(db_of(request), actor, data, options)
    except HeadwaterError as exc:
        context = _context(match=match, source=source, error=error_message(exc))
        return render(request, "imports/upload.html", context, exc.status)
    folder = _folder(request)
    _sweep(folder)
    upload_id = secrets.token_urlsafe(18)
    _write(folder / f"{upload_id}.csv", data)
    _write(folder / f"{upload_id}.json", json.dumps({"admin": admin.username}).encode())
    context = _context(
        match=match,
        source=source,
        upload_id=upload_id,
        name=(upload.filename if upload is not None else None) or "upload.csv",
        header=header,
        rows=first,
        summary=summary,
    )
    return render(request, "imports/preview.html", context)


def _write(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _upload(request: Request, admin: SignedIn, upload_id: str) -> Path:
    """The kept upload of this admin, or InvalidRequest (expired, someone else's, made up)."""
    gone = InvalidRequest(
        "This upload has expired or was already imported; upload the file again.",
        ["upload: not found"],
    )
    if not upload_id or not upload_id.replace("-", "").replace("_", "").isalnum():
        raise gone
    folder = _folder(request)
    path, owner = folder / f"{upload_id}.csv", folder / f"{upload_id}.json"
    try:
        kept = json.loads(owner.read_text())
    except (OSError, ValueError):
        raise gone from None
    if kept.get("admin") != admin.username or not path.exists():
        raise gone
    return path


@router.post("/import", dependencies=[allow(P.USERS_WRITE)])
def run_import(request: Request, admin: AdminDep, form: FormDep) -> Response:
    """Import the previewed upload, then show what was done."""
    path = _upload(request, admin, form.get("upload"))
    match, source = _options(form)
    actor = csv_import.import_actor(admin.actor, source or None)
    options = csv_import.Options(
        match=MatchKey(match), source=source or None, confirm=form.checked("confirm")
    )
    summary = csv_import.import_users(db_of(request), actor, path, options)
    for kept in (path, path.with_suffix(".json")):
        kept.unlink(missing_ok=True)
    return render(request, "imports/done.html", _context(summary=summary))
