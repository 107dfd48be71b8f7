"""An app's provisioning connection: validated, sealed, tested, stored, switched on and off.

Secrets are sealed before they reach a row and never leave this module in clear; a message a
downstream sends back is scrubbed of them before anyone sees it. A secret is bound to the URL it
was entered for: a change of ``baseUrl`` (or of an OAuth ``tokenUrl``) needs the token, password
or client secret again, so a stored credential is never sent to a new host.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import SplitResult

from sqlalchemy.orm import Session

from headwater import clock
from headwater.connectors.outbound import host_spelling_problem
from headwater.crypto import SecretBox
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor
from headwater.domain.capabilities import Capabilities
from headwater.domain.connection import ConnectionInfo, PreparedConnection
from headwater.domain.ldap import (
    LDAP_APP_NAME,
    LDAP_SCHEME,
    LDAP_SECRET_FIELDS,
    PROFILE_FIELDS,
    check_ldap_url,
    parse_profile,
)
from headwater.domain.states import ConnectionStatus
from headwater.domain.storable import check_string
from headwater.errors import NotFound
from headwater.services.apps import app_target, get_app, settings_of
from headwater.services.validation import insert_or_conflict, require, url_parts

log = logging.getLogger(__name__)

ENABLED = ConnectionStatus.ENABLED


DISABLED = ConnectionStatus.DISABLED


#: Secret fields each scheme needs (as ``connectors.auth.build_auth`` reads them), then optional.
AUTH_SCHEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "TOKEN": (("token",), ()),
    "BASIC": (("username", "password"), ()),
    "OAUTH2": (("token_url", "client_id", "client_secret"), ("scope", "client_auth")),
    "NONE": ((), ()),
    # An LDAP directory (``domain.ldap``): the bind and the bases, sealed with the password.
    LDAP_SCHEME: LDAP_SECRET_FIELDS,
}


#: The fields that are credentials: never kept when the URL they were entered for changes.
SECRET_VALUES = frozenset({"token", "password", "client_secret"})

#: Longest value of any secret field (a token, a password, a scope...).
MAX_SECRET_FIELD = 8192

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
    **{key: api for api, key in PROFILE_FIELDS.items()},
}


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection as sent; ``secret`` values are credentials and stay out of repr."""

    auth_scheme: str
    base_url: str | None = None
    secret: dict[str, str] = field(default_factory=dict, repr=False)


def _check_url(value: str | None, name: str) -> str:
    """An http(s) URL naming a host, without credentials, whose host is spelled plainly."""
    require(value is not None, f"{name}: required")
    assert value is not None
    check_string(value, name, max_length=2048)
    parts = url_parts(value)
    require(parts is not None, f"{name}: not a valid URL")
    assert parts is not None
    require(parts.scheme in ("http", "https"), f"{name}: must be an http or https URL")
    require(bool(parts.hostname), f"{name}: must name a host")
    require(not parts.username and not parts.password, f"{name}: must not carry credentials")
    problem = host_spelling_problem(parts.hostname or "")
    require(problem is None, f"{name}: its host {problem}")
    return value.strip()


def _same_url(a: str | None, b: str | None) -> bool:
    """Whether two URLs name the same place (scheme, host and port, path but a final "/")."""
    if a is None or b is None:
        return a == b
    first, second = url_parts(a), url_parts(b)
    if first is None or second is None:
        return a.strip() == b.strip()

    def key(parts: SplitResult) -> tuple[str, str, int | None, str, str]:
        default = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return (
            parts.scheme.lower(),
            (parts.hostname or "").lower().removesuffix("."),
            parts.port or default,
            parts.path.rstrip("/"),
            parts.query,
        )

    return key(first) == key(second)


def _merged_secret(
    spec: ConnectionSpec, existing: t.AppConnection | None, base_url: str, box: SecretBox
) -> dict[str, str]:
    """The new secret; fields left out keep their stored values when the scheme is unchanged,
    but a credential only while the URLs it was entered for are unchanged."""
    required, optional = AUTH_SCHEMES[spec.auth_scheme]
    for name, value in spec.secret.items():
        check_string(value, f"profile.{SECRET_FIELD_NAMES[name]}", max_length=MAX_SECRET_FIELD)
    kept: dict[str, Any] = {}
    if existing is not None and existing.auth_scheme == spec.auth_scheme:
        kept = box.open(existing.secret_encrypted) if existing.secret_encrypted else {}
    moved = [] if existing is None or _same_url(existing.base_url, base_url) else ["baseUrl"]
    token_url = spec.secret.get("token_url", kept.get("token_url"))
    if "token_url" in kept and not _same_url(str(kept["token_url"]), token_url):
        moved.append("profile.tokenUrl")
    dropped = bool(moved) and any(k in SECRET_VALUES for k in kept)
    if dropped:
        kept = {k: v for k, v in kept.items() if k not in SECRET_VALUES}
    secret = {k: str(v) for k, v in {**kept, **spec.secret}.items() if k in required + optional}
    missing = [SECRET_FIELD_NAMES[k] for k in required if not secret.get(k)]
    again = f" again when {' and '.join(moved)} changes" if dropped else ""
    require(not missing, f"profile.{', profile.'.join(missing)}: required{again}")
    if spec.auth_scheme == "OAUTH2":
        _check_url(secret["token_url"], "profile.tokenUrl")
        auth_style = secret.get("client_auth", "basic")
        require(auth_style in ("basic", "post"), "profile.clientAuth: must be basic or post")
    return secret


def _credentials(secret: dict[str, Any]) -> tuple[str, ...]:
    """The values of a secret that are credentials (not the user name, URL or scope)."""
    return tuple(str(v) for k, v in secret.items() if k in SECRET_VALUES and v)


def prepare_connection(
    session: Session, box: SecretBox, app_id: str, spec: ConnectionSpec
) -> PreparedConnection:
    """Validate and seal a new connection for ``app_id`` without storing it."""
    app = get_app(session, app_id)
    require(spec.auth_scheme in AUTH_SCHEMES, "profile.authScheme: unsupported value")
    ldap = app.name == LDAP_APP_NAME
    require(
        ldap == (spec.auth_scheme == LDAP_SCHEME),
        f"profile.authScheme: {LDAP_SCHEME} is for {LDAP_APP_NAME} apps, which take only it",
    )
    existing = session.get(t.AppConnection, app_id)
    base_url = spec.base_url if spec.base_url is not None or existing is None else existing.base_url
    base_url = check_ldap_url(base_url) if ldap else _check_url(base_url, "baseUrl")
    if ldap:
        host = url_parts(base_url)
        problem = host_spelling_problem(host.hostname or "") if host else "is not valid"
        require(problem is None, f"baseUrl: its host {problem}")
    secret = _merged_secret(spec, existing, base_url, box)
    if ldap:
        # Sealed as checked: a field sent empty is cleared, not stored as "".
        secret = {"password": secret["password"], **parse_profile(secret).to_secret()}
    sealed = box.seal(secret) if secret else None
    info = ConnectionInfo(app.id, base_url, spec.auth_scheme, sealed)
    return PreparedConnection(info, settings_of(app), _credentials(secret))


def stored_connection(session: Session, box: SecretBox, app_id: str) -> PreparedConnection:
    """The app's stored connection, ready to test."""
    app = get_app(session, app_id)
    row = connection(session, app_id)
    info = ConnectionInfo(app.id, row.base_url, row.auth_scheme, row.secret_encrypted)
    hidden: tuple[str, ...] = ()
    if row.secret_encrypted is not None:
        # An undecryptable secret is reported by the probe itself.
        with contextlib.suppress(ValueError):
            hidden = _credentials(box.open(row.secret_encrypted))
    return PreparedConnection(info, settings_of(app), hidden)


def ldap_profile(session: Session, box: SecretBox, app_id: str) -> dict[str, str]:
    """The stored LDAP profile by secret key, without its password (for a form to show);
    empty when the app has no LDAP connection or its secret cannot be opened."""
    row = session.get(t.AppConnection, app_id)
    if row is None or row.auth_scheme != LDAP_SCHEME or row.secret_encrypted is None:
        return {}
    try:
        stored = box.open(row.secret_encrypted)
    except ValueError:
        return {}
    return {k: str(v) for k, v in stored.items() if k not in SECRET_VALUES}


def connection(session: Session, app_id: str) -> t.AppConnection:
    get_app(session, app_id)
    row = session.get(t.AppConnection, app_id)
    if row is None:
        raise NotFound(f"Not found: Resource not found: {app_id} (ProvisioningConnection)")
    return row


def record_capabilities(app: t.App, announced: Capabilities | None) -> None:
    """Keep what a connection test read from the app; a 501 seen earlier still counts (an
    announcement does not undo what the app did)."""
    if announced is None:
        return
    before = Capabilities.from_json(app.capabilities)
    if before.patch_refused_at is not None:
        announced = replace(announced, patch=False, patch_refused_at=before.patch_refused_at)
    app.capabilities = announced.to_json()


def save_connection(
    session: Session,
    actor: Actor,
    prepared: PreparedConnection,
    *,
    enabled: bool,
    capabilities: Capabilities | None = None,
) -> t.AppConnection:
    """Store a prepared connection (replacing any previous one) and reconcile the app;
    ``capabilities`` are what its test read."""
    info = prepared.info
    app = get_app(session, info.app_id)
    record_capabilities(app, capabilities)
    now = clock.utcnow()
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
        insert_or_conflict(session, row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    events.record(
        session,
        "application.lifecycle.update",
        f"Update provisioning connection of {app.label}",
        actor=actor,
        targets=[app_target(app)],
        debug={"baseUrl": info.base_url, "authScheme": info.auth_scheme, "status": row.status},
    )
    session.flush()
    outbox.enqueue_app(session, app.id)
    return row


def set_connection_status(
    session: Session,
    actor: Actor,
    app_id: str,
    *,
    enabled: bool,
    capabilities: Capabilities | None = None,
) -> t.AppConnection:
    row = connection(session, app_id)
    app = get_app(session, app_id)
    record_capabilities(app, capabilities)
    status = ENABLED if enabled else DISABLED
    if row.status == status:
        return row
    row.status = status
    row.last_updated = clock.utcnow()
    verb = "Activate" if enabled else "Deactivate"
    events.record(
        session,
        "application.lifecycle.update",
        f"{verb} provisioning connection of {app.label}",
        actor=actor,
        targets=[app_target(app)],
        debug={"status": status},
    )
    if enabled:
        outbox.enqueue_app(session, app_id)
    return row
