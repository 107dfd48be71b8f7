"""Desired state from the directory: profile resolution and the account each user should hold."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.domain.desired import (
    DirectGrant,
    GroupGrant,
    UserFacts,
    desired_account,
    resolve_profile,
)
from headwater.domain.settings import ProvisioningSettings, SuspendAction

SALES = GroupGrant("00gB", "Sales", 5, {"role": "seller", "region": "EU"})
ADMINS = GroupGrant("00gA", "Admins", 1, {"role": "admin"})
TIED = GroupGrant("00gC", "Tied", 1, {"role": "tied"})
UNPROFILED = GroupGrant("00gD", "Bare", 0)

LEAVE = ProvisioningSettings()
DEACTIVATE = ProvisioningSettings(on_suspend=SuspendAction.DEACTIVATE)


@pytest.mark.parametrize(
    ("direct", "groups", "profile", "winner"),
    [
        pytest.param(None, [], {}, None, id="nothing"),
        pytest.param(None, [SALES], {"role": "seller", "region": "EU"}, SALES, id="one-group"),
        pytest.param(None, [SALES, ADMINS], {"role": "admin"}, ADMINS, id="lower-number-wins"),
        pytest.param(None, [ADMINS, SALES], {"role": "admin"}, ADMINS, id="order-free"),
        pytest.param(None, [TIED, ADMINS], {"role": "admin"}, ADMINS, id="tie-lower-id"),
        pytest.param(None, [SALES, UNPROFILED], {}, UNPROFILED, id="winner-empty-profile"),
        pytest.param(DirectGrant({"role": "own"}), [], {"role": "own"}, None, id="direct-only"),
        pytest.param(
            DirectGrant({"role": "own"}),
            [SALES],
            {"role": "own", "region": "EU"},
            SALES,
            id="direct-overrides-per-key",
        ),
        pytest.param(
            DirectGrant({}), [SALES, ADMINS], {"role": "admin"}, ADMINS, id="empty-direct"
        ),
    ],
)
def test_resolve_profile(
    direct: DirectGrant | None,
    groups: list[GroupGrant],
    profile: dict[str, Any],
    winner: GroupGrant | None,
) -> None:
    assert resolve_profile(direct, groups) == (profile, winner)


def test_resolved_profile_is_a_copy() -> None:
    profile, _ = resolve_profile(DirectGrant({"x": 1}), [SALES])
    profile["role"] = "changed"
    assert SALES.profile["role"] == "seller"


def _user(status: str) -> UserFacts:
    return UserFacts("00u1", status, {"login": "a@example.com"})


DIRECT = DirectGrant({"role": "own"}, user_name="own-name")


@pytest.mark.parametrize(
    ("user", "direct", "groups", "settings", "expected"),
    [
        pytest.param(None, DIRECT, (SALES,), LEAVE, (False, False, "USER", False), id="no-user"),
        pytest.param(_user("ACTIVE"), None, (), LEAVE, (False, False, None, False), id="no-grant"),
        pytest.param(_user("ACTIVE"), DIRECT, (), LEAVE, (True, True, "USER", False), id="direct"),
        pytest.param(
            _user("ACTIVE"), None, (SALES,), LEAVE, (True, True, "GROUP", False), id="group"
        ),
        pytest.param(
            _user("ACTIVE"), DIRECT, (SALES,), LEAVE, (True, True, "USER", False), id="both"
        ),
        *(
            pytest.param(
                _user(status), None, (SALES,), LEAVE, (True, True, "GROUP", False), id=status
            )
            for status in ("PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT")
        ),
        pytest.param(
            _user("STAGED"), DIRECT, (), LEAVE, (False, False, "USER", False), id="staged"
        ),
        pytest.param(
            _user("DEPROVISIONED"),
            None,
            (SALES,),
            LEAVE,
            (False, False, "GROUP", False),
            id="deprovisioned",
        ),
        pytest.param(
            _user("SUSPENDED"),
            None,
            (SALES,),
            LEAVE,
            (True, True, "GROUP", True),
            id="suspended-leave",
        ),
        pytest.param(
            _user("SUSPENDED"),
            None,
            (SALES,),
            DEACTIVATE,
            (True, False, "GROUP", False),
            id="suspended-deactivate",
        ),
        pytest.param(
            _user("SOMETHING_NEW"),
            DIRECT,
            (),
            LEAVE,
            (False, False, "USER", False),
            id="unknown-status",
        ),
    ],
)
def test_desired_account(
    user: UserFacts | None,
    direct: DirectGrant | None,
    groups: tuple[GroupGrant, ...],
    settings: ProvisioningSettings,
    expected: tuple[bool, bool, str | None, bool],
) -> None:
    account = desired_account(user, direct, groups, settings)
    assert (account.assigned, account.active, account.scope, account.leave_alone) == expected
    assert (account.direct, account.groups) == (direct, groups)


def test_desired_account_carries_the_resolved_profile_and_winner() -> None:
    account = desired_account(_user("ACTIVE"), DIRECT, (SALES, ADMINS), LEAVE)
    assert account.app_profile == {"role": "own"}
    assert account.winning_group == ADMINS
    grouped = desired_account(_user("ACTIVE"), None, (SALES,), LEAVE)
    assert (grouped.app_profile, grouped.winning_group) == (SALES.profile, SALES)
