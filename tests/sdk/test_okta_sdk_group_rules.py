"""The official Okta SDK manages group rules against Headwater over real HTTP: create, activate
(which fills the group), list, deactivate and delete (taking the memberships back)."""

from __future__ import annotations

from typing import Any

from okta.errors.okta_api_error import OktaAPIError
from okta.models import (
    AddGroupRequest,
    CreateGroupRuleRequest,
    CreateUserRequest,
    GroupRuleAction,
    GroupRuleConditions,
    GroupRuleExpression,
    GroupRuleGroupAssignment,
    GroupRuleGroupCondition,
    GroupRulePeopleCondition,
    GroupRuleUserCondition,
    OktaUserGroupProfile,
    UserProfile,
)

from headwater.testing.toolkit import sdk_ok

EXPRESSION = 'user.department == "Engineering"'


async def _user(client: Any, login: str, department: str) -> str:
    profile = UserProfile(
        login=login, email=login, firstName="Ann", lastName="Tester", department=department
    )
    user = sdk_ok(await client.create_user(CreateUserRequest(profile=profile), activate=True))
    return str(user.id)


async def _member_ids(client: Any, group_id: str) -> set[str]:
    users = sdk_ok(await client.list_group_users(group_id))
    return {user.id for user in users}


async def test_group_rule_lifecycle_with_the_official_sdk(okta_client: Any) -> None:
    group = sdk_ok(
        await okta_client.add_group(
            AddGroupRequest(profile=OktaUserGroupProfile(name="Engineering"))
        )
    )
    ann = await _user(okta_client, "ann@example.com", "Engineering")
    await _user(okta_client, "bob@example.com", "Sales")
    request = CreateGroupRuleRequest(
        type="group_rule",
        name="Dept is Eng",
        conditions=GroupRuleConditions(
            expression=GroupRuleExpression(value=EXPRESSION, type="urn:okta:expression:1.0"),
            people=GroupRulePeopleCondition(
                users=GroupRuleUserCondition(exclude=[]),
                groups=GroupRuleGroupCondition(exclude=[]),
            ),
        ),
        actions=GroupRuleAction(
            assign_user_to_groups=GroupRuleGroupAssignment(group_ids=[group.id])
        ),
    )
    rule = sdk_ok(await okta_client.create_group_rule(request))
    assert rule.status.value == "INACTIVE"
    assert rule.conditions.expression.value == EXPRESSION
    assert rule.actions.assign_user_to_groups.group_ids == [group.id]

    sdk_ok(await okta_client.activate_group_rule(rule.id))
    assert await _member_ids(okta_client, group.id) == {ann}
    listed = sdk_ok(await okta_client.list_group_rules(search="Eng"))
    assert [(r.id, r.status.value) for r in listed] == [(rule.id, "ACTIVE")]

    # Okta refuses to delete an active rule.
    _, err = await okta_client.delete_group_rule(rule.id)
    assert isinstance(err, OktaAPIError) and err.error_code == "E0000001", err

    sdk_ok(await okta_client.deactivate_group_rule(rule.id))
    fetched = sdk_ok(await okta_client.get_group_rule(rule.id))
    assert fetched.status.value == "INACTIVE"
    assert await _member_ids(okta_client, group.id) == {ann}  # deactivation keeps them
    sdk_ok(await okta_client.delete_group_rule(rule.id, remove_users=True))
    assert await _member_ids(okta_client, group.id) == set()
    assert sdk_ok(await okta_client.list_group_rules()) == []
