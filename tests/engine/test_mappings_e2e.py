"""Attribute mappings end to end against a real scim2-server (in process): a custom mapping
arrives downstream exactly, a failing expression fails one user's key only, and downstream
attributes equal the mapping's evaluation through random profile edits."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.db import tables as t
from headwater.domain.expressions import Context, Facts, compile_expression
from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    assign_group,
    converge,
    create_group,
    create_scim_app,
    create_user,
    ok,
    update_user,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_NAME = 'String.substringBefore(user.email, "@")'
TITLE = 'user.department == "Engineering" ? "Engineer, " + user.title : user.title'
COST_CENTER = '"CC-" + user.employeeNumber'
MAPPING = {
    "properties": {
        "userName": {"expression": USER_NAME, "pushStatus": "PUSH"},
        "title": {"expression": TITLE, "pushStatus": "PUSH"},
        "costCenter": {"expression": COST_CENTER, "pushStatus": "PUSH"},
    }
}


def _app_with_mapping(
    client: TestClient, runtime: Runtime, downstream: InProcessScim, members: list[str]
) -> str:
    group = create_group(runtime, "Staff", members)
    app_id = create_scim_app(runtime, downstream.base_url)
    ok(client.post(f"/api/v1/mappings/{app_id}", json=MAPPING))
    assign_group(runtime, app_id, group)
    converge(runtime)
    return app_id


def test_a_custom_mapping_arrives_downstream_exactly(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    ada = create_user(
        runtime,
        "ada.lovelace@example.com",
        department="Engineering",
        title="Lead",
        employeeNumber="1815",
    )
    bob = create_user(runtime, "bob.jones@example.com", department="Sales", title="Rep")
    _app_with_mapping(client, runtime, downstream, [ada, bob])
    users = downstream.scim.by_user_name()
    assert set(users) == {"ada.lovelace", "bob.jones"}
    assert users["ada.lovelace"]["title"] == "Engineer, Lead"
    assert users["ada.lovelace"][ENTERPRISE]["costCenter"] == "CC-1815"
    assert users["ada.lovelace"]["externalId"] == ada
    assert users["bob.jones"]["title"] == "Rep"
    # no employee number: "CC-" + null is "CC-"
    assert users["bob.jones"][ENTERPRISE]["costCenter"] == "CC-"

    # A profile change flows through the mapping.
    update_user(runtime, bob, department="Engineering")
    converge(runtime)
    assert downstream.scim.user("bob.jones")["title"] == "Engineer, Rep"  # type: ignore[index]


def test_an_expression_failing_for_one_user_fails_that_key_only(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    good = create_user(runtime, "good@example.com", badge="Goodie")
    bad = create_user(runtime, "bad@example.com", badge=12)
    group = create_group(runtime, "Staff", [good, bad])
    app_id = create_scim_app(runtime, downstream.base_url)
    expression = {"expression": "String.toUpperCase(user.badge)", "pushStatus": "PUSH"}
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": {"nickName": expression}}))
    assign_group(runtime, app_id, group)
    converge(runtime, settled=False)
    users = downstream.scim.by_user_name()
    assert set(users) == {"good@example.com"}
    assert users["good@example.com"]["nickName"] == "GOODIE"
    with runtime.database.read() as session:
        tasks = session.query(t.Task).filter(t.Task.app_id == app_id).all()
        assert [(task.subject_id, "nickName" in (task.message or "")) for task in tasks] == [
            (bad, True)
        ]


DEPARTMENTS = st.sampled_from(["Engineering", "Sales", None])
WORDS = st.text(alphabet="abcdefgh XYZ", min_size=1, max_size=10)
NUMBERS = st.one_of(st.none(), st.from_regex(r"[0-9]{1,6}", fullmatch=True))
PROFILE = st.fixed_dictionaries(
    {"department": DEPARTMENTS, "title": WORDS, "employeeNumber": NUMBERS}
)


def _expected(profile: dict[str, Any], text: str) -> Any:
    value = compile_expression(text, context=Context.mapping()).evaluate(Facts(user=profile))
    return value or None


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(st.tuples(st.integers(0, 2), PROFILE), min_size=1, max_size=4))
def test_downstream_attributes_equal_the_mappings_evaluation(
    client: TestClient,
    runtime: Runtime,
    downstream: InProcessScim,
    edits: list[tuple[int, dict[str, Any]]],
) -> None:
    with runtime.database.read() as session:
        people = [u.id for u in session.query(t.User).order_by(t.User.id)]
    if not people:
        people = [create_user(runtime, f"p{n}@example.com") for n in range(3)]
        _app_with_mapping(client, runtime, downstream, people)
    for index, changes in edits:
        update_user(runtime, people[index], **changes)
    converge(runtime)
    with runtime.database.read() as session:
        profiles = {u.id: dict(u.profile) for u in session.query(t.User)}
    by_id = {u["externalId"]: u for u in downstream.scim.users()}
    assert set(by_id) == set(people)
    for user_id, profile in profiles.items():
        sent = by_id[user_id]
        assert sent["userName"] == _expected(profile, USER_NAME)
        assert sent.get("title") == _expected(profile, TITLE)
        assert sent.get(ENTERPRISE, {}).get("costCenter") == _expected(profile, COST_CENTER)


def test_enterprise_and_custom_attributes_with_push_statuses(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    ada = create_user(runtime, "ada@example.com", department="Engineering", division="R&D")
    group = create_group(runtime, "Staff", [ada])
    app_id = create_scim_app(runtime, downstream.base_url)
    namespace = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    properties = {
        "division": {"expression": "user.division", "pushStatus": "PUSH"},
        "organization": {"expression": '"Example Org"', "pushStatus": "CREATE"},
        "department": {"pushStatus": "DONT_PUSH"},
        "middleName": {"expression": '"Q"', "pushStatus": "PUSH"},
    }
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": properties}))
    assign_group(runtime, app_id, group)
    converge(runtime)
    sent = downstream.scim.user("ada@example.com")
    assert sent is not None
    assert sent[namespace]["division"] == "R&D"
    assert sent[namespace]["organization"] == "Example Org"
    assert "department" not in sent[namespace]
    assert sent["name"]["middleName"] == "Q"
    # CREATE: a later change of the expression is not sent to the existing account.
    changed = {"organization": {"expression": '"Other Org"', "pushStatus": "CREATE"}}
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": changed}))
    update_user(runtime, ada, division="Labs")
    converge(runtime)
    sent = downstream.scim.user("ada@example.com")
    assert sent is not None
    assert (sent[namespace]["division"], sent[namespace]["organization"]) == ("Labs", "Example Org")


def test_a_custom_extension_the_downstream_does_not_declare_fails_that_account_clearly(
    client: TestClient, runtime: Runtime, downstream: InProcessScim
) -> None:
    """scim2-server accepts only the schemas it declares: the account gets a Task naming the
    app's extension URN; the mapping itself is sent as designed."""
    ada = create_user(runtime, "ada@example.com")
    app_id = create_scim_app(runtime, downstream.base_url)
    namespace = "urn:example:wiki:2.0:User"
    role = {"type": "string", "externalNamespace": namespace}
    schema = {"definitions": {"custom": {"properties": {"role": role}}}}
    ok(client.post(f"/api/v1/meta/schemas/apps/{app_id}/default", json=schema))
    expression = {"expression": 'user.department == null ? "member" : "lead"'}
    ok(client.post(f"/api/v1/mappings/{app_id}", json={"properties": {"role": expression}}))
    assign_group(runtime, app_id, create_group(runtime, "Staff", [ada]))
    converge(runtime, settled=False)
    sent = [r.body for r in downstream.transport.writes() if r.resource == "Users"]
    assert [body[namespace] for body in sent] == [{"role": "member"}]
    assert namespace in sent[0]["schemas"]
    with runtime.database.read() as session:
        (task,) = session.query(t.Task).filter(t.Task.app_id == app_id).all()
        assert task.subject_id == ada and namespace in task.message
