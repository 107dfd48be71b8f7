"""Applications: list and create, the General tab (label, lifecycle, reconcile, plan preview)
and the Provisioning tab (connection with a test button, To-App switches, Headwater settings).

An app's name decides its kind, as in the API: an LDAP directory is named ``headwater_ldap``
and its Provisioning tab shows the LDAP connection form (``web.ldap_connection``)."""

from __future__ import annotations

import re
from dataclasses import fields
from enum import StrEnum
from typing import Any, get_type_hints

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from headwater.db import tables as t
from headwater.db.paging import checked_cursor
from headwater.domain.access import Kind
from headwater.domain.access import Permission as P
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import PreparedConnection
from headwater.domain.ldap import LDAP_APP_NAME, LDAP_SCHEME
from headwater.domain.settings import ProvisioningSettings, check_changes, public_name
from headwater.engine import connection_test, preview
from headwater.errors import HeadwaterError, InvalidRequest, NotFound
from headwater.services import apps, connections, tasks
from headwater.services.validation import require
from headwater.web import ldap_connection
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    Form,
    FormDep,
    allow,
    db_of,
    error_message,
    reading,
    render,
    runtime_of,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

PAGE = 50
#: The To-App switches (Okta's USER_PROVISIONING feature), as settings names and labels.
SWITCHES = (
    ("create_users", "Create users"),
    ("update_users", "Update user attributes"),
    ("deactivate_users", "Deactivate users"),
    ("reactivate_users", "Reactivate users"),
    ("group_push", "Group Push"),
)
SWITCH_NAMES = frozenset(name for name, _ in SWITCHES)
#: Secret fields of the connection form, per the service's scheme table.
SECRET_LABELS = {
    "token": "Bearer token",
    "username": "Username",
    "password": "Password",
    "token_url": "Token URL",
    "client_id": "Client id",
    "client_secret": "Client secret",
    "scope": "Scope",
}
SECRET_FIELDS = frozenset({"token", "password", "client_secret"})
#: The kinds of app the console creates (form value and label).
KINDS = (("scim", "SCIM 2.0 app"), ("ldap", "LDAP directory"))


# --- List and create ---------------------------------------------------------------------------


@router.get("/apps", dependencies=[allow(P.APPS_READ)])
def app_list(request: Request, admin: AdminDep, q: str = "", after: str | None = None) -> Response:
    with reading(request) as session:
        page = apps.list_apps(
            session,
            limit=PAGE,
            after=checked_cursor(after),
            q=q or None,
            only=admin.visible(Kind.APP),
        )
        connected = apps.connected_app_ids(session, [app.id for app in page])
    context: dict[str, Any] = {
        "section": "apps",
        "apps": list(page),
        "connected": connected,
        "next_cursor": page.next_cursor,
        "q": q,
        "error": None,
        "values": {},
        "kinds": KINDS,
    }
    return render(request, "apps/list.html", context)


def _app_name(form: Form) -> str:
    """The catalog name, which decides the kind: an LDAP directory's is fixed; another app's
    is as given, else a slug of the label (Okta generates one too)."""
    given = form.get("name")
    if form.get("kind") == "ldap":
        require(given in ("", LDAP_APP_NAME), f"name: an LDAP directory is named {LDAP_APP_NAME}")
        return LDAP_APP_NAME
    name = given or (re.sub(r"[^a-z0-9]+", "_", form.get("label").lower()).strip("_") or "app")
    require(name != LDAP_APP_NAME, f"name: {LDAP_APP_NAME} is for LDAP directories")
    return name


def is_ldap(app: t.App) -> bool:
    """Whether the app is an LDAP directory (its name decides, as in the connection service)."""
    return app.name == LDAP_APP_NAME


@router.post("/apps", dependencies=[allow(P.APPS_MANAGE)])
def create_app(request: Request, admin: AdminDep, form: FormDep) -> Response:
    url = form.get("url")
    try:
        spec = apps.AppSpec(
            label=form.get("label"),
            name=_app_name(form),
            sign_on_mode="BOOKMARK" if url else None,
            document={"settings": {"app": {"url": url}}} if url else {},
        )
        with db_of(request).transaction() as session:
            app = apps.create_app(session, admin.actor, spec, activate=True)
            app_id, label = app.id, app.label
    except HeadwaterError as exc:
        session_of(request).flash("error", error_message(exc))
        return see_other(f"{PREFIX}/apps")
    session_of(request).flash("ok", f"Created {label}. Set up its provisioning connection next.")
    return see_other(f"{PREFIX}/apps/{app_id}/provisioning")


# --- General -----------------------------------------------------------------------------------


@router.get("/apps/{app_id}", dependencies=[allow(P.APPS_READ, "app_id")])
def general(request: Request, admin: AdminDep, app_id: str) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        spoken = apps.capabilities_of(app)
        context = {"section": "apps", "tab": "general", "app": app, "spoken": spoken}
    return render(request, "apps/general.html", context)


@router.post("/apps/{app_id}", dependencies=[allow(P.APPS_WRITE, "app_id")])
def update_general(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    with db_of(request).transaction() as session:
        app = apps.get_app(session, app_id)
        spec = apps.AppSpec(
            label=form.get("label"),
            name=app.name,
            sign_on_mode=app.sign_on_mode,
            document=dict(app.document or {}),
        )
        apps.replace_app(session, admin.actor, app_id, spec)
    session_of(request).flash("ok", "Application saved.")
    return see_other(f"{PREFIX}/apps/{app_id}")


@router.post("/apps/{app_id}/lifecycle/delete", dependencies=[allow(P.APPS_MANAGE)])
def delete_app(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """Deleting takes the app out of every admin's scope: super admins only."""
    with db_of(request).transaction() as session:
        apps.delete_app(session, admin.actor, app_id)
    session_of(request).flash("ok", "Application deleted.")
    return see_other(f"{PREFIX}/apps")


@router.post("/apps/{app_id}/lifecycle/{verb}", dependencies=[allow(P.APPS_WRITE, "app_id")])
def app_lifecycle(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, verb: str
) -> Response:
    with db_of(request).transaction() as session:
        if verb == "activate":
            apps.activate_app(session, admin.actor, app_id)
        elif verb == "deactivate":
            apps.deactivate_app(session, admin.actor, app_id)
        else:
            raise NotFound()
    session_of(request).flash("ok", f"Application {verb}d.")
    return see_other(f"{PREFIX}/apps/{app_id}")


@router.post("/apps/{app_id}/reconcile", dependencies=[allow(P.APPS_WRITE, "app_id")])
def reconcile(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    with db_of(request).transaction() as session:
        queued = tasks.reconcile_app(session, admin.actor, app_id)
    session_of(request).flash("ok", f"Full reconcile requested: {queued} key(s) queued.")
    return see_other(f"{PREFIX}/apps/{app_id}")


@router.get("/apps/{app_id}/plan", dependencies=[allow(P.APPS_READ, "app_id")])
async def plan(request: Request, admin: AdminDep, app_id: str, observe: bool = False) -> Response:
    """What a reconcile would send now (a dry run through the engine's own planner)."""
    runtime = runtime_of(request)
    result = await preview.plan_app(runtime.database, runtime.connectors, app_id, observe=observe)

    def load() -> t.App:
        with reading(request) as session:
            return apps.get_app(session, app_id)

    app = await run_in_threadpool(load)
    context = {"section": "apps", "tab": "general", "app": app, "plan": result}
    return render(request, "apps/plan.html", context)


# --- Provisioning --------------------------------------------------------------------------------


def _setting_rows(settings: ProvisioningSettings) -> list[dict[str, Any]]:
    """Every Headwater setting as a form row: its kind decides the input."""
    kinds = get_type_hints(ProvisioningSettings)
    rows = []
    for item in fields(ProvisioningSettings):
        if item.name in SWITCH_NAMES:
            continue
        kind = kinds[item.name]
        value = getattr(settings, item.name)
        row: dict[str, Any] = {"name": item.name, "label": item.name.replace("_", " ").capitalize()}
        if kind is bool:
            row.update(kind="bool", value=value)
        elif isinstance(kind, type) and issubclass(kind, StrEnum):
            row.update(kind="enum", value=str(value), choices=[m.value for m in kind])
        else:
            row.update(kind="number" if kind in (int, float) else "text", value=value)
            row["step"] = "1" if kind is int else "any"
        rows.append(row)
    return rows


def _template_preview(session: Any, app_id: str, template: str) -> dict[str, Any]:
    """A typed username template tried on sample users (or why it cannot be)."""
    try:
        result = apps.preview_template(session, app_id, template[:2048])
    except HeadwaterError as exc:
        return {"template": template, "error": error_message(exc), "users": []}
    return {
        "template": template,
        "error": result.error.message if result.error else None,
        "users": result.users,
    }


def _provisioning_page(
    request: Request,
    app_id: str,
    template: str = "",
    entered: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The tab; an LDAP app's form shows ``entered`` (a form sent back), else what is stored."""
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        connection = session.get(t.AppConnection, app_id)
        settings = apps.settings_of(app)
        tried = _template_preview(session, app_id, template) if template else None
        ldap = entered if is_ldap(app) else None
        if is_ldap(app) and ldap is None:
            stored = connections.ldap_profile(session, runtime_of(request).secrets, app_id)
            base_url = connection.base_url if connection else ""
            ldap = ldap_connection.form_values(base_url, stored)
    context = {
        "section": "apps",
        "tab": "provisioning",
        "app": app,
        "connection": connection,
        "ldap": ldap,
        "ldap_fields": ldap_connection.FIELDS,
        "ldap_choices": ldap_connection.CHOICES,
        "ldap_timeouts": ldap_connection.TIMEOUTS,
        "schemes": [scheme for scheme in connections.AUTH_SCHEMES if scheme != LDAP_SCHEME],
        "secret_labels": SECRET_LABELS,
        "secret_fields": SECRET_FIELDS,
        "switches": [(name, label, getattr(settings, name)) for name, label in SWITCHES],
        "settings": _setting_rows(settings),
        "template_preview": tried,
        "user_name_template": template or settings.user_name_template,
    }
    return render(request, "apps/provisioning.html", context, status)


@router.get("/apps/{app_id}/provisioning", dependencies=[allow(P.APPS_READ, "app_id")])
def provisioning(request: Request, admin: AdminDep, app_id: str, template: str = "") -> Response:
    return _provisioning_page(request, app_id, template)


def _connection_spec(form: Form) -> connections.ConnectionSpec:
    """Blank secret fields keep the stored values (the service merges them)."""
    scheme = form.get("auth_scheme").upper()
    required, optional = connections.AUTH_SCHEMES.get(scheme, ((), ()))
    secret = {name: form.raw(name) for name in (*required, *optional) if form.raw(name)}
    return connections.ConnectionSpec(scheme, form.get("base_url") or None, secret)


@router.post("/apps/{app_id}/connection", dependencies=[allow(P.APPS_WRITE, "app_id")])
async def save_connection(
    request: Request, admin: AdminDep, form: FormDep, app_id: str
) -> Response:
    """``test`` only probes; ``save`` probes then stores enabled; ``save_disabled`` stores
    without probing. Nothing is stored when the probe fails. An LDAP form is shown again,
    as entered but for its password, after a test or a refusal: it is long to type again."""
    runtime = runtime_of(request)
    action = form.get("action")

    def ldap_app() -> bool:
        with runtime.database.read() as session:
            return is_ldap(apps.get_app(session, app_id))

    ldap = await run_in_threadpool(ldap_app)
    spec = ldap_connection.spec_from(form) if ldap else _connection_spec(form)

    def prepare() -> PreparedConnection:
        with runtime.database.read() as session:
            return connections.prepare_connection(session, runtime.secrets, app_id, spec)

    def store(prepared: PreparedConnection, enabled: bool) -> None:
        with runtime.database.transaction() as session:
            connections.save_connection(
                session, admin.actor, prepared, enabled=enabled, capabilities=announced
            )

    async def again(status: int) -> Response:
        entered = ldap_connection.submitted_values(form)
        return await run_in_threadpool(_provisioning_page, request, app_id, "", entered, status)

    back = see_other(f"{PREFIX}/apps/{app_id}/provisioning")
    announced = None
    try:
        prepared = await run_in_threadpool(prepare)
        if action in ("test", "save"):
            announced = await connection_test.probe(runtime.connectors, prepared)
    except InvalidRequest as exc:
        session_of(request).flash("error", error_message(exc))
        return await again(400) if ldap else back
    if action == "test":
        session_of(request).flash("ok", "Connection test succeeded. Save to use it.")
        return await again(200) if ldap else back
    await run_in_threadpool(store, prepared, action == "save")
    state = "saved and enabled" if action == "save" else "saved (disabled)"
    session_of(request).flash("ok", f"Connection {state}.")
    return back


@router.post("/apps/{app_id}/connection/{verb}", dependencies=[allow(P.APPS_WRITE, "app_id")])
async def connection_status(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, verb: str
) -> Response:
    """Enabling tests the stored connection first, as the API does."""
    if verb not in ("enable", "disable"):
        raise NotFound()
    runtime = runtime_of(request)

    def stored() -> PreparedConnection:
        with runtime.database.read() as session:
            return connections.stored_connection(session, runtime.secrets, app_id)

    def set_status(announced: Capabilities | None) -> None:
        with runtime.database.transaction() as session:
            enabled = verb == "enable"
            connections.set_connection_status(
                session, admin.actor, app_id, enabled=enabled, capabilities=announced
            )

    announced = None
    if verb == "enable":
        prepared = await run_in_threadpool(stored)
        announced = await connection_test.probe(runtime.connectors, prepared)
    await run_in_threadpool(set_status, announced)
    session_of(request).flash("ok", f"Connection {verb}d.")
    return see_other(f"{PREFIX}/apps/{app_id}/provisioning")


@router.post("/apps/{app_id}/features", dependencies=[allow(P.APPS_WRITE, "app_id")])
def save_features(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """Unchecked boxes are not submitted: every switch is set from the form."""
    changes = {name: form.checked(name) for name in SWITCH_NAMES}
    with db_of(request).transaction() as session:
        apps.update_settings(session, admin.actor, app_id, changes)
    session_of(request).flash("ok", "Provisioning switches saved.")
    return see_other(f"{PREFIX}/apps/{app_id}/provisioning")


def _settings_body(form: Form) -> dict[str, Any]:
    """Form text to typed values by setting name, validated like the API's body afterwards."""
    body: dict[str, Any] = {}
    for row in _setting_rows(ProvisioningSettings()):
        name = row["name"]
        text = form.get(name)
        try:
            if row["kind"] == "bool":
                body[name] = form.checked(name)
            elif row["kind"] == "number":
                body[name] = int(text) if row["step"] == "1" else float(text)
            else:
                body[name] = text
        except ValueError:
            cause = f"{public_name(name)}: must be a number"
            raise InvalidRequest("Api validation failed: " + cause, [cause]) from None
    return body


@router.post("/apps/{app_id}/settings", dependencies=[allow(P.APPS_WRITE, "app_id")])
def save_settings(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """Only what the form changes is applied: a dialect's switches shown at a named profile's
    values are not a request to go ``custom``."""
    changes = check_changes(_settings_body(form))
    with db_of(request).transaction() as session:
        current = apps.settings_of(apps.get_app(session, app_id))
        changes = {k: v for k, v in changes.items() if getattr(current, k) != v}
        apps.update_settings(session, admin.actor, app_id, changes)
    session_of(request).flash("ok", "Headwater settings saved.")
    return see_other(f"{PREFIX}/apps/{app_id}/provisioning")
