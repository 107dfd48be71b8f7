"""An app's provisioning settings: Okta's feature switches plus Headwater's extensions.

Vendor quirks live here as data (PUT-only groups, members not returned, batch caps), never as
code branches in the connector or the planner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, get_type_hints

from headwater.domain.capabilities import BulkSupport, PatchSupport
from headwater.domain.dialects import (
    MAX_CHANGES,
    PROFILES,
    BooleanEncoding,
    Dialect,
    DialectName,
    GroupWrites,
    MemberCheck,
    MemberRemoval,
    OpCase,
)
from headwater.domain.mapping import check_user_name_template
from headwater.domain.matching import check_rules
from headwater.domain.storable import check_text
from headwater.errors import InvalidRequest

__all__ = [
    "Deprovision",
    "MembershipMethod",
    "ProvisioningSettings",
    "SuspendAction",
    "UpdateMethod",
    "check_changes",
    "public_name",
    "with_changes",
]


class UpdateMethod(StrEnum):
    PUT = "PUT"
    PATCH = "PATCH"


class Deprovision(StrEnum):
    DEACTIVATE = "DEACTIVATE"
    DELETE = "DELETE"


class SuspendAction(StrEnum):
    LEAVE = "LEAVE"
    DEACTIVATE = "DEACTIVATE"


#: The ``membershipMethod`` switch of a dialect.
MembershipMethod = GroupWrites

MAX_BATCH_SIZE = MAX_CHANGES
#: Most userNames one batched look-up asks for (its filter and URL stay a few kilobytes).
MAX_LOOKUP_BATCH = 200


@dataclass(frozen=True)
class ProvisioningSettings:
    """Everything that shapes what Headwater sends to one app."""

    # Okta's To-App switches (USER_PROVISIONING feature).
    create_users: bool = True
    update_users: bool = True
    deactivate_users: bool = True
    reactivate_users: bool = True
    group_push: bool = True
    # Headwater extensions.
    user_name_template: str = "${source.login}"
    update_method: UpdateMethod = UpdateMethod.PUT
    deprovision: Deprovision = Deprovision.DEACTIVATE
    on_suspend: SuspendAction = SuspendAction.LEAVE
    #: The SCIM dialect the app speaks: a named profile, or ``custom`` (the switches below).
    dialect: DialectName = DialectName.RFC7644
    # The dialect's switches (read only for ``custom``; a named profile writes its own values).
    membership_method: GroupWrites = GroupWrites.PATCH
    #: False for apps whose ``GET /Groups/{id}`` never returns ``members``.
    group_members_returned: bool = True
    #: False for apps that refuse a whole-membership replace (PATCH ``replace`` of ``members``).
    members_replace: bool = True
    member_removal: MemberRemoval = MemberRemoval.FILTER
    patch_op_case: OpCase = OpCase.LOWER
    boolean_encoding: BooleanEncoding = BooleanEncoding.JSON
    #: How one account's membership is checked when the app hides members (drift repair).
    member_check: MemberCheck = MemberCheck.NONE
    #: Overrides the app's announced ``patch.supported`` (an announcement can be wrong).
    patch_support: PatchSupport = PatchSupport.ANNOUNCED
    membership_batch_size: int = 100
    #: userNames one look-up asks for at once (``userName eq "a" or userName eq "b"``) before
    #: the accounts of a batch are created; 0 looks each one up alone.
    lookup_batch_size: int = 0
    #: Look a new account up before creating it. False creates first and looks up only on a
    #: 409 (for apps that enforce unique userNames, as RFC 7644 requires): one request per new
    #: account instead of two. Not for LDAP apps (their uniqueness is the DN's, not the
    #: matching attribute's).
    lookup_before_create: bool = True
    #: Overrides the app's announced ``bulk.supported``: writes go in SCIM Bulk requests when
    #: the app takes them.
    bulk_support: BulkSupport = BulkSupport.ANNOUNCED
    #: Remove members of pushed groups that belong to no account Headwater manages (else only
    #: report them as orphans).
    remove_unknown_members: bool = False
    #: Delete the downstream group when its source group is deleted (else leave it).
    delete_group_with_source: bool = False
    max_concurrency: int = 8
    #: Requests per second to this app across all workers; 0 means unlimited.
    rate_limit_per_second: float = 0.0
    #: Hold deprovisions above this share of the app's accounts for approval (0 disables).
    mass_change_threshold: float = 0.2
    #: ...but only once at least this many accounts would go (small apps are not guarded).
    mass_change_minimum: int = 10
    #: Seconds between periodic full reconciles; 0 disables the schedule.
    full_reconcile_interval: int = 3600
    #: Seconds to open a connection to the app.
    connect_timeout: float = 10.0
    #: Seconds one request may take in all (connect, send, wait, read), whatever the app does.
    request_timeout: float = 60.0
    #: Seconds a leaving account's membership removals may keep failing before the account is
    #: deactivated anyway (the memberships are then reported stale and retried).
    offboarding_deadline: int = 300
    #: App imports: the matching rules, in order, comma-separated (``domain.matching``).
    import_matching: str = "userName,email"
    #: App imports: link exact matches as soon as the import has read the app.
    import_auto_confirm: bool = False
    #: Most membership checks (requests) one reconcile pass sends to an app that hides group
    #: members; a larger group is checked a sample at a time over several passes.
    member_check_budget: int = 200
    #: A full reconcile reads accounts back from one paged listing of the app, shared by the
    #: pass, where the connector can list (else one read per account).
    list_reads: bool = True

    def switches(self) -> Dialect:
        """The dialect this app is spoken to in (read by the SCIM connector only)."""
        if self.dialect is not DialectName.CUSTOM:
            return PROFILES[self.dialect]
        return Dialect(
            name=DialectName.CUSTOM,
            group_writes=GroupWrites(self.membership_method),
            members_returned=self.group_members_returned,
            members_replace=self.members_replace,
            member_removal=MemberRemoval(self.member_removal),
            op_case=OpCase(self.patch_op_case),
            booleans=BooleanEncoding(self.boolean_encoding),
            member_check=MemberCheck(self.member_check),
        )

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ProvisioningSettings:
        """Build from stored JSON. Unknown keys are ignored so old rows keep loading; a stored
        value out of bounds is brought into them and one of the wrong type falls back to the
        default, so no stored row can stop the engine."""
        kinds = get_type_hints(cls)
        defaults = cls()
        values: dict[str, Any] = {}
        for name, value in (data or {}).items():
            if name not in kinds:
                continue
            try:
                values[name] = _checked(name, kinds[name], _clamped(name, value))
            except InvalidRequest:
                values[name] = getattr(defaults, name)
        if "dialect" not in values and any(
            values.get(n, getattr(defaults, n)) != getattr(defaults, n) for n in SWITCHES
        ):
            # Rows written before dialects existed: their switches were the dialect.
            values["dialect"] = DialectName.CUSTOM
        return replace(defaults, **values)


#: The settings that are a dialect's switches (see ``domain.dialects``).
SWITCHES = (
    "membership_method",
    "group_members_returned",
    "members_replace",
    "member_removal",
    "patch_op_case",
    "boolean_encoding",
    "member_check",
)


def _profile_values(dialect: Dialect) -> dict[str, Any]:
    return {
        "membership_method": dialect.group_writes,
        "group_members_returned": dialect.members_returned,
        "members_replace": dialect.members_replace,
        "member_removal": dialect.member_removal,
        "patch_op_case": dialect.op_case,
        "boolean_encoding": dialect.booleans,
        "member_check": dialect.member_check,
    }


def with_changes(before: ProvisioningSettings, changes: Mapping[str, Any]) -> ProvisioningSettings:
    """Apply checked changes. Naming a profile writes its switches (so ``custom`` later starts
    from them); changing a switch makes the dialect ``custom``; both at once is refused unless
    the dialect named is ``custom``."""
    values = dict(changes)
    switched = sorted(public_name(n) for n in values if n in SWITCHES)
    named = values.get("dialect")
    if named is not None and named is not DialectName.CUSTOM:
        if switched:
            raise _refuse(
                f"{', '.join(switched)}: can only be set with dialect custom (dialect {named} "
                "sets its own)"
            )
        values.update(_profile_values(PROFILES[named]))
    elif switched:
        values["dialect"] = DialectName.CUSTOM
    return replace(before, **values)


def public_name(field_name: str) -> str:
    """A setting's name in the API, the console and the docs (camelCase)."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: Inclusive bounds of every numeric setting (documented in docs/api.md).
BOUNDS: dict[str, tuple[float, float]] = {
    "membership_batch_size": (1, MAX_BATCH_SIZE),
    "lookup_batch_size": (0, MAX_LOOKUP_BATCH),
    "max_concurrency": (1, 256),
    "rate_limit_per_second": (0, 10_000),
    "mass_change_threshold": (0, 1),
    "mass_change_minimum": (0, 1_000_000),
    "full_reconcile_interval": (0, 31_536_000),
    "connect_timeout": (1, 60),
    "request_timeout": (1, 600),
    "offboarding_deadline": (5, 86_400),
    "member_check_budget": (0, 100_000),
}
#: Numeric settings where 0 means "off" and any other value must reach this minimum.
OFF_OR_AT_LEAST: dict[str, float] = {"full_reconcile_interval": 60}
#: Longest text setting.
MAX_TEXT = 1024


def _clamped(name: str, value: Any) -> Any:
    """A stored number brought into its bounds (rows written before the bounds existed)."""
    if name not in BOUNDS or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if not math.isfinite(value):
        return value
    low, high = BOUNDS[name]
    value = min(max(value, low), high)
    floor = OFF_OR_AT_LEAST.get(name)
    if floor is not None and 0 < value < floor:
        value = floor
    return int(value) if isinstance(getattr(ProvisioningSettings(), name), int) else value


def _refuse(cause: str) -> InvalidRequest:
    return InvalidRequest("Api validation failed: " + cause, [cause])


def _checked(name: str, kind: Any, value: Any) -> Any:
    """One value against the setting's type and bounds (strictly: no coercion)."""
    where = public_name(name)
    if kind is bool:
        if not isinstance(value, bool):
            raise _refuse(f"{where}: must be true or false")
        return value
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        allowed = [member.value for member in kind]
        if value not in allowed:
            raise _refuse(f"{where}: must be one of {', '.join(allowed)}")
        return kind(value)
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise _refuse(f"{where}: must be a string")
        if len(value) > MAX_TEXT:
            raise _refuse(f"{where}: must be at most {MAX_TEXT} characters")
        problem = check_text(value)
        if problem:
            raise _refuse(f"{where}: {problem}")
        return value
    numeric = (int,) if kind is int else (int, float)
    if not isinstance(value, numeric) or isinstance(value, bool) or not math.isfinite(value):
        raise _refuse(f"{where}: must be {'an integer' if kind is int else 'a number'}")
    low, high = BOUNDS[name]
    if value < low:
        raise _refuse(f"{where}: must be at least {_number(low)}")
    if value > high:
        raise _refuse(f"{where}: must be at most {_number(high)}")
    floor = OFF_OR_AT_LEAST.get(name)
    if floor is not None and 0 < value < floor:
        raise _refuse(f"{where}: must be 0 (off) or at least {_number(floor)}")
    return float(value) if kind is float else value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validated changes keyed by field name; unknown names and bad values are Okta's 400
    naming the setting by its public name."""
    kinds = get_type_hints(ProvisioningSettings)
    unknown = sorted(public_name(n) for n in changes if n not in kinds)
    if unknown:
        raise _refuse(f"{', '.join(unknown)}: unknown setting")
    checked = {name: _checked(name, kinds[name], value) for name, value in changes.items()}
    if "user_name_template" in checked:
        check_user_name_template(checked["user_name_template"], "userNameTemplate")
    if "import_matching" in checked:
        problem = check_rules(checked["import_matching"])
        if problem:
            raise _refuse(f"importMatching: {problem}")
    return checked
