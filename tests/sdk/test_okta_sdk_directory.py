"""The official Okta SDK (``okta`` 3.x) driving Headwater's directory over real HTTP.

Each call returns ``(data, response, error)``; errors arrive as ``OktaAPIError`` with Okta's
``error_code``. Pagination in this SDK version is read from the ``Link`` header with
``PaginationHelper`` and re-requested with ``after``.
"""

from __future__ import annotations

from typing import Any

from okta.errors.okta_api_error import OktaAPIError
from okta.models import (
    AddGroupRequest,
    CreateUserRequest,
    OktaUserGroupProfile,
    PasswordCredential,
    UpdateUserRequest,
    UserCredentialsWritable,
    UserProfile,
)
from okta.pagination import PaginationHelper

PASSWORD = "Correct-Horse-42"


def _profile(login: str, **extra: Any) -> UserProfile:
    first = login.partition("@")[0].title()
    return UserProfile(login=login, email=login, firstName=first, lastName="Tester", **extra)


async def _create(client: Any, login: str, *, activate: bool, password: bool = False) -> Any:
    credentials = None
    if password:
        credentials = UserCredentialsWritable(password=PasswordCredential(value=PASSWORD))
    body = CreateUserRequest(profile=_profile(login), credentials=credentials)
    user, _, err = await client.create_user(body, activate=activate)
    assert err is None, err
    return user


def _okta_error(err: Any, code: str) -> OktaAPIError:
    assert isinstance(err, OktaAPIError), err
    assert err.error_code == code, err.message
    return err


def _status(user: Any) -> str:
    return str(user.status.value)


async def test_users_create_read_list_update(okta_client: Any) -> None:
    provisioned = await _create(okta_client, "ann@example.com", activate=True)
    active = await _create(okta_client, "bob@example.com", activate=True, password=True)
    staged = await _create(okta_client, "cyd@example.com", activate=False)
    assert [_status(u) for u in (provisioned, active, staged)] == [
        "PROVISIONED",
        "ACTIVE",
        "STAGED",
    ]
    assert active.credentials.provider.type.value == "OKTA"

    by_id, _, err = await okta_client.get_user(active.id)
    assert err is None and by_id.profile.login == "bob@example.com"
    by_login, _, err = await okta_client.get_user("BOB@example.com")
    assert err is None and by_login.id == active.id
    assert by_id.links.suspend.href.endswith(f"/users/{active.id}/lifecycle/suspend")

    await _create(okta_client, "dee@example.com", activate=False)
    await _create(okta_client, "eve@example.com", activate=False)
    seen: list[str] = []
    users, response, err = await okta_client.list_users(limit=2)
    pages = 1
    while True:
        assert err is None and len(users) <= 2
        seen += [user.id for user in users]
        if not PaginationHelper.has_next_page(response.headers):
            break
        after = PaginationHelper.extract_next_cursor(response.headers)
        users, response, err = await okta_client.list_users(limit=2, after=after)
        pages += 1
    assert len(seen) == len(set(seen)) == 5 and pages == 3

    found, _, err = await okta_client.list_users(filter='status eq "STAGED"')
    assert err is None and {u.profile.login for u in found} == {
        "cyd@example.com",
        "dee@example.com",
        "eve@example.com",
    }

    update = UpdateUserRequest(profile=UserProfile(title="Lead", costCenter="42"))
    updated, _, err = await okta_client.update_user(active.id, update)
    assert err is None
    assert (updated.profile.title, updated.profile.login) == ("Lead", "bob@example.com")
    replaced, _, err = await okta_client.replace_user(
        active.id, UpdateUserRequest(profile=_profile("bob@example.com", nickName="B"))
    )
    assert err is None
    assert replaced.profile.title is None and replaced.profile.nick_name == "B"


async def test_every_lifecycle_call_and_delete(okta_client: Any) -> None:
    user = await _create(okta_client, "ann@example.com", activate=False, password=True)
    uid = user.id
    steps = [
        (okta_client.activate_user, "ACTIVE"),
        (okta_client.suspend_user, "SUSPENDED"),
        (okta_client.unsuspend_user, "ACTIVE"),
        (okta_client.deactivate_user, "DEPROVISIONED"),
        (okta_client.activate_user, "ACTIVE"),
    ]
    for call, status in steps:
        *_, err = await call(uid)
        assert err is None, err
        fetched, _, _ = await okta_client.get_user(uid)
        assert _status(fetched) == status

    pending = await _create(okta_client, "bob@example.com", activate=True)
    *_, err = await okta_client.reactivate_user(pending.id)
    assert err is None

    _, response, err = await okta_client.delete_user(uid)
    assert err is None and response.status_code == 204
    fetched, _, _ = await okta_client.get_user(uid)
    assert _status(fetched) == "DEPROVISIONED"
    _, response, err = await okta_client.delete_user(uid)
    assert err is None and response.status_code == 204
    _, _, err = await okta_client.get_user(uid)
    _okta_error(err, "E0000007")
    again = await _create(okta_client, "ann@example.com", activate=False)
    assert again.id != uid


async def test_groups_and_memberships(okta_client: Any) -> None:
    profile = OktaUserGroupProfile(name="Accounting", description="Money")
    group, _, err = await okta_client.add_group(AddGroupRequest(profile=profile))
    assert err is None
    assert group.type.value == "OKTA_GROUP" and group.object_class == ["okta:user_group"]
    assert group.profile.actual_instance.name == "Accounting"
    users = [await _create(okta_client, f"user{i}@example.com", activate=False) for i in range(3)]

    for user in users:
        _, response, err = await okta_client.assign_user_to_group(group.id, user.id)
        assert err is None and response.status_code == 204
    members, response, err = await okta_client.list_group_users(group.id, limit=2)
    assert err is None and [m.id for m in members] == [u.id for u in users[:2]]
    after = PaginationHelper.extract_next_cursor(response.headers)
    rest, _, err = await okta_client.list_group_users(group.id, after=after, limit=2)
    assert err is None and [m.id for m in rest] == [users[2].id]

    _, response, err = await okta_client.unassign_user_from_group(group.id, users[0].id)
    assert err is None and response.status_code == 204
    members, _, _ = await okta_client.list_group_users(group.id)
    assert [m.id for m in members] == [u.id for u in users[1:]]
    groups_of_user, _, err = await okta_client.list_user_groups(users[1].id)
    assert err is None and [g.id for g in groups_of_user] == [group.id]

    renamed, _, err = await okta_client.replace_group(
        group.id, AddGroupRequest(profile=OktaUserGroupProfile(name="Finance"))
    )
    assert err is None and renamed.profile.actual_instance.name == "Finance"
    listed, _, err = await okta_client.list_groups(q="fin")
    assert err is None and [g.id for g in listed] == [group.id]
    fetched, _, err = await okta_client.get_group(group.id)
    assert err is None and fetched.links.users.href.endswith(f"/groups/{group.id}/users")

    _, response, err = await okta_client.delete_group(group.id)
    assert err is None and response.status_code == 204
    _, _, err = await okta_client.get_group(group.id)
    _okta_error(err, "E0000007")


async def test_errors_as_the_sdk_reports_them(okta_client: Any) -> None:
    active = await _create(okta_client, "ann@example.com", activate=True, password=True)

    _, _, err = await okta_client.create_user(
        CreateUserRequest(profile=_profile("ANN@example.com")), activate=True
    )
    duplicate = _okta_error(err, "E0000001")
    assert duplicate.status == 400
    assert "login" in duplicate.error_causes[0]["errorSummary"]

    _, _, err = await okta_client.get_user("00unknown0000000000")
    assert _okta_error(err, "E0000007").status == 404
    *_, err = await okta_client.activate_user(active.id)
    assert _okta_error(err, "E0000016").status == 403
    *_, err = await okta_client.reactivate_user(active.id)
    assert _okta_error(err, "E0000038").status == 403
    *_, err = await okta_client.unsuspend_user(active.id)
    _okta_error(err, "E0000001")

    await okta_client.add_group(AddGroupRequest(profile=OktaUserGroupProfile(name="Ops")))
    _, _, err = await okta_client.add_group(
        AddGroupRequest(profile=OktaUserGroupProfile(name="OPS"))
    )
    _okta_error(err, "E0000001")
    *_, err = await okta_client.assign_user_to_group("00gnope", active.id)
    _okta_error(err, "E0000007")


async def test_system_log_and_tokens(okta_client: Any) -> None:
    user = await _create(okta_client, "ann@example.com", activate=False)
    events, _, err = await okta_client.list_log_events(filter=f'target.id eq "{user.id}"')
    assert err is None
    assert [e.event_type for e in events] == ["user.lifecycle.create"]
    assert events[0].target[0].id == user.id and events[0].outcome.result == "SUCCESS"
    tokens, _, err = await okta_client.list_api_tokens()
    assert err is None and [t.name for t in tokens] == ["test-token"]
    assert tokens[0].client_name == "Okta API"
