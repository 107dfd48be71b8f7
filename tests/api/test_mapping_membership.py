"""``isMemberOf…`` in attribute mappings: a membership change (by hand, by a group rule, a
rename, a deletion) re-enqueues exactly the keys of the users whose membership changed, in the
apps whose mapping reads that group, in the same transaction; and the downstream follows."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    add_member,
    assign_group,
    clear_keys,
    create_app,
    create_group,
    create_rule,
    create_user,
    ok,
    queued_keys,
    queued_subjects,
    remove_member,
)

TITLE = 'isMemberOfGroupName("Admins") ? "Administrator" : user.title'


def _map(client: TestClient, app_id: str, expression: str = TITLE) -> None:
    body = {"properties": {"title": {"expression": expression, "pushStatus": "PUSH"}}}
    ok(client.post(f"/api/v1/mappings/{app_id}", json=body))


def test_membership_changes_enqueue_exactly_the_affected_keys(
    client: TestClient, runtime: Runtime
) -> None:
    ann, bob, cat = (create_user(runtime, f"{n}@example.com", title="Clerk") for n in "abc")
    admins = create_group(runtime, "Admins")
    other = create_group(runtime, "Other")
    reading = create_app(runtime, "Reads")
    plain = create_app(runtime, "Plain")
    assign_group(runtime, reading, create_group(runtime, "Staff", [ann, bob]))
    assign_group(runtime, plain, create_group(runtime, "Plain staff", [ann, bob, cat]))
    _map(client, reading)
    clear_keys(runtime)

    add_member(runtime, admins, ann)
    assert queued_keys(runtime) == {(reading, "user", ann)}
    clear_keys(runtime)
    add_member(runtime, admins, cat)  # not a user of the reading app
    assert queued_keys(runtime) == set()
    add_member(runtime, other, bob)  # a group no mapping reads
    assert queued_keys(runtime) == set()
    remove_member(runtime, admins, ann)
    assert queued_keys(runtime) == {(reading, "user", ann)}
    clear_keys(runtime)

    # By id, through a group rule, and on a rename into the name read.
    _map(client, reading, f'isMemberOfGroup("{other}") ? "Other" : user.title')
    clear_keys(runtime)
    create_rule(runtime, "clerks", 'user.title == "Clerk"', [other])
    assert queued_subjects(runtime, reading) == {ann}  # bob was already a member
    _map(client, reading)
    clear_keys(runtime)
    ok(client.put(f"/api/v1/groups/{other}", json={"profile": {"name": "Admins-not"}}))
    assert queued_keys(runtime) == set()
    ok(client.delete(f"/api/v1/groups/{admins}"), 204)  # no members: nothing to enqueue
    assert queued_keys(runtime) == set()
    ok(client.put(f"/api/v1/groups/{other}", json={"profile": {"name": "Admins"}}))
    assert queued_subjects(runtime, reading) == {ann, bob}
    assert queued_subjects(runtime, plain) == set()
    clear_keys(runtime)
    ok(client.delete(f"/api/v1/groups/{other}"), 204)  # its members lose the membership read
    assert queued_subjects(runtime, reading) == {ann, bob}
    assert queued_subjects(runtime, plain) == set()
