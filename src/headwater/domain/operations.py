"""The downstream operations a plan is made of.

Each key's plan lists its operations in the order they are sent (an account's membership
removals before its deactivation). Across keys, ``rank`` gives the order a whole preview is
shown in: creates, group creates, member adds, member removals, deactivations, deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater.domain.downstream import AccountAttributes, GroupState

__all__ = [
    "AddMembers",
    "CreateAccount",
    "DeleteAccount",
    "DeleteGroup",
    "EnsureGroup",
    "Operation",
    "RemoveMembers",
    "RenameGroup",
    "ReplaceMembers",
    "SetActive",
    "UpdateAccount",
    "rank",
]


@dataclass(frozen=True)
class CreateAccount:
    """Find the account by userName and link it, else create it."""

    user_id: str
    attributes: AccountAttributes


@dataclass(frozen=True)
class UpdateAccount:
    user_id: str
    external_id: str
    attributes: AccountAttributes


@dataclass(frozen=True)
class SetActive:
    """Reactivate (True) or deactivate (False) an existing account, keeping its id."""

    user_id: str
    external_id: str
    active: bool
    attributes: AccountAttributes | None = None


@dataclass(frozen=True)
class DeleteAccount:
    user_id: str
    external_id: str


@dataclass(frozen=True)
class EnsureGroup:
    """Link the downstream group with this displayName, else create it."""

    mapping_id: str
    display_name: str


@dataclass(frozen=True)
class RenameGroup:
    mapping_id: str
    group_external_id: str
    display_name: str


@dataclass(frozen=True)
class AddMembers:
    mapping_id: str
    group_external_id: str
    #: (user id, account external id) pairs.
    members: tuple[tuple[str, str], ...]
    #: The group as wanted after the change (for apps that take only a whole group).
    whole: GroupState | None = None


@dataclass(frozen=True)
class RemoveMembers:
    mapping_id: str
    group_external_id: str
    #: (user id or None for an unknown downstream member, account external id) pairs.
    members: tuple[tuple[str | None, str], ...]
    #: Sent for a leaving account: if it keeps failing, the account goes anyway (offboarding
    #: wins) and the membership is left stale, for the push mapping to remove later.
    offboarding: bool = False
    #: The group as wanted after the change (for apps that take only a whole group).
    whole: GroupState | None = None


@dataclass(frozen=True)
class ReplaceMembers:
    """Overwrite the whole membership (push now, activation, apps that cannot diff)."""

    mapping_id: str
    group_external_id: str
    display_name: str
    members: tuple[tuple[str, str], ...]
    #: Account external ids recorded as pushed (an app that refuses a whole replace gets these
    #: removed when no longer wanted, and the wanted ones added).
    recorded: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteGroup:
    mapping_id: str
    group_external_id: str


Operation = (
    CreateAccount
    | UpdateAccount
    | SetActive
    | DeleteAccount
    | EnsureGroup
    | RenameGroup
    | AddMembers
    | RemoveMembers
    | ReplaceMembers
    | DeleteGroup
)

_RANKS: dict[type[Any], int] = {
    CreateAccount: 0,
    UpdateAccount: 1,
    EnsureGroup: 2,
    RenameGroup: 3,
    ReplaceMembers: 4,
    AddMembers: 4,
    RemoveMembers: 5,
    DeleteAccount: 7,
    DeleteGroup: 8,
}


def rank(operation: Operation) -> int:
    """Sort key: creates, group creates, member adds, member removals, deactivations, deletes."""
    if isinstance(operation, SetActive):
        return 1 if operation.active else 6
    return _RANKS[type(operation)]


def describe(operation: Operation) -> dict[str, Any]:
    """A JSON-ready description (for the plan endpoint and the console)."""
    match operation:
        case CreateAccount(user_id, attributes):
            return {"op": "CREATE_ACCOUNT", "userId": user_id, "userName": attributes.user_name}
        case UpdateAccount(user_id, external_id, attributes):
            return {
                "op": "UPDATE_ACCOUNT",
                "userId": user_id,
                "externalId": external_id,
                "userName": attributes.user_name,
            }
        case SetActive(user_id, external_id, active, _):
            return {
                "op": "REACTIVATE_ACCOUNT" if active else "DEACTIVATE_ACCOUNT",
                "userId": user_id,
                "externalId": external_id,
            }
        case DeleteAccount(user_id, external_id):
            return {"op": "DELETE_ACCOUNT", "userId": user_id, "externalId": external_id}
        case EnsureGroup(mapping_id, display_name):
            return {"op": "CREATE_OR_LINK_GROUP", "mappingId": mapping_id, "name": display_name}
        case RenameGroup(mapping_id, group_external_id, display_name):
            return {
                "op": "RENAME_GROUP",
                "mappingId": mapping_id,
                "groupExternalId": group_external_id,
                "name": display_name,
            }
        case AddMembers(mapping_id, group_external_id, members):
            return {
                "op": "ADD_MEMBERS",
                "mappingId": mapping_id,
                "groupExternalId": group_external_id,
                "userIds": [m[0] for m in members],
            }
        case RemoveMembers(mapping_id, group_external_id, members):
            return {
                "op": "REMOVE_MEMBERS",
                "mappingId": mapping_id,
                "groupExternalId": group_external_id,
                "userIds": [m[0] for m in members],
                "externalIds": [m[1] for m in members],
            }
        case ReplaceMembers(mapping_id, group_external_id, _, members, _):
            return {
                "op": "REPLACE_MEMBERS",
                "mappingId": mapping_id,
                "groupExternalId": group_external_id,
                "userIds": [m[0] for m in members],
            }
        case DeleteGroup(mapping_id, group_external_id):
            return {
                "op": "DELETE_GROUP",
                "mappingId": mapping_id,
                "groupExternalId": group_external_id,
            }
    raise TypeError(operation)  # pragma: no cover
