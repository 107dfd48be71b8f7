"""An app's provisioning settings: Okta's feature switches plus Headwater's extensions.

Vendor quirks live here as data (PUT-only groups, members not returned, batch caps), never as
code branches in the connector or the planner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any, get_type_hints

from headwater.domain.mapping import check_user_name_template
from headwater.errors import InvalidRequest

__all__ = [
    "Deprovision",
    "MembershipMethod",
    "ProvisioningSettings",
    "SuspendAction",
    "UpdateMethod",
    "check_changes",
    "public_name",
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


class MembershipMethod(StrEnum):
    PATCH = "PATCH"
    PUT = "PUT"


MAX_BATCH_SIZE = 1000


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
    membership_method: MembershipMethod = MembershipMethod.PATCH
    membership_batch_size: int = 100
    #: False for apps whose ``GET /Groups/{id}`` never returns ``members``.
    group_members_returned: bool = True
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

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ProvisioningSettings:
        """Build from stored JSON, ignoring unknown keys so old rows keep loading."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        settings = replace(cls(), **values)
        return replace(
            settings,
            update_method=UpdateMethod(settings.update_method),
            deprovision=Deprovision(settings.deprovision),
            on_suspend=SuspendAction(settings.on_suspend),
            membership_method=MembershipMethod(settings.membership_method),
        )


def public_name(field_name: str) -> str:
    """A setting's name in the API, the console and the docs (camelCase)."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: Inclusive bounds for numeric settings (None: unbounded on that side).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "membership_batch_size": (1, MAX_BATCH_SIZE),
    "max_concurrency": (1, None),
    "rate_limit_per_second": (0, None),
    "mass_change_threshold": (0, 1),
    "full_reconcile_interval": (0, None),
}


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
        return value
    numeric = (int,) if kind is int else (int, float)
    if not isinstance(value, numeric) or isinstance(value, bool) or not math.isfinite(value):
        raise _refuse(f"{where}: must be {'an integer' if kind is int else 'a number'}")
    low, high = BOUNDS.get(name, (None, None))
    if low is not None and value < low:
        raise _refuse(f"{where}: must be at least {low}")
    if high is not None and value > high:
        raise _refuse(f"{where}: must be at most {high}")
    return value


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
    return checked
