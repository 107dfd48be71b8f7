"""Okta's Apps API: apps, lifecycle, provisioning connection and features, group assignments.

Also ``GET /groups/{id}/apps`` and ``GET /users/{id}/appLinks``, which read assignments. Routes
only parse, call one use-case in one transaction and render Okta's JSON; the rules live in
``services`` (apps, connections, assignments). Connection routes are async because they may
test the connection over the network; their database work runs in the thread pool, never
across that call.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from headwater import clock
from headwater.api import wire
from headwater.api.body import openapi_body, parse
from headwater.api.deps import (
    ActorDep,
    AuthenticatedRoute,
    BodyDep,
    Caller,
    DbDep,
    RuntimeDep,
    allow,
    base_url,
    requires,
)
from headwater.api.pagination import clamp_limit, set_link_headers
from headwater.db import tables as t
from headwater.db.events import Actor
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import PreparedConnection
from headwater.domain.mapping import TemplatePreview
from headwater.domain.settings import ProvisioningSettings
from headwater.domain.states import ConnectionStatus
from headwater.engine import connection_test
from headwater.errors import InvalidRequest, NotFound
from headwater.runtime import Runtime
from headwater.services import app_users, apps, assignments, connections

__all__ = ["app_json", "router"]


router = APIRouter(tags=["Application"], route_class=AuthenticatedRoute)

USER_PROVISIONING = "USER_PROVISIONING"


# --- Request bodies ---------------------------------------------------------------------------


class AppBody(BaseModel):
    """Okta's app object; read-only fields (id, status, _links...) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    label: StrictStr
    name: StrictStr | None = None
    sign_on_mode: StrictStr | None = Field(default=None, alias="signOnMode")
    settings: dict[str, Any] | None = None
    visibility: dict[str, Any] | None = None
    accessibility: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    licensing: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    def spec(self) -> apps.AppSpec:
        document = {
            key: getattr(self, key) for key in apps.DOCUMENT_KEYS if getattr(self, key) is not None
        }
        return apps.AppSpec(self.label, self.name, self.sign_on_mode, document)


class ConnectionProfileBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    auth_scheme: StrictStr = Field(alias="authScheme")
    token: StrictStr | None = None
    username: StrictStr | None = None
    password: StrictStr | None = None
    client_id: StrictStr | None = Field(default=None, alias="clientId")
    client_secret: StrictStr | None = Field(default=None, alias="clientSecret")
    token_url: StrictStr | None = Field(default=None, alias="tokenUrl")
    scope: StrictStr | None = None
    client_auth: StrictStr | None = Field(default=None, alias="clientAuth")
    # LDAP apps (``authScheme: LDAP``, docs/ldap.md); ``password`` is the bind password.
    directory: StrictStr | None = None
    bind_dn: StrictStr | None = Field(default=None, alias="bindDn")
    start_tls: StrictBool | None = Field(default=None, alias="startTls")
    ca_pem: StrictStr | None = Field(default=None, alias="caCertificate")
    people_base: StrictStr | None = Field(default=None, alias="peopleBaseDn")
    groups_base: StrictStr | None = Field(default=None, alias="groupsBaseDn")
    disabled_base: StrictStr | None = Field(default=None, alias="disabledBaseDn")
    deactivation: StrictStr | None = None
    dn_template: StrictStr | None = Field(default=None, alias="userDnTemplate")
    match_attribute: StrictStr | None = Field(default=None, alias="matchAttribute")
    group_class: StrictStr | None = Field(default=None, alias="groupObjectClass")
    on_missing: StrictStr | None = Field(default=None, alias="onMissingEntry")
    connect_timeout: StrictFloat | StrictInt | None = Field(default=None, alias="connectTimeout")
    request_timeout: StrictFloat | StrictInt | None = Field(default=None, alias="requestTimeout")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class ConnectionBody(BaseModel):
    """``TOKEN``, ``BASIC``, ``NONE``, (Headwater extensions) OAuth 2.0 client credentials and
    ``LDAP`` for LDAP apps."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    base_url: StrictStr | None = Field(default=None, alias="baseUrl")
    profile: ConnectionProfileBody

    def spec(self) -> connections.ConnectionSpec:
        profile = self.profile
        scheme = profile.auth_scheme.strip().upper()
        required, optional = connections.AUTH_SCHEMES.get(scheme, ((), ()))
        names = (*required, *optional)
        values = {name: getattr(profile, name) for name in names}
        secret = {k: _text(v) for k, v in values.items() if v is not None and v != ""}
        return connections.ConnectionSpec(scheme, self.base_url, secret)


EnabledStatus = Literal["ENABLED", "DISABLED"]


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: EnabledStatus | None = None


class PasswordBody(StatusBody):
    seed: StrictStr | None = None
    change: StrictStr | None = None


class CreateCapabilities(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    lifecycle_create: StatusBody | None = Field(default=None, alias="lifecycleCreate")


class UpdateCapabilities(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    profile: StatusBody | None = None
    lifecycle_deactivate: StatusBody | None = Field(default=None, alias="lifecycleDeactivate")
    password: PasswordBody | None = None


class CapabilitiesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    create: CreateCapabilities | None = None
    update: UpdateCapabilities | None = None

    def changes(self) -> dict[str, Any]:
        """Switches as ProvisioningSettings changes; absent ones are left as they are."""
        create, update = self.create, self.update
        pairs = {
            "create_users": create.lifecycle_create if create else None,
            "update_users": update.profile if update else None,
            "deactivate_users": update.lifecycle_deactivate if update else None,
        }
        password = update.password if update else None
        if password is not None and password.status == ConnectionStatus.ENABLED:
            cause = "capabilities.update.password.status: password sync is not supported"
            raise InvalidRequest("Api validation failed: " + cause, [cause])
        return {
            name: value.status == ConnectionStatus.ENABLED
            for name, value in pairs.items()
            if value is not None and value.status is not None
        }


class FeatureBody(CapabilitiesBody):
    """Okta's feature object (``capabilities`` inside) or the bare capabilities the SDK sends."""

    capabilities: CapabilitiesBody | None = None

    def changes(self) -> dict[str, Any]:
        return (self.capabilities or CapabilitiesBody()).changes() | super().changes()


class GroupAssignmentBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    priority: StrictInt | None = None
    profile: dict[str, Any] | None = None


# --- Rendering --------------------------------------------------------------------------------


def _link(href: str, **extra: Any) -> dict[str, Any]:
    return {"href": href, **extra}


def _merged(defaults: dict[str, Any], given: Any) -> dict[str, Any]:
    """``given`` over ``defaults``, one level of nested dicts deep."""
    result = dict(defaults)
    for key, value in (given if isinstance(given, dict) else {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


def _credentials(document: dict[str, Any], settings: ProvisioningSettings) -> dict[str, Any]:
    stored = document.get("credentials") or {}
    template = {"type": "BUILT_IN", **(stored.get("userNameTemplate") or {})}
    template["template"] = settings.user_name_template
    return {"signing": {}, **stored, "userNameTemplate": template}


def _app_links(app: t.App, base: str) -> dict[str, Any]:
    url = f"{base}/api/v1/apps/{app.id}"
    lifecycle = "deactivate" if app.status == apps.ACTIVE else "activate"
    return {
        "self": _link(url),
        "users": _link(f"{url}/users"),
        "groups": _link(f"{url}/groups"),
        lifecycle: _link(f"{url}/lifecycle/{lifecycle}", hints={"allow": ["POST"]}),
        "appLinks": [
            _link(f"{base}/home/{app.name}/{app.id}/alnk", name=app.name, type="text/html")
        ],
    }


def app_json(app: t.App, base: str, *, connected: bool) -> dict[str, Any]:
    """Okta's application object."""
    document = app.document or {}
    settings = apps.settings_of(app)
    body: dict[str, Any] = {
        "id": app.id,
        "name": app.name,
        "label": app.label,
        "status": app.status,
        "created": clock.format_okta(app.created),
        "lastUpdated": clock.format_okta(app.last_updated),
        "signOnMode": app.sign_on_mode,
        "accessibility": _merged(
            {"selfService": False, "errorRedirectUrl": None, "loginRedirectUrl": None},
            document.get("accessibility"),
        ),
        "visibility": _merged(
            {"autoSubmitToolbar": False, "hide": {"iOS": False, "web": False}},
            document.get("visibility"),
        ),
        "features": apps.app_features(settings, connected),
        "settings": _merged({"app": {}}, document.get("settings")),
        "credentials": _credentials(document, settings),
        # Headwater extension: the dialect as spoken and what the app announced.
        "capabilities": apps.capabilities_of(app),
        "_links": _app_links(app, base),
    }
    for key in ("licensing", "profile"):
        if key in document:
            body[key] = document[key]
    return body


def _apps_json(session: Session, rows: list[t.App], base: str) -> list[dict[str, Any]]:
    connected = apps.connected_app_ids(session, [row.id for row in rows])
    return [app_json(row, base, connected=row.id in connected) for row in rows]


def _one_app_json(session: Session, app: t.App, base: str) -> dict[str, Any]:
    return _apps_json(session, [app], base)[0]


def connection_json(row: t.AppConnection, base: str) -> dict[str, Any]:
    """The connection without any secret: scheme, address and status only."""
    url = f"{base}/api/v1/apps/{row.app_id}/connections/default"
    lifecycle = "deactivate" if row.status == connections.ENABLED else "activate"
    return {
        "authScheme": row.auth_scheme,
        "baseUrl": row.base_url,
        "profile": {"authScheme": row.auth_scheme},
        "status": row.status,
        "_links": {
            "self": _link(url),
            lifecycle: _link(f"{url}/lifecycle/{lifecycle}", hints={"allow": ["POST"]}),
        },
    }


def _status(enabled: bool) -> str:
    return "ENABLED" if enabled else "DISABLED"


def feature_json(
    app_id: str, settings: ProvisioningSettings, connected: bool, base: str
) -> dict[str, Any]:
    return {
        "name": USER_PROVISIONING,
        "status": _status(connected),
        "description": "User provisioning settings from Headwater to the downstream app",
        "capabilities": {
            "create": {"lifecycleCreate": {"status": _status(settings.create_users)}},
            "update": {
                "profile": {"status": _status(settings.update_users)},
                "lifecycleDeactivate": {"status": _status(settings.deactivate_users)},
                "password": {"status": "DISABLED", "seed": "RANDOM", "change": "KEEP_EXISTING"},
            },
        },
        "_links": {
            "self": _link(f"{base}/api/v1/apps/{app_id}/features/{USER_PROVISIONING}"),
        },
    }


def group_assignment_json(row: t.AppGroupAssignment, base: str) -> dict[str, Any]:
    app_url = f"{base}/api/v1/apps/{row.app_id}"
    return {
        "id": row.group_id,
        "priority": row.priority,
        "lastUpdated": clock.format_okta(row.last_updated),
        "profile": row.profile or {},
        "_links": {
            "app": _link(app_url),
            "self": _link(f"{app_url}/groups/{row.group_id}"),
            "group": _link(f"{base}/api/v1/groups/{row.group_id}"),
        },
    }


def _launch_url(app: t.App, base: str) -> str:
    """Where the app link leads: the bookmark or sign-in URL when the app has one."""
    settings = (app.document or {}).get("settings") or {}
    for section, key in (("app", "url"), ("signOn", "loginUrl")):
        value = (settings.get(section) or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return f"{base}/home/{app.name}/{app.id}/alnk"


def app_link_json(user: t.User, app: t.App, order: int, base: str) -> dict[str, Any]:
    assignment_id = f"{app.id}_{user.id}"
    return {
        "id": assignment_id,
        "label": app.label,
        "linkUrl": _launch_url(app, base),
        "logoUrl": None,
        "appName": app.name,
        "appInstanceId": app.id,
        "appAssignmentId": assignment_id,
        "credentialsSetup": False,
        "hidden": False,
        "sortOrder": order,
    }


# --- Apps -------------------------------------------------------------------------------------


@router.post("/apps", openapi_extra=openapi_body(AppBody), dependencies=[allow(P.APPS_MANAGE)])
def create_app(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, activate: bool = True
) -> dict[str, Any]:
    spec = parse(AppBody, body).spec()
    with db.transaction() as session:
        app = apps.create_app(session, actor, spec, activate=activate)
        return _one_app_json(session, app, base_url(request))


@router.get("/apps")
def list_apps(
    request: Request,
    response: Response,
    db: DbDep,
    caller: Caller = Depends(requires(P.APPS_READ)),
    limit: int | None = None,
    after: str | None = None,
    q: str | None = None,
    filter_: str | None = Query(default=None, alias="filter"),
) -> list[dict[str, Any]]:
    size = clamp_limit(limit, 20, 200)
    filters = wire.parse_app_filter(filter_)
    with db.read() as session:
        page = apps.list_apps(
            session, limit=size, after=after, q=q, filters=filters, only=caller.visible(Kind.APP)
        )
        body = _apps_json(session, list(page), base_url(request))
    set_link_headers(request, response, page.next_cursor, size)
    return body


@router.get("/apps/{app_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_app(request: Request, db: DbDep, app_id: str) -> dict[str, Any]:
    with db.read() as session:
        return _one_app_json(session, apps.get_app(session, app_id), base_url(request))


@router.put(
    "/apps/{app_id}",
    openapi_extra=openapi_body(AppBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def replace_app(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str
) -> dict[str, Any]:
    spec = parse(AppBody, body).spec()
    with db.transaction() as session:
        app = apps.replace_app(session, actor, app_id, spec)
        return _one_app_json(session, app, base_url(request))


@router.delete("/apps/{app_id}", status_code=204, dependencies=[allow(P.APPS_MANAGE)])
def delete_app(db: DbDep, actor: ActorDep, app_id: str) -> Response:
    with db.transaction() as session:
        apps.delete_app(session, actor, app_id)
    return Response(status_code=204)


@router.post("/apps/{app_id}/lifecycle/activate", dependencies=[allow(P.APPS_WRITE, "app_id")])
def activate_app(db: DbDep, actor: ActorDep, app_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        apps.activate_app(session, actor, app_id)
    return {}


@router.post("/apps/{app_id}/lifecycle/deactivate", dependencies=[allow(P.APPS_WRITE, "app_id")])
def deactivate_app(db: DbDep, actor: ActorDep, app_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        apps.deactivate_app(session, actor, app_id)
    return {}


# --- Provisioning connection ------------------------------------------------------------------


def _prepare(runtime: Runtime, app_id: str, spec: connections.ConnectionSpec) -> PreparedConnection:
    with runtime.database.read() as session:
        return connections.prepare_connection(session, runtime.secrets, app_id, spec)


def _stored(runtime: Runtime, app_id: str) -> PreparedConnection:
    with runtime.database.read() as session:
        return connections.stored_connection(session, runtime.secrets, app_id)


def _save(
    runtime: Runtime,
    actor: Actor,
    prepared: PreparedConnection,
    enabled: bool,
    base: str,
    announced: Capabilities | None = None,
) -> dict[str, Any]:
    with runtime.database.transaction() as session:
        row = connections.save_connection(
            session, actor, prepared, enabled=enabled, capabilities=announced
        )
        return connection_json(row, base)


def _set_status(
    runtime: Runtime,
    actor: Actor,
    app_id: str,
    enabled: bool,
    base: str,
    announced: Capabilities | None = None,
) -> Any:
    with runtime.database.transaction() as session:
        row = connections.set_connection_status(
            session, actor, app_id, enabled=enabled, capabilities=announced
        )
        return connection_json(row, base)


@router.post(
    "/apps/{app_id}/connections/default",
    openapi_extra=openapi_body(ConnectionBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
async def set_connection(
    request: Request,
    runtime: RuntimeDep,
    actor: ActorDep,
    body: BodyDep,
    app_id: str,
    activate: bool = True,
) -> dict[str, Any]:
    """Store the connection; with ``activate`` it is tested first and nothing is stored if
    the test fails."""
    spec = parse(ConnectionBody, body).spec()
    prepared = await run_in_threadpool(_prepare, runtime, app_id, spec)
    announced = None
    if activate:
        announced = await connection_test.probe(runtime.connectors, prepared)
    base = base_url(request)
    result: dict[str, Any] = await run_in_threadpool(
        _save, runtime, actor, prepared, activate, base, announced
    )
    return result


@router.get("/apps/{app_id}/connections/default", dependencies=[allow(P.APPS_READ, "app_id")])
def get_connection(request: Request, db: DbDep, app_id: str) -> dict[str, Any]:
    with db.read() as session:
        return connection_json(connections.connection(session, app_id), base_url(request))


@router.post(
    "/apps/{app_id}/connections/default/lifecycle/activate",
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
async def activate_connection(
    request: Request, runtime: RuntimeDep, actor: ActorDep, app_id: str
) -> dict[str, Any]:
    """Test the stored connection; ENABLED only when the downstream accepts it."""
    prepared = await run_in_threadpool(_stored, runtime, app_id)
    announced = await connection_test.probe(runtime.connectors, prepared)
    base = base_url(request)
    result: dict[str, Any] = await run_in_threadpool(
        _set_status, runtime, actor, app_id, True, base, announced
    )
    return result


@router.post(
    "/apps/{app_id}/connections/default/lifecycle/deactivate",
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def deactivate_connection(
    request: Request, runtime: RuntimeDep, actor: ActorDep, app_id: str
) -> dict[str, Any]:
    result: dict[str, Any] = _set_status(runtime, actor, app_id, False, base_url(request))
    return result


# --- Features and provisioning settings -------------------------------------------------------


def _feature_of(session: Session, app_id: str) -> tuple[ProvisioningSettings, bool]:
    app = apps.get_app(session, app_id)
    return apps.settings_of(app), bool(apps.connected_app_ids(session, [app_id]))


def _check_feature(name: str) -> None:
    if name != USER_PROVISIONING:
        raise NotFound(f"Not found: Resource not found: {name} (AppFeature)")


@router.get("/apps/{app_id}/features", dependencies=[allow(P.APPS_READ, "app_id")])
def list_features(request: Request, db: DbDep, app_id: str) -> list[dict[str, Any]]:
    with db.read() as session:
        settings, connected = _feature_of(session, app_id)
    return [feature_json(app_id, settings, connected, base_url(request))]


@router.get("/apps/{app_id}/features/{name}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_feature(request: Request, db: DbDep, app_id: str, name: str) -> dict[str, Any]:
    with db.read() as session:
        settings, connected = _feature_of(session, app_id)
    _check_feature(name)
    return feature_json(app_id, settings, connected, base_url(request))


@router.put(
    "/apps/{app_id}/features/{name}",
    openapi_extra=openapi_body(FeatureBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def update_feature(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, name: str
) -> dict[str, Any]:
    _check_feature(name)
    changes = parse(FeatureBody, body).changes()
    with db.transaction() as session:
        apps.update_settings(session, actor, app_id, changes)
        settings, connected = _feature_of(session, app_id)
    return feature_json(app_id, settings, connected, base_url(request))


@router.get(
    "/apps/{app_id}/provisioning/settings",
    tags=["Headwater extension"],
    dependencies=[allow(P.APPS_READ, "app_id")],
)
def get_provisioning_settings(db: DbDep, app_id: str) -> dict[str, Any]:
    """Every provisioning setting of the app (Headwater extension)."""
    with db.read() as session:
        return wire.settings_json(apps.settings_of(apps.get_app(session, app_id)))


@router.put(
    "/apps/{app_id}/provisioning/settings",
    tags=["Headwater extension"],
    dependencies=[allow(P.APPS_WRITE, "app_id")],
    openapi_extra=wire.settings_body_schema(),
)
def update_provisioning_settings(
    db: DbDep, actor: ActorDep, body: BodyDep, app_id: str
) -> dict[str, Any]:
    """Change any subset of the settings; omitted ones keep their values (Headwater extension)."""
    changes = wire.parse_settings_changes(body if body is not None else {})
    with db.transaction() as session:
        return wire.settings_json(apps.update_settings(session, actor, app_id, changes))


class TemplatePreviewBody(BaseModel):
    """A username template to try (``${source.login}``) and, optionally, the users to try it
    on."""

    model_config = ConfigDict(extra="forbid")
    template: StrictStr = Field(max_length=4096)
    userIds: list[StrictStr] = Field(default_factory=list, max_length=25)
    limit: StrictInt | None = Field(default=None, ge=1, le=25)


def template_preview_json(preview: TemplatePreview) -> dict[str, Any]:
    """The result per user, or the problem (with its line and column) when the template is
    refused."""
    error = preview.error
    return {
        "template": preview.template,
        "valid": error is None,
        "error": None
        if error is None
        else {
            "message": error.message,
            "problem": error.problem,
            "hint": error.hint,
            "line": error.position.line if error.position else None,
            "column": error.position.column if error.position else None,
        },
        "users": [
            {"id": u.user_id, "login": u.login, "userName": u.user_name, "error": u.error}
            for u in preview.users
        ],
    }


@router.post(
    "/apps/{app_id}/userNameTemplate/preview",
    tags=["Headwater extension"],
    openapi_extra=openapi_body(TemplatePreviewBody),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def preview_user_name_template(db: DbDep, body: BodyDep, app_id: str) -> dict[str, Any]:
    """What a username template would give a sample of users, before it is saved; nothing is
    written (Headwater extension)."""
    data = parse(TemplatePreviewBody, body)
    with db.read() as session:
        preview = apps.preview_template(
            session,
            app_id,
            data.template,
            user_ids=data.userIds,
            limit=data.limit or apps.PREVIEW_USERS[0],
        )
    return template_preview_json(preview)


# --- Group assignments ------------------------------------------------------------------------


@router.put(
    "/apps/{app_id}/groups/{group_id}",
    openapi_extra=openapi_body(GroupAssignmentBody, required=False),
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def assign_group(
    request: Request, db: DbDep, actor: ActorDep, body: BodyDep, app_id: str, group_id: str
) -> dict[str, Any]:
    parsed = parse(GroupAssignmentBody, body, required=False)
    spec = assignments.GroupAssignmentSpec(parsed.priority, parsed.profile)
    with db.transaction() as session:
        row = assignments.assign_group(session, actor, app_id, group_id, spec)
        return group_assignment_json(row, base_url(request))


@router.get("/apps/{app_id}/groups/{group_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def get_group_assignment(request: Request, db: DbDep, app_id: str, group_id: str) -> dict[str, Any]:
    with db.read() as session:
        row = assignments.group_assignment(session, app_id, group_id)
        return group_assignment_json(row, base_url(request))


@router.get("/apps/{app_id}/groups", dependencies=[allow(P.APPS_READ, "app_id")])
def list_group_assignments(
    request: Request,
    response: Response,
    db: DbDep,
    app_id: str,
    limit: int | None = None,
    after: str | None = None,
    q: str | None = None,
) -> list[dict[str, Any]]:
    size = clamp_limit(limit, 20, 200)
    base = base_url(request)
    with db.read() as session:
        page = assignments.list_group_assignments(session, app_id, limit=size, after=after, q=q)
        body = [group_assignment_json(row, base) for row in page]
    set_link_headers(request, response, page.next_cursor, size)
    return body


@router.delete(
    "/apps/{app_id}/groups/{group_id}",
    status_code=204,
    dependencies=[allow(P.APPS_WRITE, "app_id")],
)
def unassign_group(db: DbDep, actor: ActorDep, app_id: str, group_id: str) -> Response:
    with db.transaction() as session:
        assignments.unassign_group(session, actor, app_id, group_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/apps", tags=["Group"])
def list_group_apps(
    request: Request,
    response: Response,
    db: DbDep,
    group_id: str,
    caller: Caller = Depends(requires(P.APPS_READ)),
    limit: int | None = None,
    after: str | None = None,
) -> list[dict[str, Any]]:
    size = clamp_limit(limit, 20, 200)
    with db.read() as session:
        page = assignments.apps_of_group(
            session, group_id, limit=size, after=after, only=caller.visible(Kind.APP)
        )
        body = _apps_json(session, list(page), base_url(request))
    set_link_headers(request, response, page.next_cursor, size)
    return body


@router.get("/users/{user_id}/appLinks", tags=["User"])
def list_app_links(
    request: Request, db: DbDep, user_id: str, caller: Caller = Depends(requires(P.APPS_READ))
) -> list[dict[str, Any]]:
    base = base_url(request)
    with db.read() as session:
        user, rows = app_users.app_links(session, user_id, only=caller.visible(Kind.APP))
        return [app_link_json(user, app, order, base) for order, app in enumerate(rows)]
