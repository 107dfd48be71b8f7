"""Property, with an LDAP directory downstream: whatever membership changes and status changes
happen, in whatever order, once the worker has drained the directory equals the desired state:
one entry per user ever assigned, active exactly while the user is active and in the assigned
group, and the pushed group holding exactly its members who have an active entry.

Each example gets a fresh runtime (SQLite) and a fresh slapd, so the examples are few.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.testing.slapd import DirectoryReader, Slapd
from headwater.testing.toolkit import (
    add_member,
    assign_group,
    change_status,
    converge,
    create_group,
    create_ldap_app,
    create_user,
    make_runtime,
    push_group,
    remove_member,
)

NAMES = ("alpha@example.org", "beta@example.org", "gamma@example.org")
EXAMPLES = int(os.environ.get("HEADWATER_LDAP_PROPERTY_EXAMPLES", "4"))

who = st.integers(0, len(NAMES) - 1)
which = st.sampled_from(["assigned", "pushed"])
actions = st.lists(
    st.one_of(
        st.tuples(st.just("add"), which, who),
        st.tuples(st.just("remove"), which, who),
        st.tuples(st.just("deactivate"), st.just(""), who),
        st.tuples(st.just("activate"), st.just(""), who),
        st.tuples(st.just("converge"), st.just(""), st.just(0)),
    ),
    max_size=8,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=actions)
def test_any_sequence_converges_to_the_desired_directory(
    slapd_for_properties: None, steps: list[tuple[str, str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as folder, Slapd() as server:
        runtime = make_runtime(f"sqlite:///{Path(folder) / 'hw.db'}", Path(folder))
        try:
            users = [create_user(runtime, name) for name in NAMES]
            groups = {
                "assigned": create_group(runtime, "Assigned", users[:2]),
                "pushed": create_group(runtime, "Pushed", users[1:]),
            }
            members = {"assigned": {0, 1}, "pushed": {1, 2}}
            active = {0, 1, 2}
            ever = {0, 1}
            app = create_ldap_app(runtime, server)
            assign_group(runtime, app, groups["assigned"])
            push_group(runtime, app, groups["pushed"])
            for step, group, index in steps:
                if step == "add" and index not in members[group]:
                    add_member(runtime, groups[group], users[index])
                    members[group].add(index)
                elif step == "remove" and index in members[group]:
                    remove_member(runtime, groups[group], users[index])
                    members[group].discard(index)
                elif step == "deactivate" and index in active:
                    change_status(runtime, users[index], "deactivate")
                    active.discard(index)
                elif step == "activate" and index not in active:
                    change_status(runtime, users[index], "activate")
                    active.add(index)
                elif step == "converge":
                    converge(runtime)
                ever |= members["assigned"] & active
            converge(runtime)
            directory = DirectoryReader(server)
            people = directory.people()
            assert set(people) <= {NAMES[i] for i in ever}
            wanted = {NAMES[i] for i in members["assigned"] & active}
            assert {uid for uid in people if directory.active(uid)} == wanted
            assert directory.members("Pushed") == {NAMES[i] for i in members["pushed"]} & wanted
        finally:
            runtime.close()
