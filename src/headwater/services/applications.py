"""Apps, their provisioning connection and settings, and who is assigned to them.

Every use-case runs in the caller's unit of work: it validates everything first, then writes,
records a system log event and enqueues reconcile keys in the same transaction. A refused
request therefore changes nothing, and a committed change is never missed by the engine.
Connection secrets are sealed before they reach a row and never leave this module in clear.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, get_type_hints
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import Select, and_, func, or_, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.api.pagination import Page, fetch_page
from headwater.connectors.errors import DownstreamError
from headwater.crypto import SecretBox
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.desired import DirectGrant, GroupGrant, resolve_profile
from headwater.domain.mapping import MappingError, render_user_name
from headwater.domain.settings import ProvisioningSettings
from headwater.engine.connectors import ConnectionInfo, ConnectorFactory
from headwater.errors import AlreadyAssigned, Conflict, HeadwaterError, InvalidRequest, NotFound

__all__ = [
    "AUTH_SCHEMES",
    "AppSpec",
    "AppUserView",
    "ConnectionSpec",
    "GroupAssignmentSpec",
    "InactiveUser",
    "PreparedConnection",
    "UserAssignmentSpec",
    "activate_app",
    "app_features",
    "app_links",
    "app_user",
    "apps_of_group",
    "assign_group",
    "assign_user",
    "check_template",
    "connected_app_ids",
    "connection",
    "create_app",
    "deactivate_app",
    "delete_app",
    "get_app",
    "group_assignment",
    "list_app_users",
    "list_apps",
    "list_group_assignments",
    "parse_app_filter",
    "parse_settings_changes",
    "prepare_connection",
    "probe_connection",
    "replace_app",
    "save_connection",
    "set_connection_status",
    "settings_json",
    "settings_of",
    "stored_connection",
    "unassign_group",
    "unassign_user",
    "update_app_user",
    "update_settings",
]

log = logging.getLogger(__name__)


class InactiveUser(HeadwaterError):
    """Cannot assign an application to an inactive user"""

    status = 400
    code = "E0000117"


ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"
ENABLED = "ENABLED"
DISABLED = "DISABLED"

SIGN_ON_MODES = frozenset(
    {
        "AUTO_LOGIN",
        "BASIC_AUTH",
        "BOOKMARK",
        "BROWSER_PLUGIN",
        "OPENID_CONNECT",
        "SAML_1_1",
        "SAML_2_0",
        "SECURE_PASSWORD_STORE",
        "WS_FEDERATION",
    }
)
#: Okta's app document fields kept verbatim in ``App.document``.
DOCUMENT_KEYS = ("settings", "visibility", "accessibility", "credentials", "licensing", "profile")
MAX_NAME = 255
MIN_PRIORITY, MAX_PRIORITY = 0, 100


def _require(condition: bool, cause: str) -> None:
    if not condition:
        raise InvalidRequest("Api validation failed: " + cause, [cause])


def _url_parts(value: str) -> SplitResult | None:
    """``urlsplit`` that answers None for what it cannot parse (e.g. a broken IPv6 host)."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        return None
    return parts


def _is_web_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2048:
        return False
    parts = _url_parts(value)
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _now() -> datetime:
    return clock.utcnow()


def _insert(session: Session, row: object, conflict: HeadwaterError | None = None) -> None:
    """Insert now, in a savepoint: on PostgreSQL two requests can race to the same key, and
    the loser gets a 409 instead of a server error."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise (conflict or Conflict("The resource was changed concurrently; retry")) from exc


# --- Apps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppSpec:
    """An app as the client sent it (Okta's JSON, already shape-checked by the API layer)."""

    label: str
    name: str | None = None
    sign_on_mode: str | None = None
    document: dict[str, Any] = field(default_factory=dict)


def _app_target(app: t.App) -> Target:
    return Target(app.id, "AppInstance", app.name, app.label)


def get_app(session: Session, app_id: str) -> t.App:
    app = session.get(t.App, app_id)
    if app is None:
        raise NotFound(f"Not found: Resource not found: {app_id} (AppInstance)")
    return app


def settings_of(app: t.App) -> ProvisioningSettings:
    return ProvisioningSettings.from_json(app.provisioning)


def _default_name(spec: AppSpec) -> str | None:
    """Okta generates names for custom apps; a slug of the label is close enough."""
    if spec.sign_on_mode == "BOOKMARK":
        return "bookmark"
    if spec.sign_on_mode == "AUTO_LOGIN":
        slug = re.sub(r"[^a-z0-9]+", "", spec.label.lower())[:40] or "app"
        return f"headwater_{slug}_1"
    return None


def _dict_at(document: dict[str, Any], *path: str) -> dict[str, Any]:
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _check_sign_on(spec: AppSpec) -> None:
    """The settings each sign-on mode cannot work (or be parsed by Okta's SDKs) without."""
    mode = spec.sign_on_mode
    _require(mode is None or mode in SIGN_ON_MODES, f"signOnMode: unsupported value {mode!r}")
    if mode == "BOOKMARK":
        url = _dict_at(spec.document, "settings", "app").get("url")
        _require(_is_web_url(url), "settings.app.url: an http(s) URL is required")
    if mode == "AUTO_LOGIN":
        url = _dict_at(spec.document, "settings", "signOn").get("loginUrl")
        _require(_is_web_url(url), "settings.signOn.loginUrl: an http(s) URL is required")


def _template_from(document: dict[str, Any]) -> str | None:
    template = _dict_at(document, "credentials", "userNameTemplate").get("template")
    if template is None:
        return None
    _require(isinstance(template, str), "credentials.userNameTemplate.template: must be a string")
    return str(template)


class _AnySource(dict[str, Any]):
    """A profile where every attribute has a value, to check a template's syntax alone."""

    def get(self, key: str, default: Any = None) -> Any:
        return "sample"


def check_template(template: str, where: str) -> None:
    _require(bool(template.strip()) and len(template) <= 1024, f"{where}: must not be empty")
    try:
        rendered = render_user_name(template, _AnySource())
    except MappingError as exc:
        raise InvalidRequest("Api validation failed: " + where, [f"{where}: {exc}"]) from exc
    _require("${" not in rendered, f"{where}: unterminated expression")


def _document_without_template(document: dict[str, Any]) -> dict[str, Any]:
    """The stored document: the template lives in the provisioning settings instead."""
    stored = {key: document[key] for key in DOCUMENT_KEYS if document.get(key) is not None}
    credentials = dict(stored.get("credentials") or {})
    template = dict(credentials.get("userNameTemplate") or {})
    template.pop("template", None)
    if template:
        credentials["userNameTemplate"] = template
    else:
        credentials.pop("userNameTemplate", None)
    if credentials:
        stored["credentials"] = credentials
    else:
        stored.pop("credentials", None)
    return stored


def _validated(spec: AppSpec) -> tuple[str, str, str | None]:
    """(name, label, template) after checking the spec."""
    label = spec.label.strip()
    _require(0 < len(label) <= MAX_NAME, "label: must be 1 to 255 characters")
    _check_sign_on(spec)
    name = (spec.name or "").strip() or _default_name(spec)
    _require(name is not None, "name: required for this signOnMode")
    assert name is not None
    _require(len(name) <= MAX_NAME, "name: must be at most 255 characters")
    template = _template_from(spec.document)
    if template is not None:
        check_template(template, "credentials.userNameTemplate.template")
    return name, label, template


def create_app(session: Session, actor: Actor, spec: AppSpec, *, activate: bool) -> t.App:
    name, label, template = _validated(spec)
    settings = ProvisioningSettings()
    if template is not None:
        settings = replace(settings, user_name_template=template)
    now = _now()
    app = t.App(
        id=ids.new_id("0oa"),
        name=name,
        label=label,
        status=ACTIVE if activate else INACTIVE,
        sign_on_mode=spec.sign_on_mode,
        document=_document_without_template(spec.document),
        provisioning=settings.to_json(),
        probe_interval=0.0,
        created=now,
        last_updated=now,
    )
    session.add(app)
    events.record(
        session,
        "application.lifecycle.create",
        f"Add application {label}",
        actor=actor,
        targets=[_app_target(app)],
    )
    if activate:
        session.flush()
        _record_lifecycle(session, actor, app, "activate")
        outbox.enqueue_app(session, app.id)
    return app


def replace_app(session: Session, actor: Actor, app_id: str, spec: AppSpec) -> t.App:
    """Okta's PUT: the document is replaced; the name (catalog key) cannot change."""
    app = get_app(session, app_id)
    name, label, template = _validated(spec if spec.name else replace(spec, name=app.name))
    _require(name == app.name, "name: cannot be changed")
    settings = settings_of(app)
    template_changed = template is not None and template != settings.user_name_template
    if template is not None and template_changed:
        app.provisioning = replace(settings, user_name_template=template).to_json()
    app.label = label
    app.sign_on_mode = spec.sign_on_mode
    app.document = _document_without_template(spec.document)
    app.last_updated = _now()
    events.record(
        session,
        "application.lifecycle.update",
        f"Update application {label}",
        actor=actor,
        targets=[_app_target(app)],
    )
    if template_changed:
        session.flush()
        outbox.enqueue_app(session, app.id)
    return app


def _record_lifecycle(session: Session, actor: Actor, app: t.App, verb: str) -> None:
    events.record(
        session,
        f"application.lifecycle.{verb}",
        f"{verb.capitalize()} application {app.label}",
        actor=actor,
        targets=[_app_target(app)],
    )


def activate_app(session: Session, actor: Actor, app_id: str) -> t.App:
    """Activation releases the app's held work: every key is enqueued again."""
    app = get_app(session, app_id)
    if app.status != ACTIVE:
        app.status = ACTIVE
        app.last_updated = _now()
        _record_lifecycle(session, actor, app, "activate")
        session.flush()
        outbox.enqueue_app(session, app.id)
    return app


def deactivate_app(session: Session, actor: Actor, app_id: str) -> t.App:
    """The engine skips INACTIVE apps, so deactivating is only a status change."""
    app = get_app(session, app_id)
    if app.status != INACTIVE:
        app.status = INACTIVE
        app.last_updated = _now()
        _record_lifecycle(session, actor, app, "deactivate")
    return app


def delete_app(session: Session, actor: Actor, app_id: str) -> None:
    app = get_app(session, app_id)
    if app.status != INACTIVE:
        raise InvalidRequest(
            "App must be deactivated before deletion",
            ["status: App must be deactivated before deletion"],
        )
    _record_lifecycle(session, actor, app, "delete")
    session.delete(app)


_FILTER_TERM = re.compile(r'^\s*(status|name)\s+eq\s+"([^"]*)"\s*$', re.IGNORECASE)


def parse_app_filter(text: str | None) -> dict[str, str]:
    """Okta's ``filter`` for apps: ``status eq "ACTIVE"`` and/or ``name eq "x"``."""
    if not text or not text.strip():
        return {}
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER_TERM.match(part)
        if match is None:
            raise InvalidRequest(
                "Invalid filter", [f"filter: unsupported expression {part.strip()!r}"]
            )
        terms[match.group(1).lower()] = match.group(2)
    return terms


def _prefix_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def list_apps(
    session: Session,
    *,
    limit: int,
    after: str | None,
    q: str | None = None,
    filters: dict[str, str] | None = None,
) -> Page[t.App]:
    query = select(t.App)
    if q:
        pattern = _prefix_pattern(q)
        query = query.where(
            or_(
                func.lower(t.App.label).like(pattern, escape="\\"),
                func.lower(t.App.name).like(pattern, escape="\\"),
            )
        )
    filters = filters or {}
    if "status" in filters:
        query = query.where(t.App.status == filters["status"])
    if "name" in filters:
        query = query.where(t.App.name == filters["name"])
    return fetch_page(session, query, t.App.id, limit=limit, after=after)


def connected_app_ids(session: Session, app_ids: Iterable[str]) -> set[str]:
    """Which of these apps have a provisioning connection (one query for a whole page)."""
    wanted = list(app_ids)
    if not wanted:
        return set()
    rows = session.execute(
        select(t.AppConnection.app_id).where(t.AppConnection.app_id.in_(wanted))
    ).scalars()
    return set(rows)


def app_features(settings: ProvisioningSettings, connected: bool) -> list[str]:
    """Okta's read-only ``features``: provisioning switches count only with a connection."""
    if not connected:
        return []
    switches = [
        ("PUSH_NEW_USERS", settings.create_users),
        ("PUSH_PROFILE_UPDATES", settings.update_users),
        ("PUSH_USER_DEACTIVATION", settings.deactivate_users),
        ("REACTIVATE_USERS", settings.reactivate_users),
        ("GROUP_PUSH", settings.group_push),
    ]
    return ["SCIM_PROVISIONING", *(name for name, on in switches if on)]


# --- Provisioning settings --------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: Inclusive bounds for numeric settings (None: unbounded on that side).
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "membership_batch_size": (1, 1000),
    "max_concurrency": (1, None),
    "rate_limit_per_second": (0, None),
    "mass_change_threshold": (0, 1),
    "full_reconcile_interval": (0, None),
}
#: Settings that only shape throughput: changing them alters no desired state.
_TUNING_ONLY = frozenset(
    {
        "max_concurrency",
        "rate_limit_per_second",
        "full_reconcile_interval",
        "membership_batch_size",
        "update_method",
    }
)


def settings_json(settings: ProvisioningSettings) -> dict[str, Any]:
    """Every setting under its camelCase API name."""
    return {_camel(key): value for key, value in settings.to_json().items()}


def _coerce_setting(name: str, kind: Any, value: Any) -> Any:
    """Check one value against the setting's type and bounds (strictly: no coercion)."""
    where = _camel(name)
    if kind is bool:
        _require(isinstance(value, bool), f"{where}: must be true or false")
        return value
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        allowed = [member.value for member in kind]
        _require(value in allowed, f"{where}: must be one of {', '.join(allowed)}")
        return kind(value)
    if kind is str:
        _require(isinstance(value, str) and bool(value.strip()), f"{where}: must be a string")
        return value
    numeric = (int,) if kind is int else (int, float)
    ok = isinstance(value, numeric) and not isinstance(value, bool) and math.isfinite(value)
    _require(ok, f"{where}: must be {'an integer' if kind is int else 'a number'}")
    low, high = _BOUNDS.get(name, (None, None))
    _require(low is None or value >= low, f"{where}: must be at least {low}")
    _require(high is None or value <= high, f"{where}: must be at most {high}")
    return value


def parse_settings_changes(data: Any) -> dict[str, Any]:
    """The Headwater settings body (camelCase, any subset) as validated dataclass changes."""
    _require(isinstance(data, dict), "body: must be a JSON object")
    kinds = get_type_hints(ProvisioningSettings)
    by_api_name = {_camel(f.name): f.name for f in fields(ProvisioningSettings)}
    unknown = sorted(set(data) - set(by_api_name))
    _require(not unknown, f"{', '.join(unknown)}: unknown setting")
    changes = {
        by_api_name[key]: _coerce_setting(by_api_name[key], kinds[by_api_name[key]], value)
        for key, value in data.items()
    }
    if "user_name_template" in changes:
        check_template(changes["user_name_template"], "userNameTemplate")
    return changes


def update_settings(
    session: Session, actor: Actor, app_id: str, changes: dict[str, Any]
) -> ProvisioningSettings:
    """Apply validated changes; re-reconcile the app when the desired state may differ."""
    app = get_app(session, app_id)
    before = settings_of(app)
    after = replace(before, **changes)
    changed = sorted(n for n in changes if getattr(before, n) != getattr(after, n))
    if not changed:
        return after
    app.provisioning = after.to_json()
    app.last_updated = _now()
    events.record(
        session,
        "application.lifecycle.update",
        f"Update provisioning settings of {app.label}",
        actor=actor,
        targets=[_app_target(app)],
        debug={"changedSettings": [_camel(n) for n in changed]},
    )
    if set(changed) - _TUNING_ONLY:
        session.flush()
        outbox.enqueue_app(session, app.id)
    return after


# --- Provisioning connection ------------------------------------------------------------------

#: Secret fields each scheme needs (as ``connectors.auth.build_auth`` reads them), then optional.
AUTH_SCHEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "TOKEN": (("token",), ()),
    "BASIC": (("username", "password"), ()),
    "OAUTH2": (("token_url", "client_id", "client_secret"), ("scope", "client_auth")),
    "NONE": ((), ()),
}
#: API (camelCase) names of the secret fields, for error messages.
SECRET_FIELD_NAMES = {
    "token": "token",
    "username": "username",
    "password": "password",
    "token_url": "tokenUrl",
    "client_id": "clientId",
    "client_secret": "clientSecret",
    "scope": "scope",
    "client_auth": "clientAuth",
}


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection as sent; ``secret`` values are credentials and stay out of repr."""

    auth_scheme: str
    base_url: str | None = None
    secret: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PreparedConnection:
    """A validated connection, sealed, not yet stored (it may be tested first)."""

    info: ConnectionInfo
    settings: ProvisioningSettings
    #: Plain secret values, only to scrub them from any message a downstream sends back.
    hidden: tuple[str, ...] = field(repr=False)


def _check_base_url(base_url: str | None) -> str:
    _require(base_url is not None, "baseUrl: required")
    assert base_url is not None
    parts = _url_parts(base_url)
    _require(parts is not None, "baseUrl: not a valid URL")
    assert parts is not None
    _require(parts.scheme in ("http", "https"), "baseUrl: must be an http or https URL")
    _require(bool(parts.hostname), "baseUrl: must name a host")
    _require(not parts.username and not parts.password, "baseUrl: must not carry credentials")
    _require(len(base_url) <= 2048, "baseUrl: must be at most 2048 characters")
    return base_url.strip()


def _merged_secret(
    spec: ConnectionSpec, existing: t.AppConnection | None, box: SecretBox
) -> dict[str, str]:
    """The new secret; fields left out keep their stored values when the scheme is unchanged."""
    required, optional = AUTH_SCHEMES[spec.auth_scheme]
    kept: dict[str, Any] = {}
    if existing is not None and existing.auth_scheme == spec.auth_scheme:
        kept = box.open(existing.secret_encrypted) if existing.secret_encrypted else {}
    secret = {k: str(v) for k, v in {**kept, **spec.secret}.items() if k in required + optional}
    missing = [SECRET_FIELD_NAMES[k] for k in required if not secret.get(k)]
    _require(not missing, f"profile.{', profile.'.join(missing)}: required")
    if spec.auth_scheme == "OAUTH2":
        _require(_is_web_url(secret["token_url"]), "profile.tokenUrl: must be an http(s) URL")
        auth_style = secret.get("client_auth", "basic")
        _require(auth_style in ("basic", "post"), "profile.clientAuth: must be basic or post")
    return secret


def prepare_connection(
    session: Session, box: SecretBox, app_id: str, spec: ConnectionSpec
) -> PreparedConnection:
    """Validate and seal a new connection for ``app_id`` without storing it."""
    app = get_app(session, app_id)
    _require(spec.auth_scheme in AUTH_SCHEMES, "profile.authScheme: unsupported value")
    existing = session.get(t.AppConnection, app_id)
    base_url = spec.base_url if spec.base_url is not None or existing is None else existing.base_url
    base_url = _check_base_url(base_url)
    secret = _merged_secret(spec, existing, box)
    sealed = box.seal(secret) if secret else None
    info = ConnectionInfo(app.id, base_url, spec.auth_scheme, sealed)
    return PreparedConnection(info, settings_of(app), tuple(secret.values()))


def stored_connection(session: Session, box: SecretBox, app_id: str) -> PreparedConnection:
    """The app's stored connection, ready to test."""
    app = get_app(session, app_id)
    row = connection(session, app_id)
    info = ConnectionInfo(app.id, row.base_url, row.auth_scheme, row.secret_encrypted)
    hidden: tuple[str, ...] = ()
    if row.secret_encrypted is not None:
        # An undecryptable secret is reported by the probe itself.
        with contextlib.suppress(ValueError):
            hidden = tuple(str(v) for v in box.open(row.secret_encrypted).values())
    return PreparedConnection(info, settings_of(app), hidden)


def _scrub(message: str, hidden: Sequence[str]) -> str:
    """Defence in depth: a downstream could echo a credential in its error text."""
    for value in hidden:
        if len(value) >= 4:
            message = message.replace(value, "***")
    return message


async def probe_connection(connectors: ConnectorFactory, prepared: PreparedConnection) -> None:
    """Reach the app with these credentials; InvalidRequest with the cause when it fails."""
    try:
        connector = connectors.build(prepared.info, prepared.settings)
    except ValueError as exc:
        raise InvalidRequest(
            "Connection test failed: " + _scrub(str(exc), prepared.hidden)
        ) from None
    try:
        await connector.test_connection()
    except DownstreamError as exc:
        reason = _scrub(exc.message, prepared.hidden)
        log.warning("connection test failed for app %s: %s", prepared.info.app_id, reason)
        raise InvalidRequest("Connection test failed: " + reason, [reason]) from None
    finally:
        await connector.aclose()


def connection(session: Session, app_id: str) -> t.AppConnection:
    get_app(session, app_id)
    row = session.get(t.AppConnection, app_id)
    if row is None:
        raise NotFound(f"Not found: Resource not found: {app_id} (ProvisioningConnection)")
    return row


def save_connection(
    session: Session, actor: Actor, prepared: PreparedConnection, *, enabled: bool
) -> t.AppConnection:
    """Store a prepared connection (replacing any previous one) and reconcile the app."""
    info = prepared.info
    app = get_app(session, info.app_id)
    now = _now()
    values = {
        "base_url": info.base_url,
        "auth_scheme": info.auth_scheme,
        "secret_encrypted": info.secret_encrypted,
        "status": ENABLED if enabled else DISABLED,
        "last_updated": now,
    }
    row = session.get(t.AppConnection, app.id)
    if row is None:
        row = t.AppConnection(app_id=app.id, created=now, **values)
        _insert(session, row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    events.record(
        session,
        "application.lifecycle.update",
        f"Update provisioning connection of {app.label}",
        actor=actor,
        targets=[_app_target(app)],
        debug={"baseUrl": info.base_url, "authScheme": info.auth_scheme, "status": row.status},
    )
    session.flush()
    outbox.enqueue_app(session, app.id)
    return row


def set_connection_status(
    session: Session, actor: Actor, app_id: str, *, enabled: bool
) -> t.AppConnection:
    row = connection(session, app_id)
    app = get_app(session, app_id)
    status = ENABLED if enabled else DISABLED
    if row.status == status:
        return row
    row.status = status
    row.last_updated = _now()
    verb = "Activate" if enabled else "Deactivate"
    events.record(
        session,
        "application.lifecycle.update",
        f"{verb} provisioning connection of {app.label}",
        actor=actor,
        targets=[_app_target(app)],
        debug={"status": status},
    )
    if enabled:
        outbox.enqueue_app(session, app_id)
    return row


# --- Group assignments ------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupAssignmentSpec:
    """``None`` keeps the current value (or picks the default for a new assignment)."""

    priority: int | None = None
    profile: dict[str, Any] | None = None


def _group(session: Session, group_id: str) -> t.Group:
    group = session.get(t.Group, group_id)
    if group is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (UserGroup)")
    return group


def _group_target(group: t.Group) -> Target:
    return Target(group.id, "UserGroup", group.name, group.name)


def _next_priority(session: Session, app_id: str) -> int:
    highest = session.execute(
        select(func.max(t.AppGroupAssignment.priority)).where(t.AppGroupAssignment.app_id == app_id)
    ).scalar_one_or_none()
    return 0 if highest is None else min(int(highest) + 1, MAX_PRIORITY)


def group_assignment(session: Session, app_id: str, group_id: str) -> t.AppGroupAssignment:
    get_app(session, app_id)
    row = session.get(t.AppGroupAssignment, (app_id, group_id))
    if row is None:
        raise NotFound(f"Not found: Resource not found: {group_id} (ApplicationGroupAssignment)")
    return row


def _reconcile_group_grant(session: Session, app_id: str, group_id: str) -> None:
    """Members' accounts and the app's pushed groups may change with any group grant."""
    session.flush()
    outbox.enqueue_users_of_app_group(session, group_id, app_id)
    outbox.enqueue_push_for_app_users(session, app_id, None)


def assign_group(
    session: Session, actor: Actor, app_id: str, group_id: str, spec: GroupAssignmentSpec
) -> t.AppGroupAssignment:
    """Okta's idempotent PUT: assign the group, or update its priority and profile."""
    app = get_app(session, app_id)
    group = _group(session, group_id)
    priority = spec.priority
    _require(
        priority is None or MIN_PRIORITY <= priority <= MAX_PRIORITY,
        "priority: must be between 0 and 100",
    )
    now = _now()
    row = session.get(t.AppGroupAssignment, (app_id, group_id))
    verb = "update" if row is not None else "add"
    if row is None:
        row = t.AppGroupAssignment(
            app_id=app_id,
            group_id=group_id,
            priority=_next_priority(session, app_id) if priority is None else priority,
            profile=spec.profile or {},
            created=now,
            last_updated=now,
        )
        _insert(session, row)
    else:
        row.priority = row.priority if priority is None else priority
        row.profile = row.profile if spec.profile is None else spec.profile
    row.last_updated = now
    events.record(
        session,
        f"group.application_assignment.{verb}",
        f"{'Add' if verb == 'add' else 'Update'} assigned application {app.label} "
        f"{'to' if verb == 'add' else 'in'} group {group.name}",
        actor=actor,
        targets=[_app_target(app), _group_target(group)],
        debug={"priority": row.priority},
    )
    _reconcile_group_grant(session, app_id, group_id)
    return row


def unassign_group(session: Session, actor: Actor, app_id: str, group_id: str) -> None:
    row = group_assignment(session, app_id, group_id)
    app = get_app(session, app_id)
    group = _group(session, group_id)
    session.delete(row)
    session.flush()
    events.record(
        session,
        "group.application_assignment.remove",
        f"Remove assigned application {app.label} from group {group.name}",
        actor=actor,
        targets=[_app_target(app), _group_target(group)],
    )
    outbox.enqueue_group_members_for_app(session, group_id, app_id)
    outbox.enqueue_push_for_app_users(session, app_id, None)


def _priority_cursor(text: str) -> tuple[int, str]:
    priority, _, group_id = text.partition(".")
    _require(priority.isdigit() and bool(group_id), "after: invalid cursor")
    return int(priority), group_id


def list_group_assignments(
    session: Session, app_id: str, *, limit: int, after: str | None, q: str | None = None
) -> Page[t.AppGroupAssignment]:
    """Ordered by priority then group id; the cursor is ``<priority>.<group id>``."""
    get_app(session, app_id)
    aga = t.AppGroupAssignment
    query = select(aga).where(aga.app_id == app_id)
    if q:
        query = query.join(t.Group, t.Group.id == aga.group_id).where(
            t.Group.name_lower.like(_prefix_pattern(q), escape="\\")
        )
    if after:
        priority, group_id = _priority_cursor(after)
        query = query.where(
            or_(
                aga.priority > priority,
                and_(aga.priority == priority, aga.group_id > group_id),
            )
        )
    rows = list(
        session.execute(query.order_by(aga.priority, aga.group_id).limit(limit + 1)).scalars()
    )
    page: Page[t.AppGroupAssignment] = Page(rows[:limit])
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = f"{last.priority}.{last.group_id}"
    return page


def apps_of_group(session: Session, group_id: str, *, limit: int, after: str | None) -> Page[t.App]:
    _group(session, group_id)
    query = (
        select(t.App)
        .join(t.AppGroupAssignment, t.AppGroupAssignment.app_id == t.App.id)
        .where(t.AppGroupAssignment.group_id == group_id)
    )
    return fetch_page(session, query, t.App.id, limit=limit, after=after)


# --- Direct assignments -----------------------------------------------------------------------


@dataclass(frozen=True)
class UserAssignmentSpec:
    """A direct assignment's app profile and username override (``None``: unchanged)."""

    profile: dict[str, Any] | None = None
    user_name: str | None = None


def _user(session: Session, user_id: str) -> t.User:
    user = session.get(t.User, user_id)
    if user is None or user.status == "DELETED":
        raise NotFound(f"Not found: Resource not found: {user_id} (User)")
    return user


def _user_target(user: t.User) -> Target:
    profile = user.profile or {}
    name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p)
    return Target(user.id, "User", user.login, name or user.login)


def _check_user_name(user_name: str | None) -> None:
    _require(
        user_name is None or 0 < len(user_name) <= 100,
        "credentials.userName: must be 1 to 100 characters",
    )


def _record_membership(session: Session, actor: Actor, verb: str, app: t.App, user: t.User) -> None:
    messages = {
        "add": "Add user to application membership",
        "update": "Update user's application membership",
        "remove": "Remove user from application membership",
    }
    events.record(
        session,
        f"application.user_membership.{verb}",
        messages[verb],
        actor=actor,
        targets=[_app_target(app), _user_target(user)],
    )


def _reconcile_user(session: Session, app_id: str, user_id: str) -> None:
    session.flush()
    outbox.enqueue_users_for_apps(session, app_id, [user_id])
    outbox.enqueue_push_for_app_users(session, app_id, [user_id])


def assign_user(
    session: Session, actor: Actor, app_id: str, user_id: str, spec: UserAssignmentSpec
) -> AppUserView:
    """A direct (scope USER) assignment; STAGED users may be assigned but get no account."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    if user.status == "DEPROVISIONED":
        raise InactiveUser(causes=[f"id: user {user_id} is deactivated"])
    if session.get(t.AppUserAssignment, (app_id, user_id)) is not None:
        raise AlreadyAssigned(causes=[f"id: user {user_id} is already assigned to the app"])
    _check_user_name(spec.user_name)
    now = _now()
    row = t.AppUserAssignment(
        app_id=app_id,
        user_id=user_id,
        profile=spec.profile or {},
        user_name=spec.user_name,
        created=now,
        last_updated=now,
    )
    _insert(session, row, AlreadyAssigned(causes=[f"id: user {user_id} is already assigned"]))
    _record_membership(session, actor, "add", app, user)
    _reconcile_user(session, app_id, user_id)
    return app_user(session, app_id, user_id)


def _merge_profile(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Partial update: given keys replace, ``null`` removes."""
    merged = {**current, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def update_app_user(
    session: Session, actor: Actor, app_id: str, user_id: str, spec: UserAssignmentSpec
) -> AppUserView:
    """Edit the direct assignment; a group-only user gets one (Okta's "override")."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    _check_user_name(spec.user_name)
    row = session.get(t.AppUserAssignment, (app_id, user_id))
    if row is None:
        app_user(session, app_id, user_id)  # 404 unless group-assigned
        now = _now()
        row = t.AppUserAssignment(
            app_id=app_id,
            user_id=user_id,
            profile={},
            user_name=None,
            created=now,
            last_updated=now,
        )
        _insert(session, row)
    row.profile = _merge_profile(row.profile or {}, spec.profile or {})
    row.user_name = spec.user_name if spec.user_name is not None else row.user_name
    row.last_updated = _now()
    _record_membership(session, actor, "update", app, user)
    _reconcile_user(session, app_id, user_id)
    return app_user(session, app_id, user_id)


def unassign_user(session: Session, actor: Actor, app_id: str, user_id: str) -> None:
    """Remove the direct assignment; group grants, if any, keep the account."""
    app = get_app(session, app_id)
    user = _user(session, user_id)
    row = session.get(t.AppUserAssignment, (app_id, user_id))
    if row is None:
        raise NotFound(f"Not found: Resource not found: {user_id} (AppUser)")
    session.delete(row)
    _record_membership(session, actor, "remove", app, user)
    _reconcile_user(session, app_id, user_id)


# --- App users (effective assignments) --------------------------------------------------------


@dataclass(frozen=True)
class AppUserView:
    """One effectively assigned user as Okta's app user, derived from rows loaded in bulk."""

    app_id: str
    user: t.User
    link: t.AppUserLink | None
    direct: t.AppUserAssignment | None
    grants: tuple[GroupGrant, ...]
    #: When each group grant began (assignment or membership, whichever is later).
    grant_times: dict[str, tuple[datetime, datetime]]
    settings: ProvisioningSettings
    connected: bool

    @property
    def scope(self) -> str:
        return "USER" if self.direct is not None else "GROUP"

    @property
    def winning_group(self) -> GroupGrant | None:
        return resolve_profile(None, self.grants)[1]

    @property
    def profile(self) -> dict[str, Any]:
        direct = DirectGrant(self.direct.profile or {}) if self.direct is not None else None
        return resolve_profile(direct, self.grants)[0]

    @property
    def status(self) -> str:
        if not self.connected and self.link is None:
            return "ACTIVE"  # sign-on only: nothing to provision
        if self.link is None or self.link.external_id is None:
            return "STAGED"
        if self.link.state == "ACTIVE":
            return "PROVISIONED"
        if self.link.state in ("INACTIVE", "DEPROVISIONING"):
            return "INACTIVE"
        return "STAGED"

    @property
    def sync_state(self) -> str:
        if self.link is not None:
            return self.link.sync_state
        return "SYNCING" if self.connected else "DISABLED"

    @property
    def user_name(self) -> str:
        if self.direct is not None and self.direct.user_name:
            return self.direct.user_name
        try:
            return render_user_name(self.settings.user_name_template, self.user.profile or {})
        except MappingError:
            return self.user.login

    def _times(self) -> list[tuple[datetime, datetime]]:
        """(created, last updated) of every record behind this app user."""
        times = [(clock.as_utc(c), clock.as_utc(u)) for c, u in self.grant_times.values()]
        for row in (self.direct, self.link):
            if row is not None:
                times.append((clock.as_utc(row.created), clock.as_utc(row.last_updated)))
        return times

    @property
    def created(self) -> datetime:
        return min(created for created, _ in self._times())

    @property
    def last_updated(self) -> datetime:
        return max(updated for _, updated in self._times())

    @property
    def status_changed(self) -> datetime:
        if self.link is not None and self.link.status_changed is not None:
            return clock.as_utc(self.link.status_changed)
        return self.created

    @property
    def last_sync(self) -> datetime | None:
        return self.link.last_sync if self.link is not None else None


def _effective_user_ids(app_id: str, after: str | None) -> Select[Any]:
    """Users assigned directly or through any assigned group (a set, not a loop)."""
    aua, aga, m = t.AppUserAssignment, t.AppGroupAssignment, t.Membership
    direct = select(aua.user_id.label("user_id")).where(aua.app_id == app_id)
    grouped = (
        select(m.user_id.label("user_id"))
        .join(aga, aga.group_id == m.group_id)
        .where(aga.app_id == app_id)
    )
    if after:
        direct = direct.where(aua.user_id > after)
        grouped = grouped.where(m.user_id > after)
    assigned = union(direct, grouped).subquery()
    return select(t.User.id).join(assigned, assigned.c.user_id == t.User.id)


def _group_grants(
    session: Session, app_id: str, user_ids: list[str]
) -> dict[str, list[tuple[GroupGrant, tuple[datetime, datetime]]]]:
    aga, m = t.AppGroupAssignment, t.Membership
    rows = session.execute(
        select(
            m.user_id,
            aga.group_id,
            t.Group.name,
            aga.priority,
            aga.profile,
            aga.created,
            m.created.label("joined"),
            aga.last_updated,
        )
        .join(aga, aga.group_id == m.group_id)
        .join(t.Group, t.Group.id == aga.group_id)
        .where(aga.app_id == app_id, m.user_id.in_(user_ids))
    ).all()
    grants: dict[str, list[tuple[GroupGrant, tuple[datetime, datetime]]]] = {}
    for row in rows:
        grant = GroupGrant(row.group_id, row.name, row.priority, dict(row.profile or {}))
        began = max(clock.as_utc(row.created), clock.as_utc(row.joined))
        updated = max(began, clock.as_utc(row.last_updated))
        grants.setdefault(row.user_id, []).append((grant, (began, updated)))
    return grants


def _by_user(session: Session, model: Any, app_id: str, user_ids: list[str]) -> dict[str, Any]:
    rows = session.execute(
        select(model).where(model.app_id == app_id, model.user_id.in_(user_ids))
    ).scalars()
    return {row.user_id: row for row in rows}


def _views(session: Session, app: t.App, user_ids: list[str]) -> list[AppUserView]:
    """App users for a page of ids: one query each for users, links, direct grants, groups."""
    if not user_ids:
        return []
    users = {
        u.id: u for u in session.execute(select(t.User).where(t.User.id.in_(user_ids))).scalars()
    }
    links = _by_user(session, t.AppUserLink, app.id, user_ids)
    directs = _by_user(session, t.AppUserAssignment, app.id, user_ids)
    grants = _group_grants(session, app.id, user_ids)
    settings = settings_of(app)
    connected = bool(connected_app_ids(session, [app.id]))
    views = []
    for user_id in user_ids:
        pairs = grants.get(user_id, [])
        if user_id not in users or (user_id not in directs and not pairs):
            continue
        views.append(
            AppUserView(
                app_id=app.id,
                user=users[user_id],
                link=links.get(user_id),
                direct=directs.get(user_id),
                grants=tuple(grant for grant, _ in pairs),
                grant_times={grant.group_id: times for grant, times in pairs},
                settings=settings,
                connected=connected,
            )
        )
    return views


def list_app_users(
    session: Session, app_id: str, *, limit: int, after: str | None, q: str | None = None
) -> Page[AppUserView]:
    app = get_app(session, app_id)
    query = _effective_user_ids(app_id, after)
    if q:
        query = query.where(t.User.login_lower.like(_prefix_pattern(q), escape="\\"))
    ids_ = list(session.execute(query.order_by(t.User.id).limit(limit + 1)).scalars())
    page: Page[AppUserView] = Page(_views(session, app, ids_[:limit]))
    if len(ids_) > limit:
        page.next_cursor = ids_[limit - 1]
    return page


def app_user(session: Session, app_id: str, user_id: str) -> AppUserView:
    """One effectively assigned user; 404 when the user holds no grant for the app."""
    app = get_app(session, app_id)
    views = _views(session, app, [user_id])
    if not views:
        raise NotFound(f"Not found: Resource not found: {user_id} (AppUser)")
    return views[0]


def app_links(session: Session, user_id_or_login: str) -> tuple[t.User, list[t.App]]:
    """Active apps the user is effectively assigned to, ordered by label (Okta's appLinks)."""
    user = session.get(t.User, user_id_or_login)
    if user is None:
        user = session.execute(
            select(t.User).where(t.User.login_lower == user_id_or_login.lower())
        ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"Not found: Resource not found: {user_id_or_login} (User)")
    aua, aga, m = t.AppUserAssignment, t.AppGroupAssignment, t.Membership
    direct = select(aua.app_id.label("app_id")).where(aua.user_id == user.id)
    grouped = (
        select(aga.app_id.label("app_id"))
        .join(m, m.group_id == aga.group_id)
        .where(m.user_id == user.id)
    )
    assigned = union(direct, grouped).subquery()
    query = (
        select(t.App)
        .join(assigned, assigned.c.app_id == t.App.id)
        .where(t.App.status == ACTIVE)
        .order_by(t.App.label, t.App.id)
    )
    return user, list(session.execute(query).scalars())
