"""``/scim/v2``: Headwater as a SCIM 2.0 service provider for inbound sources.

Each source authenticates with its own bearer token (``services.sources``) and sees only the
users and groups it masters. Every answer, errors included, is SCIM's (``application/scim+json``,
the ``Error`` message with ``scimType``), never Okta's: a SCIM client reads these. The routes are
left out of the OpenAPI document; the discovery endpoints describe them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from scim2_models import Error, PayloadTooLargeException, SCIMException
from sqlalchemy.orm import Session

from headwater.api.body import decode, raw_body
from headwater.api.deps import base_url, get_db, get_runtime, storable_url
from headwater.db import tables as t
from headwater.domain import inbound, inbound_bulk
from headwater.domain.inbound import InvalidResource
from headwater.errors import (
    Conflict,
    HeadwaterError,
    InvalidRequest,
    MalformedRequest,
    NotFound,
    StatusConflict,
    Unauthenticated,
)
from headwater.services import inbound as scim
from headwater.services import inbound_bulk as bulk_service
from headwater.services import sources
from headwater.services.directory import LOGIN_TAKEN, NAME_TAKEN

__all__ = ["router"]

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/scim+json"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: Bounds of the query parameters.
MAX_PARAMETER = 4096
MAX_START_INDEX = 10_000_000


def _scim_json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(document, status_code=status, media_type=MEDIA_TYPE, headers=headers)


#: An error's status, detail and ``scimType``.
Problem = tuple[int, str, str | None]


def error_document(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = Error(
        status=status, scim_type=scim_type, detail=detail[:1000]
    ).model_dump()
    return document


def error_response(status: int, detail: str, scim_type: str | None = None) -> Any:
    document = error_document(status, detail, scim_type)
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if status == 401 else None
    return _scim_json(document, status, headers)


def _from_validation(exc: InvalidResource) -> Problem:
    if isinstance(exc.errors, str):
        return 400, exc.errors, "invalidValue"
    errors = Error.from_validation_errors(exc.errors)
    first = errors[0] if errors else Error(status=400, scim_type="invalidValue", detail=str(exc))
    return int(first.status or 400), first.detail or "invalid", first.scim_type


def _from_headwater(exc: HeadwaterError) -> Problem:
    detail = "; ".join(exc.causes) if exc.causes else exc.summary
    if isinstance(exc, InvalidRequest):
        if LOGIN_TAKEN in exc.causes or NAME_TAKEN in exc.causes:
            return 409, detail, "uniqueness"
        scim_type = "invalidFilter" if exc.summary.startswith("Invalid search") else "invalidValue"
        return 400, detail, scim_type
    if isinstance(exc, MalformedRequest):
        return 400, "The request body is not valid JSON.", "invalidSyntax"
    if isinstance(exc, NotFound):
        return 404, exc.summary, None
    if isinstance(exc, Unauthenticated):
        return 401, "A valid source bearer token is required.", None
    if isinstance(exc, StatusConflict | Conflict):
        return 409, detail, None
    return (exc.status if exc.status < 500 else 400), detail, None


def _problem_of(exc: Exception) -> Problem | None:
    """The SCIM error for a failure, or ``None`` for one that is not the caller's."""
    if isinstance(exc, SCIMException):
        error = exc.to_error()
        return int(error.status or 400), error.detail or "", error.scim_type
    if isinstance(exc, InvalidResource):
        return _from_validation(exc)
    if isinstance(exc, HeadwaterError):
        return _from_headwater(exc)
    return None


class ScimRoute(APIRoute):
    """Turns every failure of a SCIM route into SCIM's error message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (SCIMException, InvalidResource, HeadwaterError) as exc:
                problem = _problem_of(exc)
                assert problem is not None
                return error_response(*problem)  # type: ignore[no-any-return]
            except RequestValidationError:
                return error_response(400, "Invalid request.", "invalidValue")  # type: ignore[no-any-return]

        return handle


router = APIRouter(prefix="/scim/v2", route_class=ScimRoute, include_in_schema=False)

#: A request's body, read on the event loop within the server's body size limit; the handlers
#: are plain ``def`` (run in the threadpool, as their database work is synchronous) and decode
#: it there with ``decode``.
Body = Annotated[bytes, Depends(raw_body)]


# --- The caller -------------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    value = (request.headers.get("authorization") or "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    return token.strip()


def _source(request: Request) -> t.Source:
    """Authenticate the source's token; ``last_used`` is written at most once a minute."""
    token = _bearer(request)
    database = get_db(request)
    with database.read() as session:
        source, stale = sources.authenticate(session, token)
        session.expunge(source)
    if stale:
        with database.transaction() as session:
            sources.touch(session, token)
    storable_url(request)
    return source


def _attached(session: Session, source: t.Source) -> t.Source:
    found = session.get(t.Source, source.id)
    if found is None:
        raise Unauthenticated()
    return found


def _base(request: Request) -> str:
    return base_url(request) + "/scim/v2"


# --- Query parameters -------------------------------------------------------------------------


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_PARAMETER:
        raise InvalidRequest(causes=[f"{name}: a string of at most {MAX_PARAMETER} characters"])
    return value


def _number(params: dict[str, Any], name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(causes=[f"{name}: must be an integer"]) from exc
    return max(-1, min(number, MAX_START_INDEX))


def _names(value: str | None) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()][:100]


def _project(document: dict[str, Any], attributes: list[str], excluded: list[str]) -> Any:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5), on top-level attributes
    and their sub-attributes; ``id``, ``schemas`` and ``meta`` always stay."""
    always = {"id", "schemas", "meta"}

    def key_of(name: str) -> tuple[str, str | None]:
        lowered = name.lower()
        for urn in (inbound.ENTERPRISE_USER, inbound.CORE_USER, inbound.CORE_GROUP):
            if lowered.startswith(urn.lower() + ":"):
                if urn == inbound.ENTERPRISE_USER:
                    return urn.lower(), lowered[len(urn) + 1 :]
                lowered = lowered[len(urn) + 1 :]
        top, _, sub = lowered.partition(".")
        return top, sub or None

    if attributes:
        wanted: dict[str, set[str] | None] = {}
        for name in attributes:
            top, sub = key_of(name)
            if sub is None or wanted.get(top, set()) is None:
                wanted[top] = None
            else:
                wanted.setdefault(top, set()).add(sub)  # type: ignore[union-attr]
        kept: dict[str, Any] = {}
        for key, value in document.items():
            rule = wanted.get(key.lower(), ...)
            if key in always or rule is None:
                kept[key] = value
            elif rule is not ... and isinstance(value, dict):
                kept[key] = {k: v for k, v in value.items() if k.lower() in rule}
        return kept
    if excluded:
        drop = {key_of(name)[0] for name in excluded if key_of(name)[1] is None}
        return {k: v for k, v in document.items() if k in always or k.lower() not in drop}
    return document


def _projected(request: Request, document: dict[str, Any]) -> Any:
    params = dict(request.query_params)
    return _project(
        document,
        _names(_text(params, "attributes")),
        _names(_text(params, "excludedAttributes")),
    )


# --- Discovery --------------------------------------------------------------------------------


def _with_location(document: dict[str, Any], kind: str, location: str) -> dict[str, Any]:
    return {**document, "meta": {"resourceType": kind, "location": location}}


def _max_payload(request: Request) -> int:
    """``bulk.maxPayloadSize``: the bulk bound, or the server's body limit if it is lower."""
    limit: int = get_runtime(request).settings.max_body_bytes
    return min(inbound_bulk.MAX_PAYLOAD, limit)


def _config(request: Request) -> dict[str, Any]:
    document = inbound.service_provider_config(
        bulk=True, max_operations=inbound_bulk.MAX_OPERATIONS, max_payload=_max_payload(request)
    )
    return _with_location(
        document, "ServiceProviderConfig", f"{_base(request)}/ServiceProviderConfig"
    )


def _schemas(request: Request) -> list[dict[str, Any]]:
    return [
        _with_location(schema, "Schema", f"{_base(request)}/Schemas/{schema['id']}")
        for schema in [*inbound.user_schemas(), inbound.group_schema()]
    ]


def _resource_types(request: Request) -> list[dict[str, Any]]:
    return [
        _with_location(kind, "ResourceType", f"{_base(request)}/ResourceTypes/{kind['id']}")
        for kind in inbound.resource_types()
    ]


def _list(resources: list[Any], *, total: int | None = None, start: int = 1) -> Any:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources) if total is None else total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


@router.get("/ServiceProviderConfig")
def service_provider_config(request: Request) -> Response:
    _source(request)
    return _scim_json(_config(request))  # type: ignore[no-any-return]


@router.get("/Schemas")
def schemas(request: Request) -> Response:
    _source(request)
    found = _schemas(request)
    return _scim_json(_list(found))  # type: ignore[no-any-return]


@router.get("/Schemas/{schema_id}")
def schema(request: Request, schema_id: str) -> Response:
    _source(request)
    for document in _schemas(request):
        if document["id"] == schema_id:
            return _scim_json(document)  # type: ignore[no-any-return]
    raise NotFound(f"Schema {schema_id[:100]} not found")


@router.get("/ResourceTypes")
def resource_types(request: Request) -> Response:
    _source(request)
    return _scim_json(_list(_resource_types(request)))  # type: ignore[no-any-return]


@router.get("/ResourceTypes/{type_id}")
def resource_type(request: Request, type_id: str) -> Response:
    _source(request)
    for document in _resource_types(request):
        if document["id"] == type_id:
            return _scim_json(document)  # type: ignore[no-any-return]
    raise NotFound(f"ResourceType {type_id[:100]} not found")


# --- Users and Groups -------------------------------------------------------------------------


def _written(document: dict[str, Any], status: int = 200) -> Any:
    return _scim_json(document, status, {"ETag": document["meta"]["version"]})


def _listing(request: Request, kind: str, params: dict[str, Any]) -> Any:
    source = _source(request)
    order = (_text(params, "sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidRequest(causes=["sortOrder: ascending or descending"])
    arguments: dict[str, Any] = {
        "filter": _text(params, "filter"),
        "sort_by": _text(params, "sortBy"),
        "descending": order == "descending",
        "start_index": _number(params, "startIndex", 1) or 1,
        "count": _number(params, "count", None),
    }
    base = _base(request)
    attributes = _names(_text(params, "attributes"))
    excluded = _names(_text(params, "excludedAttributes"))
    with get_db(request).read() as session:
        owner = _attached(session, source)
        if kind == "User":
            page = scim.list_users(session, owner, **arguments)
            resources = [scim.user_resource(user, base) for user in page.rows]
        else:
            page = scim.list_groups(session, owner, **arguments)
            with_members = not any(name.lower() == "members" for name in excluded)
            resources = [
                scim.group_resource(session, group, base, members=with_members)
                for group in page.rows
            ]
    projected = [_project(resource, attributes, excluded) for resource in resources]
    return _scim_json(_list(projected, total=page.total, start=page.start_index))


def _search_params(raw: bytes) -> dict[str, Any]:
    body = decode(raw)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidRequest(causes=["body: a SearchRequest object"])
    params = {key: body.get(key) for key in ("filter", "sortBy", "sortOrder")}
    for key in ("startIndex", "count"):
        params[key] = body.get(key)
    for key in ("attributes", "excludedAttributes"):
        value = body.get(key)
        if isinstance(value, list):
            params[key] = ",".join(str(v) for v in value[:100])
    return params


@router.get("/Users")
def list_users(request: Request) -> Response:
    return _listing(request, "User", dict(request.query_params))  # type: ignore[no-any-return]


@router.post("/Users/.search")
def search_users(request: Request, raw: Body) -> Response:
    return _listing(request, "User", _search_params(raw))  # type: ignore[no-any-return]


@router.get("/Groups")
def list_groups(request: Request) -> Response:
    return _listing(request, "Group", dict(request.query_params))  # type: ignore[no-any-return]


@router.post("/Groups/.search")
def search_groups(request: Request, raw: Body) -> Response:
    return _listing(request, "Group", _search_params(raw))  # type: ignore[no-any-return]


@router.post("/Users")
def create_user(request: Request, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    with get_db(request).transaction() as session:
        user = scim.create_user(session, _attached(session, source), body)
        document = scim.user_resource(user, _base(request))
    return _written(_projected(request, document), 201)  # type: ignore[no-any-return]


@router.get("/Users/{user_id}")
def get_user(request: Request, user_id: str) -> Response:
    source = _source(request)
    with get_db(request).read() as session:
        user = scim.find_user(session, _attached(session, source), user_id)
        document = scim.user_resource(user, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.put("/Users/{user_id}")
def replace_user(request: Request, user_id: str, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        owner = _attached(session, source)
        user = scim.replace_user(session, owner, user_id, body, if_match)
        document = scim.user_resource(user, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.patch("/Users/{user_id}")
def patch_user(request: Request, user_id: str, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        owner = _attached(session, source)
        user = scim.patch_user(session, owner, user_id, body, if_match)
        document = scim.user_resource(user, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.delete("/Users/{user_id}", status_code=204)
def delete_user(request: Request, user_id: str) -> Response:
    source = _source(request)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        scim.delete_user(session, _attached(session, source), user_id, if_match)
    return Response(status_code=204)


@router.post("/Groups")
def create_group(request: Request, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    with get_db(request).transaction() as session:
        group = scim.create_group(session, _attached(session, source), body)
        document = scim.group_resource(session, group, _base(request))
    return _written(_projected(request, document), 201)  # type: ignore[no-any-return]


@router.get("/Groups/{group_id}")
def get_group(request: Request, group_id: str) -> Response:
    source = _source(request)
    with get_db(request).read() as session:
        group = scim.find_group(session, _attached(session, source), group_id)
        document = scim.group_resource(session, group, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.put("/Groups/{group_id}")
def replace_group(request: Request, group_id: str, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        owner = _attached(session, source)
        group = scim.replace_group(session, owner, group_id, body, if_match)
        document = scim.group_resource(session, group, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.patch("/Groups/{group_id}")
def patch_group(request: Request, group_id: str, raw: Body) -> Response:
    source = _source(request)
    body = decode(raw)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        owner = _attached(session, source)
        group = scim.patch_group(session, owner, group_id, body, if_match)
        document = scim.group_resource(session, group, _base(request))
    return _written(_projected(request, document))  # type: ignore[no-any-return]


@router.delete("/Groups/{group_id}", status_code=204)
def delete_group(request: Request, group_id: str) -> Response:
    source = _source(request)
    if_match = request.headers.get("if-match")
    with get_db(request).transaction() as session:
        scim.delete_group(session, _attached(session, source), group_id, if_match)
    return Response(status_code=204)


# --- Bulk -------------------------------------------------------------------------------------


@router.post("/Bulk")
def bulk(request: Request, raw: Body) -> Response:
    """RFC 7644 §3.7: the operations run one by one, each in its own transaction, through the
    same code as the single endpoints (``services.inbound_bulk``)."""
    source = _source(request)
    limit = _max_payload(request)
    if len(raw) > limit:
        raise PayloadTooLargeException(
            detail=f"a bulk request has at most {limit} bytes (maxPayloadSize)"
        )
    parsed = inbound_bulk.parse_request(decode(raw))
    outcomes = bulk_service.run(get_db(request), source.id, parsed, _base(request))
    document = {
        "schemas": [inbound_bulk.BULK_RESPONSE],
        "Operations": [_bulk_result(outcome) for outcome in outcomes],
    }
    return _scim_json(document)  # type: ignore[no-any-return]


def _bulk_result(outcome: bulk_service.Outcome) -> dict[str, Any]:
    """One operation's result: its method, bulkId, location, version and status (a string, as
    in RFC 7644's examples), and the SCIM error as ``response`` when it failed."""
    operation = outcome.operation
    result: dict[str, Any] = {}
    if operation.method is not None:
        result["method"] = operation.method
    if operation.bulk_id is not None:
        result["bulkId"] = operation.bulk_id
    if outcome.location is not None:
        result["location"] = outcome.location
    if outcome.version is not None:
        result["version"] = outcome.version
    status = outcome.status
    error = outcome.error
    if isinstance(error, inbound_bulk.Failure):
        result["response"] = error_document(error.status, error.detail, error.scim_type)
    elif error is not None:
        problem = _problem_of(error) or (500, "The operation failed unexpectedly.", None)
        status = problem[0]
        result["response"] = error_document(*problem)
    result["status"] = str(status)
    return result


# --- Anything else ----------------------------------------------------------------------------

#: Paths that exist, with the methods they answer; other methods get 405, other paths 404.
_KNOWN = [
    (re.compile(r"^(ServiceProviderConfig|Schemas|ResourceTypes)(/[^/]+)?$"), "GET"),
    (re.compile(r"^(Users|Groups)$"), "GET, POST"),
    (re.compile(r"^(Users|Groups)/\.search$"), "POST"),
    (re.compile(r"^(Users|Groups)/[^/]+$"), "GET, PUT, PATCH, DELETE"),
    (re.compile(r"^Bulk$"), "POST"),
]


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
def elsewhere(request: Request, rest: str) -> Response:
    for pattern, methods in _KNOWN:
        if pattern.match(rest):
            response: Response = error_response(405, f"{request.method} is not supported here")
            response.headers["Allow"] = methods
            return response
    _source(request)
    if rest == ".search" and request.method == "POST":
        detail = "Search one resource type at a time: /Users/.search or /Groups/.search"
        return error_response(501, detail)  # type: ignore[no-any-return]
    return error_response(404, "No such endpoint")  # type: ignore[no-any-return]
