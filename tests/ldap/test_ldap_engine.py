"""The seed's recipe with an LDAP directory downstream: the engine, a real slapd, and the
directory read back by an independent ldap3 search after each convergence.

Accounting (Taylor, Alex, Sam) assigned, AppPushGroup (the same people) pushed; both orders of
taking Taylor out; one group both assigned and pushed; a rename of the pushed group (modrdn,
same entryUUID); unlinking with the group kept or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ldap3
import pytest
from sqlalchemy import select

from headwater.connectors.ldap import LOCKED
from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.slapd import DirectoryReader, Slapd
from headwater.testing.toolkit import (
    add_member,
    assign_group,
    change_status,
    converge,
    create_group,
    create_ldap_app,
    create_user,
    push_group,
    remove_member,
    rename_group,
    set_mapping_status,
    unassign_group,
    unlink_mapping,
    update_settings,
    update_user,
)

TAYLOR = "taylor.smith@example.com"
ALEX = "alex.jones@example.com"
SAM = "sam.lee@example.com"


@dataclass
class Seed:
    taylor: str
    alex: str
    sam: str
    accounting: str
    pushed: str
    app: str
    mapping: str


@pytest.fixture
def directory(fresh_slapd: Slapd) -> DirectoryReader:
    return DirectoryReader(fresh_slapd)


def seeded(
    runtime: Runtime,
    server: Slapd,
    directory: DirectoryReader,
    profile: Mapping[str, str] | None = None,
) -> Seed:
    people = [create_user(runtime, login) for login in (TAYLOR, ALEX, SAM)]
    accounting = create_group(runtime, "Accounting", people)
    pushed = create_group(runtime, "AppPushGroup", people)
    app = create_ldap_app(runtime, server, profile=profile)
    assign_group(runtime, app, accounting)
    mapping = push_group(runtime, app, pushed)
    converge(runtime)
    assert set(directory.people()) == {TAYLOR, ALEX, SAM}
    assert directory.members("AppPushGroup") == {TAYLOR, ALEX, SAM}
    taylor, alex, sam = people
    return Seed(taylor, alex, sam, accounting, pushed, app, mapping)


def assert_taylor_gone(directory: DirectoryReader) -> None:
    assert not directory.active(TAYLOR)
    assert directory.people()[TAYLOR]["pwdAccountLockedTime"] == [LOCKED]
    for _, members in directory.groups().values():
        assert TAYLOR not in members


def test_seed_recipe_creates_entries_and_pushes_the_group(
    runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    seeded(runtime, fresh_slapd, directory)
    taylor = directory.people()[TAYLOR]
    assert taylor["dn"] == [f"uid={TAYLOR},{fresh_slapd.people_base}"]
    assert taylor["givenName"] == ["Taylor"] and taylor["mail"] == [TAYLOR]
    if "memberof" in fresh_slapd.overlays:
        assert taylor["memberOf"] == [f"cn=AppPushGroup,{fresh_slapd.groups_base}"]
    converge(runtime)  # a second pass changes nothing
    assert directory.members("AppPushGroup") == {TAYLOR, ALEX, SAM}


def test_wrong_order_leaves_no_orphan_membership(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    runtime = sqlite_runtime
    seed = seeded(runtime, fresh_slapd, directory)
    remove_member(runtime, seed.accounting, seed.taylor)
    converge(runtime)
    assert_taylor_gone(directory)
    assert directory.members("AppPushGroup") == {ALEX, SAM}
    change_status(runtime, seed.taylor, "deactivate")
    converge(runtime)
    assert_taylor_gone(directory)
    assert directory.members("AppPushGroup") == {ALEX, SAM}


def test_right_order_gives_the_same_result(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    runtime = sqlite_runtime
    seed = seeded(runtime, fresh_slapd, directory)
    remove_member(runtime, seed.pushed, seed.taylor)
    converge(runtime)
    assert directory.members("AppPushGroup") == {ALEX, SAM}
    assert directory.active(TAYLOR)
    remove_member(runtime, seed.accounting, seed.taylor)
    converge(runtime)
    assert_taylor_gone(directory)
    # Reassigning reactivates the same entry (the lock goes, the entryUUID stays).
    before = directory.people()[TAYLOR]["entryUUID"]
    add_member(runtime, seed.accounting, seed.taylor)
    converge(runtime)
    assert directory.active(TAYLOR)
    assert directory.people()[TAYLOR]["entryUUID"] == before


def test_one_group_assigned_and_pushed(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    runtime = sqlite_runtime
    people = [create_user(runtime, login) for login in (TAYLOR, ALEX, SAM)]
    accounting = create_group(runtime, "Accounting", people)
    app = create_ldap_app(runtime, fresh_slapd)
    assign_group(runtime, app, accounting)
    push_group(runtime, app, accounting)
    converge(runtime)
    assert directory.members("Accounting") == {TAYLOR, ALEX, SAM}
    remove_member(runtime, accounting, people[0])
    converge(runtime)
    assert_taylor_gone(directory)
    assert directory.members("Accounting") == {ALEX, SAM}


def test_rename_keeps_the_entry_and_unlink_keep_or_delete(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    runtime = sqlite_runtime
    seed = seeded(runtime, fresh_slapd, directory)
    before = directory.groups()["AppPushGroup"][0]
    rename_group(runtime, seed.pushed, "Finance")
    converge(runtime)
    groups = directory.groups()
    assert set(groups) == {"Finance"} and groups["Finance"][0] == before
    assert groups["Finance"][1] == {TAYLOR, ALEX, SAM}
    unlink_mapping(runtime, seed.app, seed.mapping, delete_target=False)
    converge(runtime)
    assert directory.members("Finance") == {TAYLOR, ALEX, SAM}
    second = create_group(runtime, "Auditors", [seed.alex])
    mapping = push_group(runtime, seed.app, second)
    converge(runtime)
    assert directory.members("Auditors") == {ALEX}
    unlink_mapping(runtime, seed.app, mapping, delete_target=True)
    converge(runtime)
    assert "Auditors" not in directory.groups()


def test_deactivation_by_move_and_by_delete(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    runtime = sqlite_runtime
    people = [create_user(runtime, login) for login in (TAYLOR, ALEX)]
    accounting = create_group(runtime, "Accounting", people)
    moving = create_ldap_app(runtime, fresh_slapd, profile={"deactivation": "MOVE"})
    assign_group(runtime, moving, accounting)
    converge(runtime)
    remove_member(runtime, accounting, people[0])
    converge(runtime)
    assert directory.people()[TAYLOR]["dn"] == [f"uid={TAYLOR},{fresh_slapd.disabled_base}"]
    update_settings(runtime, moving, deprovision="DELETE")
    change_status(runtime, people[1], "deactivate")
    converge(runtime)
    assert ALEX not in directory.people()


def test_group_of_unique_names_end_to_end(
    runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    """Pushed as groupOfUniqueNames: created, members in uniqueMember, both unassign orders'
    removal, a rename, and a hand-made drift repaired."""
    seed = seeded(runtime, fresh_slapd, directory, {"group_class": "groupOfUniqueNames"})
    with fresh_slapd.connect() as conn:
        conn.search(fresh_slapd.groups_base, "(cn=AppPushGroup)", attributes=["*"])
        (group,) = conn.entries
        assert "groupOfUniqueNames" in group.objectClass.values
        assert "member" not in group.entry_attributes
        dn = group.entry_dn
    remove_member(runtime, seed.accounting, seed.taylor)
    converge(runtime)
    assert_taylor_gone(directory)
    assert directory.members("AppPushGroup") == {ALEX, SAM}
    rename_group(runtime, seed.pushed, "Finance")
    converge(runtime)
    assert directory.members("Finance") == {ALEX, SAM}
    # Someone adds Taylor back by hand: a full push (drift repair) takes the value out again.
    with fresh_slapd.connect() as conn:
        dn = dn.replace("cn=AppPushGroup", "cn=Finance")
        taylor = f"uid={TAYLOR},{fresh_slapd.people_base}"
        conn.modify(dn, {"uniqueMember": [(ldap3.MODIFY_ADD, [taylor])]})
    assert directory.members("Finance") == {TAYLOR, ALEX, SAM}
    set_mapping_status(runtime, seed.app, seed.mapping, "ACTIVE")
    converge(runtime)
    assert directory.members("Finance") == {ALEX, SAM}


def test_a_missing_entry_is_created_again_or_a_task(
    sqlite_runtime: Runtime, fresh_slapd: Slapd, directory: DirectoryReader
) -> None:
    """An entry deleted by hand behind Headwater's back: with the default onMissingEntry
    (RECREATE) the next change creates it again; with TASK the change stops with a Task."""
    runtime = sqlite_runtime
    alex, sam = (create_user(runtime, login) for login in (ALEX, SAM))
    group = create_group(runtime, "Accounting", [alex, sam])
    again = create_ldap_app(runtime, fresh_slapd, label="Again")
    assign_group(runtime, again, group)
    converge(runtime)
    with fresh_slapd.connect() as conn:
        conn.delete(f"uid={ALEX},{fresh_slapd.people_base}")
    update_user(runtime, alex, title="Auditor")
    converge(runtime)
    assert directory.people()[ALEX]["title"] == ["Auditor"]
    unassign_group(runtime, again, group)
    converge(runtime)
    tasked = create_ldap_app(runtime, fresh_slapd, label="Tasked", profile={"on_missing": "task"})
    assign_group(runtime, tasked, group)
    converge(runtime)
    with fresh_slapd.connect() as conn:
        conn.delete(f"uid={SAM},{fresh_slapd.people_base}")
    update_user(runtime, sam, title="Auditor")
    converge(runtime)
    assert SAM not in directory.people()
    with runtime.database.read() as session:
        tasks = session.execute(
            select(t.Task.subject_id, t.Task.message).where(t.Task.app_id == tasked)
        ).all()
    assert [subject for subject, _ in tasks] == [sam]
    assert "onMissingEntry is TASK" in tasks[0][1]
