"""The engine with Active Directory downstream (a real Samba AD DC): a group of users assigned,
a group pushed, a user deactivated, each outcome read back by an independent LDAP search."""

from __future__ import annotations

from typing import Any

from headwater.connectors.ad import ACCOUNTDISABLE, guid_text
from headwater.connectors.outbound import OutboundPolicy
from headwater.runtime import Runtime
from headwater.testing.samba import SambaDC
from headwater.testing.toolkit import (
    assign_group,
    change_status,
    converge,
    create_group,
    create_ldap_app,
    create_user,
    push_group,
)

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
SAM = "sam.lee@example.com"


def people(samba: SambaDC, ou: str) -> dict[str, dict[str, Any]]:
    """sAMAccountName -> the user's DN, objectGUID, userAccountControl and uSNChanged."""
    found: dict[str, dict[str, Any]] = {}
    with samba.connect() as conn:
        conn.search(
            f"OU=people,{ou}",
            "(objectClass=user)",
            attributes=["sAMAccountName", "objectGUID", "userAccountControl", "uSNChanged"],
        )
        for entry in conn.response or []:
            if entry["type"] != "searchResEntry":
                continue
            attributes = entry["attributes"]
            found[str(attributes["sAMAccountName"][0])] = {
                "dn": entry["dn"],
                "guid": guid_text(bytes(entry["raw_attributes"]["objectGUID"][0])),
                "uac": int(attributes["userAccountControl"][0]),
                "usn": int(attributes["uSNChanged"][0]),
            }
    return found


def group(samba: SambaDC, ou: str, name: str) -> tuple[set[str], int]:
    """The member DNs (lower case) of the group named ``name`` and its uSNChanged."""
    with samba.connect() as conn:
        conn.search(
            f"OU=groups,{ou}",
            f"(&(objectClass=group)(cn={name}))",
            attributes=["member;range=0-*", "uSNChanged"],
        )
        entry = next(e for e in conn.response or [] if e["type"] == "searchResEntry")
        raw = entry["raw_attributes"]
        members: list[bytes] = next(
            (v for k, v in raw.items() if k.lower().startswith("member;")), []
        )
        usn = int(entry["attributes"]["uSNChanged"][0])
        return {bytes(m).decode().lower() for m in members}, usn


def test_assign_push_and_deactivate_in_active_directory(
    sqlite_runtime: Runtime, samba: SambaDC, ad_ou: str
) -> None:
    runtime = sqlite_runtime
    # The tests' policy allows 127.0.0.1; this worker's domain controller has its own address.
    runtime.connectors.policy = OutboundPolicy.from_text(f"127.0.0.1/32,{samba.address}/32")
    users = [create_user(runtime, login) for login in (TAYLOR, ALEX, SAM)]
    accounting = create_group(runtime, "Accounting", users)
    pushed = create_group(runtime, "AppPushGroup", users)
    app = create_ldap_app(
        runtime,
        samba,
        profile={
            "people_base": f"OU=people,{ad_ou}",
            "groups_base": f"OU=groups,{ad_ou}",
            "disabled_base": f"OU=disabled,{ad_ou}",
        },
    )
    assign_group(runtime, app, accounting)
    push_group(runtime, app, pushed)
    converge(runtime)

    seen = people(samba, ad_ou)
    assert set(seen) == {"taylor.smith", "alex.jones", "sam.lee"}
    assert all(not p["uac"] & ACCOUNTDISABLE for p in seen.values())
    assert seen["taylor.smith"]["dn"] == f"CN={TAYLOR},OU=people,{ad_ou}"
    members, _ = group(samba, ad_ou, "AppPushGroup")
    assert members == {p["dn"].lower() for p in seen.values()}
    converge(runtime)  # a second pass changes nothing
    assert people(samba, ad_ou) == seen

    change_status(runtime, users[0], "deactivate")
    converge(runtime)
    after = people(samba, ad_ou)
    taylor = after["taylor.smith"]
    assert taylor["uac"] & ACCOUNTDISABLE and taylor["guid"] == seen["taylor.smith"]["guid"]
    assert taylor["uac"] & ~ACCOUNTDISABLE == seen["taylor.smith"]["uac"]  # other bits kept
    assert not after["alex.jones"]["uac"] & ACCOUNTDISABLE
    members, group_usn = group(samba, ad_ou, "AppPushGroup")
    assert members == {after[n]["dn"].lower() for n in ("alex.jones", "sam.lee")}
    # The directory's own change counter orders the writes: the membership went first.
    assert group_usn < taylor["usn"]
