"""The relational schema, one table per concept, shared by SQLite and PostgreSQL.

Directory (users, groups, memberships), apps and their assignments, the recorded downstream
state (app user links, pushed groups and their members), the reconcile outbox, tasks, the
system log, API tokens, console admins and their sessions. JSON columns hold open-ended
documents (profiles, settings); everything the engine filters or joins on is a real column with
an index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    desc,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Admin",
    "ApiToken",
    "App",
    "AppConnection",
    "AppGroupAssignment",
    "AppImport",
    "AppImportAccount",
    "AppImportGroup",
    "AppUserAssignment",
    "AppUserLink",
    "Base",
    "ConsoleSession",
    "Event",
    "EventTarget",
    "Group",
    "GroupRule",
    "GroupRuleMember",
    "HeldOperation",
    "ImportHold",
    "Membership",
    "Orphan",
    "PushMapping",
    "PushMember",
    "PushRule",
    "ReconcileKey",
    "Source",
    "SourceToken",
    "Task",
    "UnmanagedAccount",
    "User",
    "UserSchema",
    "WorkerHeartbeat",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(32)
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: Timestamp}


# --- Directory -------------------------------------------------------------------------------


class User(Base):
    """A directory person; ``profile`` is the whole Okta profile, indexed columns mirror it."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    login: Mapped[str] = mapped_column(String(255))
    #: Lowercased login: uniqueness and lookups are case-insensitive, as in Okta.
    login_lower: Mapped[str] = mapped_column(String(255), unique=True)
    email_lower: Mapped[str | None] = mapped_column(String(255), index=True)
    profile: Mapped[dict[str, Any]]
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime]
    activated: Mapped[datetime | None]
    status_changed: Mapped[datetime | None]
    last_login: Mapped[datetime | None]
    last_updated: Mapped[datetime] = mapped_column(index=True)
    password_changed: Mapped[datetime | None]
    #: The inbound source that masters this user (its attributes change only through it).
    source_id: Mapped[str | None] = mapped_column(
        ForeignKey("sources.id", ondelete="SET NULL"), index=True
    )
    #: The SCIM resource the source last wrote (without id, meta and password).
    source_document: Mapped[dict[str, Any] | None]


class Group(Base):
    """OKTA_GROUP (made here) or APP_GROUP (stands for a group in one downstream app)."""

    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    #: Lowercased name, unique within ``name_scope``.
    name_lower: Mapped[str] = mapped_column(String(255))
    #: "okta" for OKTA_GROUP (names unique across the org), the app id for APP_GROUP.
    name_scope: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    profile: Mapped[dict[str, Any]]
    #: For APP_GROUP: the app it lives in and its id downstream.
    app_id: Mapped[str | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime]
    last_updated: Mapped[datetime] = mapped_column(index=True)
    last_membership_updated: Mapped[datetime | None]
    #: The inbound source that masters this group (name, description and members).
    source_id: Mapped[str | None] = mapped_column(
        ForeignKey("sources.id", ondelete="SET NULL"), index=True
    )
    #: The SCIM resource the source last wrote (externalId and the like; not the members).
    source_document: Mapped[dict[str, Any] | None]

    __table_args__ = (
        UniqueConstraint("name_scope", "name_lower"),
        Index("ix_groups_app_id_external_id", "app_id", "external_id"),
    )


class Membership(Base):
    __tablename__ = "memberships"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created: Mapped[datetime]
    #: Added by hand (API, console, CLI). A membership a group rule put there is not manual;
    #: the rules that hold it are rows of ``group_rule_members``. The row exists while it is
    #: manual or some rule holds it.
    manual: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (Index("ix_memberships_user_id_group_id", "user_id", "group_id"),)


class GroupRule(Base):
    """Okta's group rule: users whose profile matches ``expression`` join ``group_ids``.

    The group lists are JSON (bounded, read whole with the rule); ``revision`` grows on every
    change so compiled rules can be cached per process and refreshed when it moves."""

    __tablename__ = "group_rules"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: ACTIVE, INACTIVE or INVALID.
    status: Mapped[str] = mapped_column(String(16), index=True)
    expression: Mapped[str] = mapped_column(Text)
    group_ids: Mapped[list[Any]]
    exclude_user_ids: Mapped[list[Any]]
    exclude_group_ids: Mapped[list[Any]]
    #: Why the rule turned INVALID.
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    #: While an activation sweeps the directory: the last user id evaluated ("" before the
    #: first batch); None once the whole directory has been evaluated.
    sweep_after: Mapped[str | None] = mapped_column(String(32))
    created: Mapped[datetime]
    last_updated: Mapped[datetime]


class UserSchema(Base):
    """The directory's user schema (one row, ``default``): the custom attributes as
    ``domain.user_schema.UserSchema`` JSON. No row: no custom attribute declared."""

    __tablename__ = "user_schemas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    definition: Mapped[dict[str, Any]]
    last_updated: Mapped[datetime]


class GroupRuleMember(Base):
    """A membership a group rule holds: its provenance, for explain and for taking it back."""

    __tablename__ = "group_rule_members"

    rule_id: Mapped[str] = mapped_column(
        ForeignKey("group_rules.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created: Mapped[datetime]

    __table_args__ = (
        Index("ix_group_rule_members_user_id", "user_id"),
        Index("ix_group_rule_members_group_id_user_id", "group_id", "user_id"),
    )


# --- Apps and assignments ---------------------------------------------------------------------


class App(Base):
    """An application instance; ``provisioning`` holds its ProvisioningSettings as JSON, and
    ``attribute_mapping`` and ``user_schema`` what its profile mapping changes and adds."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    sign_on_mode: Mapped[str | None] = mapped_column(String(32))
    #: The rest of Okta's app document (settings, visibility, accessibility, credentials, ...).
    document: Mapped[dict[str, Any]]
    provisioning: Mapped[dict[str, Any]]
    #: What the app announced in its ServiceProviderConfig, or was seen to refuse
    #: (``domain.capabilities.Capabilities`` as JSON); None until read.
    capabilities: Mapped[dict[str, Any] | None]
    #: The attribute mapping's changed properties (``domain.profile_mapping.AppMapping``); None:
    #: the built-in mapping.
    attribute_mapping: Mapped[dict[str, Any] | None]
    #: The app user schema's custom attributes (``domain.profile_mapping.AppSchema``).
    user_schema: Mapped[dict[str, Any] | None]
    #: The groups the mapping's ``isMemberOf…`` functions read (``[[kind, value], ...]``); None
    #: when it reads none. A membership change of a matching group re-enqueues the app's keys.
    membership_reads: Mapped[list[Any] | None]
    #: Quarantine: when set, work is held until ``next_probe`` says to try again.
    quarantined_since: Mapped[datetime | None]
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    next_probe: Mapped[datetime | None]
    probe_interval: Mapped[float] = mapped_column(Float, default=0.0)
    last_full_reconcile: Mapped[datetime | None]
    created: Mapped[datetime]
    last_updated: Mapped[datetime]


class AppConnection(Base):
    """How to reach an app's provisioning endpoint; the secret is encrypted, never returned."""

    __tablename__ = "app_connections"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(2048))
    auth_scheme: Mapped[str] = mapped_column(String(16))
    #: Fernet token of the JSON secret (token, password or client secret and its companions).
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime]
    last_updated: Mapped[datetime]


class AppGroupAssignment(Base):
    __tablename__ = "app_group_assignments"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    #: Lower wins when a user is granted the app by several groups.
    priority: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]]
    created: Mapped[datetime]
    last_updated: Mapped[datetime]

    __table_args__ = (Index("ix_app_group_assignments_group_id", "group_id"),)


class AppUserAssignment(Base):
    """A direct (scope USER) assignment of an app to a user."""

    __tablename__ = "app_user_assignments"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    profile: Mapped[dict[str, Any]]
    user_name: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime]
    last_updated: Mapped[datetime]

    __table_args__ = (Index("ix_app_user_assignments_user_id", "user_id"),)


# --- Recorded downstream state ----------------------------------------------------------------


class AppUserLink(Base):
    """What Headwater knows of one user's downstream account in one app.

    Kept after unassignment, so a later reassignment reactivates the same downstream id.
    ``state`` is the engine's view: NONE (no account), ACTIVE, INACTIVE, DEPROVISIONING (a
    deprovision has been decided; no membership may be added from now on), DELETED.
    """

    __tablename__ = "app_user_links"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    user_name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    sync_state: Mapped[str] = mapped_column(String(16))
    #: Last attribute document pushed (AccountAttributes.as_dict), for "nothing changed" checks.
    last_pushed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_sync: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime]
    last_updated: Mapped[datetime]
    status_changed: Mapped[datetime | None]
    #: When the current deprovision began (the offboarding deadline counts from here).
    deprovision_started: Mapped[datetime | None]

    __table_args__ = (Index("ix_app_user_links_app_id_external_id", "app_id", "external_id"),)


class PushMapping(Base):
    """Group Push: keeps a downstream group equal to a source group's provisioned members."""

    __tablename__ = "push_mappings"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    source_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), index=True
    )
    #: The APP_GROUP standing for the downstream group (created when first pushed).
    target_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL")
    )
    #: Name to create or link downstream, when the mapping was made with targetGroupName.
    target_group_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    error_summary: Mapped[str | None] = mapped_column(Text)
    last_push: Mapped[datetime | None]
    #: Members of the source group skipped because they have no account in the app.
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Next push replaces the whole membership (activation, push now).
    full_push: Mapped[bool] = mapped_column(Boolean, default=True)
    rule_id: Mapped[str | None] = mapped_column(ForeignKey("push_rules.id", ondelete="SET NULL"))
    #: Unlinking with deleteTargetGroup=true: the engine deletes the downstream group, then
    #: the mapping. Hidden from the API meanwhile.
    delete_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_target: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime]
    last_updated: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("app_id", "source_group_id"),)


class PushMember(Base):
    """A downstream membership Headwater has pushed (or is about to push: ``pending``)."""

    __tablename__ = "push_members"

    mapping_id: Mapped[str] = mapped_column(
        ForeignKey("push_mappings.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    external_id: Mapped[str] = mapped_column(String(255))
    #: True between recording the intent to add and hearing the downstream's answer.
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The removal failed and the account was deactivated anyway (offboarding wins): the
    #: membership is stale downstream, and the push key keeps trying to remove it.
    stale_since: Mapped[datetime | None]
    stale_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_push_members_user_id", "user_id"),)


class Orphan(Base):
    """A member of a pushed group, seen downstream, that belongs to no account Headwater links."""

    __tablename__ = "orphans"

    mapping_id: Mapped[str] = mapped_column(
        ForeignKey("push_mappings.id", ondelete="CASCADE"), primary_key=True
    )
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    seen: Mapped[datetime]


class PushRule(Base):
    """Push by rule: every group whose name matches gets a mapping, including later ones."""

    __tablename__ = "push_rules"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    match: Mapped[str] = mapped_column(String(16))  # STARTS_WITH | CONTAINS
    value: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime]
    last_updated: Mapped[datetime]


# --- App imports and unmanaged accounts ------------------------------------------------------


class AppImport(Base):
    """One import of what an app already holds: its progress and the counts of its verdicts.

    The engine runs it (an ``import`` key); what it read is in ``app_import_accounts`` and
    ``app_import_groups``, so a restarted worker resumes from ``next_index``."""

    __tablename__ = "app_imports"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    #: The matching rules it used (comma-separated), fixed when it started.
    rules: Mapped[str] = mapped_column(String(255))
    auto_confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who started it (an admin or token id), for the system log of its confirmation.
    requested_by: Mapped[str | None] = mapped_column(String(64))
    accounts_total: Mapped[int | None] = mapped_column(Integer)
    accounts_read: Mapped[int] = mapped_column(Integer, default=0)
    groups_read: Mapped[int] = mapped_column(Integer, default=0)
    #: The ``startIndex`` of the next page of accounts to read (those before it are stored): a
    #: resumed run starts there.
    next_index: Mapped[int] = mapped_column(Integer, default=1)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    linked: Mapped[int] = mapped_column(Integer, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime]
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    last_updated: Mapped[datetime]


class AppImportAccount(Base):
    """One downstream account an import read, and the verdict of matching."""

    __tablename__ = "app_import_accounts"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("app_imports.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    #: The account's own ``externalId`` as the app reports it.
    account_external_id: Mapped[str | None] = mapped_column(String(255))
    employee_number: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A ``domain.matching.MatchKind``; None until matched.
    outcome: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rule: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    candidates: Mapped[list[Any] | None]
    #: An admin (or the app's auto-confirm) asked to link it; the engine does.
    link_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Linked by the engine.
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("import_id", "external_id"),
        Index("ix_app_import_accounts_import_id_outcome", "import_id", "outcome"),
    )


class AppImportGroup(Base):
    """One downstream group an import read."""

    __tablename__ = "app_import_groups"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("app_imports.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    #: The push mapping it was linked to, once linked.
    mapping_id: Mapped[str | None] = mapped_column(
        ForeignKey("push_mappings.id", ondelete="SET NULL")
    )

    __table_args__ = (UniqueConstraint("import_id", "external_id"),)


class UnmanagedAccount(Base):
    """An account in an app that no directory user owns, as last seen by an import or a full
    reconcile; an admin deactivates, links or ignores it."""

    __tablename__ = "unmanaged_accounts"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A ``states.UnmanagedState``.
    state: Mapped[str] = mapped_column(String(16))
    #: The mass-change guard's hold on its deactivation (a ``states.HoldDecision``), if any.
    decision: Mapped[str | None] = mapped_column(String(16))
    #: The directory user it was linked to (state LINKED).
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_error: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    last_updated: Mapped[datetime]

    __table_args__ = (UniqueConstraint("app_id", "external_id"),)


# --- Engine ------------------------------------------------------------------------------------


class ReconcileKey(Base):
    """The outbox: one row per (app, kind, subject) that needs reconciling; duplicates coalesce.

    ``generation`` grows on every enqueue; a worker deletes the row only if the generation it
    claimed is still current, so a change made while it worked is never lost.
    """

    __tablename__ = "reconcile_keys"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # a KeyKind
    subject_id: Mapped[str] = mapped_column(Id, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=1)
    enqueued_at: Mapped[datetime]
    not_before: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_generation: Mapped[int | None] = mapped_column(BigInteger)
    lease_until: Mapped[datetime | None]
    #: Set when this reconcile must read downstream state back (full reconcile, drift check).
    observe: Mapped[bool] = mapped_column(Boolean, default=False)

    #: A claim walks this index in its order (due first, user keys before push keys of the same
    #: time) and stops at its limit: every key of one bulk enqueue shares ``not_before``, and
    #: an index of that column alone made each claim sort them all.
    __table_args__ = (Index("ix_reconcile_keys_due", "not_before", desc("kind")),)


class WorkerHeartbeat(Base):
    """Live workers, so per-app limits can be shared out across the cluster."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)


class Task(Base):
    """A downstream operation that failed permanently and waits for an admin."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(Id)
    operation: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    http_status: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_attempt: Mapped[datetime]
    last_attempt: Mapped[datetime]

    __table_args__ = (UniqueConstraint("app_id", "kind", "subject_id"),)


class HeldOperation(Base):
    """A deprovision held by the mass-change guard until an admin approves or rejects it."""

    __tablename__ = "held_operations"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    operation: Mapped[str] = mapped_column(String(32))
    #: HELD until decided; APPROVED lets the reconciler proceed.
    decision: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime]


class ImportHold(Base):
    """A CSV import row held by the mass-change guard (it would deactivate or suspend a
    person), stored whole so that an admin can approve it (it is then applied as an import
    with confirm would) or reject it later."""

    __tablename__ = "import_holds"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    #: What was imported: ``users``.
    kind: Mapped[str] = mapped_column(String(16))
    #: The person the row matched when it was held.
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    #: The row's match key (its login, email or employee number).
    key: Mapped[str] = mapped_column(String(255))
    #: The row as read: ``attributes``, ``groups``, ``status`` (bounded in size).
    row: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)
    #: The import's options: how rows matched people, and the source named as actor.
    match: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(100))
    created: Mapped[datetime]
    created_by: Mapped[dict[str, Any]]
    #: A ``states.HoldDecision``.
    decision: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_import_holds_decision_id", "decision", "id"),)


# --- System log and access --------------------------------------------------------------------


class Event(Base):
    """A system log event, in Okta's LogEvent shape."""

    __tablename__ = "events"

    #: Time-ordered id, so ``ORDER BY id`` is publication order and a cursor.
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    published: Mapped[datetime] = mapped_column(index=True)
    event_type: Mapped[str] = mapped_column(String(128), index=True)
    severity: Mapped[str] = mapped_column(String(8))
    display_message: Mapped[str] = mapped_column(Text)
    outcome_result: Mapped[str] = mapped_column(String(16))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[dict[str, Any]]
    targets: Mapped[list[Any]]
    debug: Mapped[dict[str, Any]]


class EventTarget(Base):
    """Index of event targets so ``filter=target.id eq "..."`` is a seek, not a JSON scan."""

    __tablename__ = "event_targets"

    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """An SSWS API token; only its SHA-256 is stored (tokens are 160 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the token, to tell tokens apart in listings.
    token_prefix: Mapped[str] = mapped_column(String(8))
    created: Mapped[datetime]
    last_updated: Mapped[datetime]
    last_used: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    #: A ``headwater.domain.access.Role``; the scoped roles name their apps or groups.
    role: Mapped[str] = mapped_column(String(32))
    app_ids: Mapped[list[Any]]
    group_ids: Mapped[list[Any]]


class Source(Base):
    """Where identities come from (an HR system, another directory): an inbound SCIM client.

    Users and groups it creates are mastered by it."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: Lowercased name: names are unique case-insensitively.
    name_lower: Mapped[str] = mapped_column(String(255), unique=True)
    created: Mapped[datetime]
    last_updated: Mapped[datetime]


class SourceToken(Base):
    """A bearer token of one source (``/scim/v2``); only its SHA-256 is stored."""

    __tablename__ = "source_tokens"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(8))
    created: Mapped[datetime]
    last_used: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class Admin(Base):
    """A console administrator (sign-in with a password hashed by argon2), with a role as an
    API token has."""

    __tablename__ = "admins"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime]
    role: Mapped[str] = mapped_column(String(32))
    app_ids: Mapped[list[Any]]
    group_ids: Mapped[list[Any]]


class ConsoleSession(Base):
    """A signed-in console session. The cookie carries a random secret; only its SHA-256 is
    stored, so the table alone signs nobody in. Deleting the row ends the session."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[str] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    created: Mapped[datetime]
    #: Refreshed at most once a minute; the idle timeout counts from here.
    last_seen: Mapped[datetime]
    #: The absolute timeout: the session ends then, however active.
    expires_at: Mapped[datetime]
