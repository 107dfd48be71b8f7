"""App imports and unmanaged accounts (Headwater extension).

``POST /apps/{id}/imports`` answers at once (202) with the queued import; the engine reads the
app, matches its accounts and stores the result, which ``GET`` shows with its progress.
Confirming and every action on an unmanaged account are requests the engine carries out.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from headwater import clock
from headwater.api.body import openapi_body, parse
from headwater.api.deps import ActorDep, AuthenticatedRoute, BodyDep, DbDep, allow, base_url
from headwater.api.listing import After, page_response
from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.services import app_imports
from headwater.services.app_imports import GroupLink

__all__ = ["router"]

router = APIRouter(tags=["Headwater extension"], route_class=AuthenticatedRoute)
IMPORTS = "/apps/{app_id}/imports"
UNMANAGED = "/apps/{app_id}/unmanagedAccounts"
#: (default, maximum) page sizes.
PAGE_SIZES = (200, 1000)


# --- bodies -------------------------------------------------------------------------------------


class ConfirmBody(BaseModel):
    """Link these matched accounts (their downstream ids) only; every match when omitted."""

    model_config = ConfigDict(extra="ignore")

    accountIds: list[StrictStr] | None = Field(default=None, max_length=10_000)


class IdsBody(BaseModel):
    """These unmanaged accounts only (their ids); all that qualify when omitted."""

    model_config = ConfigDict(extra="ignore")

    ids: list[StrictStr] | None = Field(default=None, max_length=10_000)


class LinkUserBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: StrictStr = Field(max_length=64)


class GroupLinkBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    externalId: StrictStr = Field(max_length=255)
    sourceGroupId: StrictStr = Field(max_length=64)


class GroupLinksBody(BaseModel):
    """Push each source group to the downstream group the import found."""

    model_config = ConfigDict(extra="ignore")

    links: list[GroupLinkBody] = Field(min_length=1, max_length=1000)


# --- representations ----------------------------------------------------------------------------


def import_json(row: t.AppImport, base: str) -> dict[str, Any]:
    href = f"{base}/api/v1/apps/{row.app_id}/imports/{row.id}"
    return {
        "id": row.id,
        "status": row.status,
        "matchingRules": row.rules.split(","),
        "autoConfirm": row.auto_confirm,
        "created": clock.format_okta(row.created),
        "started": clock.format_okta(row.started),
        "finished": clock.format_okta(row.finished),
        "lastUpdated": clock.format_okta(row.last_updated),
        "progress": {
            "accountsRead": row.accounts_read,
            "accountsTotal": row.accounts_total,
            "groupsRead": row.groups_read,
        },
        "results": {
            "matched": row.matched,
            "unmatched": row.unmatched,
            "conflicts": row.conflicts,
            "alreadyLinked": row.linked,
            "confirmed": row.confirmed,
        },
        "error": row.error,
        "_links": {
            "self": {"href": href},
            "accounts": {"href": f"{href}/accounts"},
            "groups": {"href": f"{href}/groups"},
            "confirm": {"href": f"{href}/confirm", "hints": {"allow": ["POST"]}},
            "app": {"href": f"{base}/api/v1/apps/{row.app_id}"},
        },
    }


def account_json(row: t.AppImportAccount) -> dict[str, Any]:
    return {
        "id": row.id,
        "externalId": row.external_id,
        "userName": row.user_name,
        "email": row.email,
        "accountExternalId": row.account_external_id,
        "employeeNumber": row.employee_number,
        "displayName": row.display_name,
        "active": row.active,
        "outcome": row.outcome,
        "userId": row.user_id,
        "rule": row.rule,
        "reason": row.reason,
        "candidates": row.candidates or [],
        "confirmed": row.confirmed,
    }


def group_json(row: t.AppImportGroup) -> dict[str, Any]:
    return {
        "id": row.id,
        "externalId": row.external_id,
        "displayName": row.display_name,
        "mappingId": row.mapping_id,
    }


def unmanaged_json(row: t.UnmanagedAccount) -> dict[str, Any]:
    return {
        "id": row.id,
        "externalId": row.external_id,
        "userName": row.user_name,
        "email": row.email,
        "displayName": row.display_name,
        "active": row.active,
        "state": row.state,
        "held": row.decision == "HELD",
        "userId": row.user_id,
        "lastError": row.last_error,
        "firstSeen": clock.format_okta(row.first_seen),
        "lastSeen": clock.format_okta(row.last_seen),
    }


# --- imports ------------------------------------------------------------------------------------


@router.post(IMPORTS, status_code=202, dependencies=[allow(P.APPS_WRITE, "app_id")])
def start_import(request: Request, db: DbDep, actor: ActorDep, app_id: str) -> JSONResponse:
    """Queue an import of every account and group the app holds; the engine runs it."""
    with db.transaction() as session:
        row = app_imports.start_import(session, actor, app_id)
        body = import_json(row, base_url(request))
    return JSONResponse(body, status_code=202, headers={"Location": body["_links"]["self"]["href"]})


@router.get(IMPORTS, dependencies=[allow(P.APPS_READ, "app_id")])
def list_imports(
    request: Request, db: DbDep, app_id: str, after: After = None, limit: int | None = None
) -> JSONResponse:
    base = base_url(request)
    with db.read() as session:
        return page_response(
            request,
            session,
            app_imports.imports_query(session, app_id),
            t.AppImport.id,
            lambda row: import_json(row, base),
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.get(IMPORTS + "/{import_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_import(request: Request, db: DbDep, app_id: str, import_id: str) -> dict[str, Any]:
    """Status, progress and the counts of each verdict."""
    with db.read() as session:
        return import_json(app_imports.get_import(session, app_id, import_id), base_url(request))


@router.get(IMPORTS + "/{import_id}/accounts", dependencies=[allow(P.APPS_READ, "app_id")])
def list_import_accounts(
    request: Request,
    db: DbDep,
    app_id: str,
    import_id: str,
    outcome: str | None = None,
    after: After = None,
    limit: int | None = None,
) -> JSONResponse:
    """The accounts read, with their verdict (``outcome``: MATCHED, UNMATCHED, CONFLICT,
    LINKED)."""
    with db.read() as session:
        return page_response(
            request,
            session,
            app_imports.accounts_query(session, app_id, import_id, outcome),
            t.AppImportAccount.id,
            account_json,
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.get(IMPORTS + "/{import_id}/groups", dependencies=[allow(P.APPS_READ, "app_id")])
def list_import_groups(
    request: Request,
    db: DbDep,
    app_id: str,
    import_id: str,
    after: After = None,
    limit: int | None = None,
) -> JSONResponse:
    with db.read() as session:
        return page_response(
            request,
            session,
            app_imports.groups_query(session, app_id, import_id),
            t.AppImportGroup.id,
            group_json,
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


@router.post(
    IMPORTS + "/{import_id}/confirm",
    status_code=202,
    openapi_extra=openapi_body(ConfirmBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def confirm_import(
    db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, import_id: str
) -> JSONResponse:
    """Link the matched accounts (or those named); nothing is created downstream."""
    parsed = parse(ConfirmBody, body, required=False)
    with db.transaction() as session:
        count = app_imports.confirm(session, actor, app_id, import_id, parsed.accountIds)
    return JSONResponse({"requested": count}, status_code=202)


@router.post(
    IMPORTS + "/{import_id}/groups/link",
    openapi_extra=openapi_body(GroupLinksBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def link_import_groups(
    db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, import_id: str
) -> list[dict[str, Any]]:
    """Push directory groups to downstream groups the import found (Okta's APP_GROUP targets),
    in one step."""
    parsed = parse(GroupLinksBody, body)
    links = [GroupLink(item.externalId, item.sourceGroupId) for item in parsed.links]
    with db.transaction() as session:
        mappings = app_imports.link_groups(session, actor, app_id, import_id, links)
        return [
            {
                "mappingId": m.id,
                "sourceGroupId": m.source_group_id,
                "targetGroupId": m.target_group_id,
            }
            for m in mappings
        ]


# --- unmanaged accounts -------------------------------------------------------------------------


@router.get(UNMANAGED, dependencies=[allow(P.APPS_READ, "app_id")])
def list_unmanaged(
    request: Request,
    db: DbDep,
    app_id: str,
    state: str | None = None,
    after: After = None,
    limit: int | None = None,
) -> JSONResponse:
    """Accounts in the app that no directory user owns, with when each was last seen."""
    with db.read() as session:
        return page_response(
            request,
            session,
            app_imports.unmanaged_query(session, app_id, state),
            t.UnmanagedAccount.id,
            unmanaged_json,
            limit=limit,
            after=after,
            sizes=PAGE_SIZES,
        )


def _ids(body: Any) -> list[str] | None:
    return parse(IdsBody, body, required=False).ids


@router.post(
    UNMANAGED + "/deactivate",
    status_code=202,
    openapi_extra=openapi_body(IdsBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def deactivate_unmanaged(db: DbDep, actor: ActorDep, body: BodyDep, app_id: str) -> JSONResponse:
    """Deactivate unmanaged accounts through the engine (the mass-change guard may hold them)."""
    ids = _ids(body)
    with db.transaction() as session:
        count = app_imports.deactivate(session, actor, app_id, ids)
    return JSONResponse({"requested": count}, status_code=202)


@router.post(
    UNMANAGED + "/approve",
    openapi_extra=openapi_body(IdsBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def approve_unmanaged(db: DbDep, actor: ActorDep, body: BodyDep, app_id: str) -> dict[str, int]:
    """Let deactivations the mass-change guard held run."""
    ids = _ids(body)
    with db.transaction() as session:
        return {"decided": app_imports.decide_held(session, actor, app_id, True, ids)}


@router.post(
    UNMANAGED + "/reject",
    openapi_extra=openapi_body(IdsBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def reject_unmanaged(db: DbDep, actor: ActorDep, body: BodyDep, app_id: str) -> dict[str, int]:
    """Drop held deactivations: the accounts stay as they are."""
    ids = _ids(body)
    with db.transaction() as session:
        return {"decided": app_imports.decide_held(session, actor, app_id, False, ids)}


@router.post(
    UNMANAGED + "/{account_id}/link",
    status_code=202,
    openapi_extra=openapi_body(LinkUserBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def link_unmanaged(
    db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, account_id: str
) -> JSONResponse:
    """Make the account a chosen user's account in this app (no downstream write)."""
    parsed = parse(LinkUserBody, body)
    with db.transaction() as session:
        row = app_imports.link_unmanaged(session, actor, app_id, account_id, parsed.userId)
        return JSONResponse(unmanaged_json(row), status_code=202)


@router.post(UNMANAGED + "/{account_id}/ignore", dependencies=[allow(P.APPS_WRITE, "app_id")])
def ignore_unmanaged(db: DbDep, actor: ActorDep, app_id: str, account_id: str) -> dict[str, Any]:
    """Leave the account alone: listed, never deactivated in bulk."""
    with db.transaction() as session:
        return unmanaged_json(app_imports.ignore(session, actor, app_id, account_id))


@router.post(UNMANAGED + "/{account_id}/unignore", dependencies=[allow(P.APPS_WRITE, "app_id")])
def unignore_unmanaged(db: DbDep, actor: ActorDep, app_id: str, account_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        return unmanaged_json(app_imports.ignore(session, actor, app_id, account_id, ignored=False))
