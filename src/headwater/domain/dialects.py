"""SCIM dialects: how one app wants to be spoken to, as data.

RFC 7644 leaves room (which PATCH forms a server takes, whether it returns group members, how
many changes one request may hold), and real apps use it differently. A dialect is one frozen
set of switches; an admin names a profile per app (``dialect`` in its provisioning settings)
or picks ``custom`` and sets each switch. The SCIM connector is the only reader of a
dialect: the engine plans the same operations whatever the app speaks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from headwater.domain.capabilities import Capabilities, PatchSupport

__all__ = [
    "PROFILES",
    "BooleanEncoding",
    "Dialect",
    "DialectName",
    "GroupWrites",
    "MemberCheck",
    "MemberRemoval",
    "OpCase",
    "drift_repair",
    "effective",
]

#: Most membership changes one request may carry, whatever the app says.
MAX_CHANGES = 1000


class DialectName(StrEnum):
    RFC7644 = "rfc7644"
    AWS_IDENTITY_CENTER = "aws-identity-center"
    ENTRA_STYLE = "entra-style"
    PUT_ONLY_GROUPS = "put-only-groups"
    CUSTOM = "custom"


class GroupWrites(StrEnum):
    """How group memberships are changed: PATCH operations, or a PUT of the whole group."""

    PATCH = "PATCH"
    PUT = "PUT"


class MemberRemoval(StrEnum):
    """``filter``: ``path: members[value eq "id"]`` per member (RFC 7644 §3.5.2.2);
    ``value-list``: ``path: members`` with ``value: [{"value": id}, ...]`` (Entra ID's form)."""

    FILTER = "filter"
    VALUE_LIST = "value-list"


class MemberCheck(StrEnum):
    """How to learn whether one account is in a group when the app hides members on read.

    ``none``: it cannot be learned; ``group-filter``: ``GET /Groups?filter=id eq "G" and
    members eq "U"`` answers the group when the account is in it (AWS IAM Identity Center
    documents this filter for exactly that use); ``user-groups``: ``GET
    /Users/{id}?attributes=groups`` lists the account's groups (RFC 7643 §4.1.2), one request
    for every pushed group at once."""

    NONE = "none"
    GROUP_FILTER = "group-filter"
    USER_GROUPS = "user-groups"


class OpCase(StrEnum):
    """PATCH ``op`` spelling: ``add`` (RFC 7644) or ``Add`` (as Entra ID sends it)."""

    LOWER = "lower"
    CAPITALISED = "capitalised"


class BooleanEncoding(StrEnum):
    """Booleans in PATCH values: JSON ``true``, or the strings ``"True"``/``"False"``."""

    JSON = "json"
    STRING = "string"


@dataclass(frozen=True)
class Dialect:
    """Every switch that shapes the requests sent to one app."""

    name: DialectName = DialectName.RFC7644
    group_writes: GroupWrites = GroupWrites.PATCH
    #: How accounts are changed: PATCH, or (once the app is known to refuse PATCH) a PUT of the
    #: whole account as read.
    user_writes: GroupWrites = GroupWrites.PATCH
    #: Whether ``GET /Groups/{id}`` returns ``members`` (when it does not, they are unknown).
    members_returned: bool = True
    #: Whether a whole membership may be overwritten (PATCH ``replace`` of ``members``).
    members_replace: bool = True
    member_removal: MemberRemoval = MemberRemoval.FILTER
    op_case: OpCase = OpCase.LOWER
    booleans: BooleanEncoding = BooleanEncoding.JSON
    #: Most membership changes in one PATCH (the app's cap; the batch size setting may go lower).
    max_changes: int = MAX_CHANGES
    #: How membership of one account is checked when members are hidden (drift repair).
    member_check: MemberCheck = MemberCheck.NONE


#: The named profiles, each following one vendor's documentation (docs/compatibility.md).
PROFILES: dict[DialectName, Dialect] = {
    DialectName.RFC7644: Dialect(),
    DialectName.AWS_IDENTITY_CENTER: Dialect(
        name=DialectName.AWS_IDENTITY_CENTER,
        members_returned=False,
        members_replace=False,
        max_changes=100,
        member_check=MemberCheck.GROUP_FILTER,
    ),
    DialectName.ENTRA_STYLE: Dialect(
        name=DialectName.ENTRA_STYLE,
        member_removal=MemberRemoval.VALUE_LIST,
        op_case=OpCase.CAPITALISED,
    ),
    DialectName.PUT_ONLY_GROUPS: Dialect(
        name=DialectName.PUT_ONLY_GROUPS, group_writes=GroupWrites.PUT
    ),
}


def effective(dialect: Dialect, capabilities: Capabilities, patch: PatchSupport) -> Dialect:
    """The dialect as it is spoken: groups and accounts go by PUT once PATCH is known to be
    unsupported (announced by the app or learned from a 501), unless an admin says otherwise."""
    supported = capabilities.patch if patch is PatchSupport.ANNOUNCED else None
    if patch is PatchSupport.UNSUPPORTED or supported is False:
        return replace(dialect, group_writes=GroupWrites.PUT, user_writes=GroupWrites.PUT)
    return dialect


def drift_repair(dialect: Dialect) -> bool:
    """Whether a full reconcile can undo changes made to a pushed group downstream: it can read
    the members back, overwrite them all (PUT, or a PATCH replace), or check the accounts it
    manages one by one."""
    return (
        dialect.members_returned
        or dialect.group_writes is GroupWrites.PUT
        or dialect.members_replace
        or dialect.member_check is not MemberCheck.NONE
    )
