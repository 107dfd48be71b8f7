"""Every stored state as an enum: a misspelt state is a type error, not a silent mismatch.

Values are what the database holds and the API shows (Okta's spelling where Okta has one).
The user lifecycle lives in ``lifecycle.Status``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AppStatus",
    "ConnectionStatus",
    "GroupType",
    "HoldDecision",
    "ImportStatus",
    "KeyKind",
    "LinkState",
    "MappingStatus",
    "RuleStatus",
    "SyncState",
    "UnmanagedState",
]


class KeyKind(StrEnum):
    """What a reconcile key names: a user's account in an app, or a push mapping."""

    USER = "user"
    PUSH = "push"
    #: An app import to run (subject: the import's id), or, with the app's id as subject, a
    #: survey that refreshes the app's unmanaged accounts.
    IMPORT = "import"
    #: An unmanaged account (one nobody in the directory owns) to deactivate; at most eight
    #: characters are stored, hence the short value.
    UNMANAGED = "stray"


class LinkState(StrEnum):
    """A user's downstream account as Headwater recorded it (``AppUserLink.state``)."""

    NONE = "NONE"
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    #: Being taken away: no push may add the account to a group from now on.
    DEPROVISIONING = "DEPROVISIONING"
    DELETED = "DELETED"


class SyncState(StrEnum):
    """Okta's app user ``syncState``."""

    SYNCING = "SYNCING"
    SYNCHRONIZED = "SYNCHRONIZED"
    OUT_OF_SYNC = "OUT_OF_SYNC"
    ERROR = "ERROR"
    DISABLED = "DISABLED"


class MappingStatus(StrEnum):
    """A Group Push mapping's ``status``."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    ERROR = "ERROR"


class AppStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class ConnectionStatus(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class GroupType(StrEnum):
    OKTA_GROUP = "OKTA_GROUP"
    APP_GROUP = "APP_GROUP"
    BUILT_IN = "BUILT_IN"


class HoldDecision(StrEnum):
    """An admin's decision on a deprovision held by the mass-change guard."""

    HELD = "HELD"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class RuleStatus(StrEnum):
    """A group rule's status, as Okta's."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    #: A group it names was deleted: it changes nothing until it is fixed and activated.
    INVALID = "INVALID"


class ImportStatus(StrEnum):
    """An app import: queued, reading the app, read and waiting for confirmation, confirmed,
    or failed (the app could not be read)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    #: Links asked for are being made by the engine.
    CONFIRMING = "CONFIRMING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


class UnmanagedState(StrEnum):
    """An account found in an app that no directory user owns."""

    UNMANAGED = "UNMANAGED"
    #: An admin said to leave it alone: it is listed, never touched.
    IGNORED = "IGNORED"
    #: Deactivation asked for; the engine sends it (or the guard holds it).
    DEACTIVATING = "DEACTIVATING"
    DEACTIVATED = "DEACTIVATED"
    #: An admin chose a user for it; the engine links it.
    LINKING = "LINKING"
    #: Linked to a directory user: it is that user's account now.
    LINKED = "LINKED"
