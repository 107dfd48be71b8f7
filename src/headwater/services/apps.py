"""Apps: Okta's app documents, their lifecycle, listing, features and provisioning settings.

Every use-case runs in the caller's unit of work: it validates everything first, then writes,
records a system log event and enqueues reconcile keys in the same transaction, so a refused
request changes nothing and a committed change is never missed by the engine.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from headwater import clock, ids
from headwater.db import events, outbox
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.db.paging import Page, fetch_page
from headwater.domain.capabilities import Capabilities
from headwater.domain.dialects import Dialect, GroupWrites, MemberCheck, drift_repair, effective
from headwater.domain.ldap import LDAP_APP_NAME
from headwater.domain.lifecycle import DELETED
from headwater.domain.mapping import TemplatePreview, check_user_name_template, preview_user_names
from headwater.domain.settings import ProvisioningSettings, public_name, with_changes
from headwater.domain.states import AppStatus
from headwater.domain.storable import DOCUMENT, check_document, check_text
from headwater.errors import InvalidRequest, NotFound
from headwater.services import user_schema
from headwater.services.validation import is_web_url, plausible_id, prefix_pattern, require

ACTIVE = AppStatus.ACTIVE


INACTIVE = AppStatus.INACTIVE


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


@dataclass(frozen=True)
class AppSpec:
    """An app as the client sent it (Okta's JSON, already shape-checked by the API layer)."""

    label: str
    name: str | None = None
    sign_on_mode: str | None = None
    document: dict[str, Any] = field(default_factory=dict)


def app_target(app: t.App) -> Target:
    return Target(app.id, "AppInstance", app.name, app.label)


def get_app(session: Session, app_id: str) -> t.App:
    """The app, or Okta's 404 (an id no row can have never reaches SQL)."""
    app = session.get(t.App, app_id) if plausible_id(app_id) else None
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
    require(mode is None or mode in SIGN_ON_MODES, f"signOnMode: unsupported value {mode!r}")
    if mode == "BOOKMARK":
        url = _dict_at(spec.document, "settings", "app").get("url")
        require(is_web_url(url), "settings.app.url: an http(s) URL is required")
    if mode == "AUTO_LOGIN":
        url = _dict_at(spec.document, "settings", "signOn").get("loginUrl")
        require(is_web_url(url), "settings.signOn.loginUrl: an http(s) URL is required")


def _template_from(document: dict[str, Any]) -> str | None:
    template = _dict_at(document, "credentials", "userNameTemplate").get("template")
    if template is None:
        return None
    require(isinstance(template, str), "credentials.userNameTemplate.template: must be a string")
    return str(template)


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


def _check_texts(spec: AppSpec) -> None:
    """Everything of the spec that is stored must be storable (``domain.storable``)."""
    for field_name, text in (("label", spec.label), ("name", spec.name)):
        problem = check_text(text) if text is not None else None
        require(problem is None, f"{field_name}: {problem}")
    for key in DOCUMENT_KEYS:
        section = spec.document.get(key)
        if section is not None:
            require(isinstance(section, dict), f"{key}: must be an object")
            check_document(section, key, DOCUMENT)


def _validated(spec: AppSpec) -> tuple[str, str, str | None]:
    """(name, label, template) after checking the spec."""
    label = spec.label.strip()
    require(0 < len(label) <= MAX_NAME, "label: must be 1 to 255 characters")
    _check_texts(spec)
    _check_sign_on(spec)
    name = (spec.name or "").strip() or _default_name(spec)
    require(name is not None, "name: required for this signOnMode")
    assert name is not None
    require(len(name) <= MAX_NAME, "name: must be at most 255 characters")
    template = _template_from(spec.document)
    if template is not None:
        check_user_name_template(template, "credentials.userNameTemplate.template")
    return name, label, template


def create_app(session: Session, actor: Actor, spec: AppSpec, *, activate: bool) -> t.App:
    name, label, template = _validated(spec)
    if template is not None:
        user_schema.check_template(session, template, "credentials.userNameTemplate.template")
    settings = ProvisioningSettings()
    if template is not None:
        settings = replace(settings, user_name_template=template)
    now = clock.utcnow()
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
        targets=[app_target(app)],
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
    require(name == app.name, "name: cannot be changed")
    settings = settings_of(app)
    template_changed = template is not None and template != settings.user_name_template
    if template is not None and template_changed:
        user_schema.check_template(session, template, "credentials.userNameTemplate.template")
        app.provisioning = replace(settings, user_name_template=template).to_json()
    app.label = label
    app.sign_on_mode = spec.sign_on_mode
    app.document = _document_without_template(spec.document)
    app.last_updated = clock.utcnow()
    events.record(
        session,
        "application.lifecycle.update",
        f"Update application {label}",
        actor=actor,
        targets=[app_target(app)],
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
        targets=[app_target(app)],
    )


def activate_app(session: Session, actor: Actor, app_id: str) -> t.App:
    """Activation releases the app's held work: every key is enqueued again."""
    app = get_app(session, app_id)
    if app.status != ACTIVE:
        app.status = ACTIVE
        app.last_updated = clock.utcnow()
        _record_lifecycle(session, actor, app, "activate")
        session.flush()
        outbox.enqueue_app(session, app.id)
    return app


def deactivate_app(session: Session, actor: Actor, app_id: str) -> t.App:
    """The engine skips INACTIVE apps, so deactivating is only a status change."""
    app = get_app(session, app_id)
    if app.status != INACTIVE:
        app.status = INACTIVE
        app.last_updated = clock.utcnow()
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


def list_apps(
    session: Session,
    *,
    limit: int,
    after: str | None,
    q: str | None = None,
    filters: dict[str, str] | None = None,
    only: Collection[str] | None = None,
) -> Page[t.App]:
    """A page of apps; ``only``: limited to these ids (what a scoped admin may see)."""
    query = select(t.App)
    if only is not None:
        query = query.where(t.App.id.in_(sorted(only)))
    if q:
        pattern = prefix_pattern(q)
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


#: Settings that only shape throughput: changing them alters no desired state.
_TUNING_ONLY = frozenset(
    {
        "max_concurrency",
        "rate_limit_per_second",
        "full_reconcile_interval",
        "membership_batch_size",
        "lookup_batch_size",
        "bulk_support",
        "lookup_before_create",
        "update_method",
    }
)


def update_settings(
    session: Session, actor: Actor, app_id: str, changes: dict[str, Any]
) -> ProvisioningSettings:
    """Apply validated changes; re-reconcile the app when the desired state may differ."""
    app = get_app(session, app_id)
    before = settings_of(app)
    after = with_changes(before, changes)
    # A directory refuses a second entry only at the same DN, not at the same matching
    # attribute: creating first could make a duplicate where a look-up would have linked.
    require(
        after.lookup_before_create or app.name != LDAP_APP_NAME,
        "lookupBeforeCreate: LDAP apps always look an account up before creating it",
    )
    if after.user_name_template != before.user_name_template:
        user_schema.check_template(session, after.user_name_template, "userNameTemplate")
    changed = sorted(n for n in after.to_json() if getattr(before, n) != getattr(after, n))
    if not changed:
        return after
    app.provisioning = after.to_json()
    app.last_updated = clock.utcnow()
    events.record(
        session,
        "application.lifecycle.update",
        f"Update provisioning settings of {app.label}",
        actor=actor,
        targets=[app_target(app)],
        debug={"changedSettings": [public_name(n) for n in changed]},
    )
    if set(changed) - _TUNING_ONLY:
        session.flush()
        outbox.enqueue_app(session, app.id)
    return after


def capabilities_of(app: t.App) -> dict[str, Any]:
    """What admins are shown of how Headwater speaks to the app: its dialect and switches as
    spoken, what the app announced (or was seen to refuse), and whether a full reconcile can
    repair changes made to pushed groups downstream."""
    settings = settings_of(app)
    announced = Capabilities.from_json(app.capabilities)
    spoken = effective(settings.switches(), announced, settings.patch_support)
    # Checking accounts one by one is the only way left when members are hidden and nothing
    # overwrites them; a budget of 0 turns the checks off.
    by_checks = not (spoken.members_returned or _overwrites(spoken))
    repair = drift_repair(spoken) and not (
        by_checks and (spoken.member_check is MemberCheck.NONE or settings.member_check_budget == 0)
    )
    return {
        "dialect": str(spoken.name),
        "groupWrites": str(spoken.group_writes),
        "userWrites": str(spoken.user_writes),
        "membersReturned": spoken.members_returned,
        "membersReplace": spoken.members_replace,
        "memberRemoval": str(spoken.member_removal),
        "patchOpCase": str(spoken.op_case),
        "booleanEncoding": str(spoken.booleans),
        "memberCheck": str(spoken.member_check),
        "maxChangesPerRequest": min(settings.membership_batch_size, spoken.max_changes),
        "patchSupport": str(settings.patch_support),
        "announced": announced.public(),
        "driftRepair": "AVAILABLE" if repair else "UNAVAILABLE",
        "driftRepairNote": (
            _checked_note(settings.member_check_budget)
            if repair and by_checks
            else "a full reconcile reads pushed groups back, or overwrites them whole"
            if repair
            else "the app hides group members, refuses a whole replace and offers no way to "
            "check one account (memberCheck none, or memberCheckBudget 0): members added in the "
            "app itself are not seen or undone; a full reconcile only re-adds the members "
            "Headwater wants and removes those it pushed before"
        ),
    }


#: Users a username template preview shows (default, maximum).
PREVIEW_USERS = (10, 25)


def preview_template(
    session: Session,
    app_id: str,
    template: str,
    *,
    user_ids: Collection[str] = (),
    limit: int = PREVIEW_USERS[0],
) -> TemplatePreview:
    """A username template tried on sample users before it is saved: the users named, else the
    app's users, else the first users of the directory. Nothing is written."""
    get_app(session, app_id)
    require(0 < limit <= PREVIEW_USERS[1], f"limit: must be 1 to {PREVIEW_USERS[1]}")
    require(len(user_ids) <= PREVIEW_USERS[1], f"userIds: at most {PREVIEW_USERS[1]}")
    live = select(t.User).where(t.User.status != DELETED).order_by(t.User.id)
    if user_ids:
        chosen = list(session.execute(live.where(t.User.id.in_(list(user_ids)))).scalars())
    else:
        users_of_app = outbox.app_user_subjects(app_id).subquery()
        chosen = list(
            session.execute(
                live.where(t.User.id.in_(select(users_of_app.c.subject_id))).limit(limit)
            ).scalars()
        )
        if not chosen:
            chosen = list(session.execute(live.limit(limit)).scalars())
    samples = [(user.id, user.login, dict(user.profile or {})) for user in chosen]
    return preview_user_names(template, samples, user_schema.expression_types(session))


def _overwrites(dialect: Dialect) -> bool:
    """Whether a full push overwrites the whole membership (a PUT, or a PATCH replace)."""
    return dialect.group_writes is GroupWrites.PUT or dialect.members_replace


def _checked_note(budget: int) -> str:
    return (
        "the app hides group members: a full reconcile re-adds the members Headwater wants, "
        f"and checks up to {budget} accounts it links per pass one by one, taking out those "
        "found where they should not be; members no account of Headwater's stands for stay "
        "unknown"
    )
