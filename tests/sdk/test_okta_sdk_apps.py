"""The official Okta Python SDK (3.4.6) drives the apps API over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from appkit import add_group, add_user, user_keys
from headwater.runtime import Runtime
from headwater.testing.scimserver import in_process_app

okta_models = pytest.importorskip("okta.models")


def _ok(result: tuple[Any, ...]) -> Any:
    """The SDK answers (data, response, error); fail loudly on an error."""
    *data, error = result
    assert error is None, error
    return data[0] if len(data) == 2 else None


def _bookmark(label: str) -> Any:
    return okta_models.BookmarkApplication(
        name="bookmark",
        label=label,
        sign_on_mode="BOOKMARK",
        settings=okta_models.BookmarkApplicationSettings(
            app=okta_models.BookmarkApplicationSettingsApplication(url="https://wiki.example.com")
        ),
    )


async def test_sdk_creates_lists_and_reads_apps(
    okta_client: Any, live_server: Any, api_token: str
) -> None:
    created = _ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    assert type(created).__name__ == "BookmarkApplication"
    assert created.id.startswith("0oa") and created.status == "ACTIVE"
    _ok(await okta_client.create_application(_bookmark("CRM"), activate=False))
    # A SCIM-only app has no signOnMode; the SDK must still read it in a mixed list.
    generic = {"name": "scim2headwater", "label": "Downstream"}
    headers = {"Authorization": f"SSWS {api_token}"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=headers) as raw:
        assert (await raw.post("/api/v1/apps", json=generic)).status_code == 200
    listed = _ok(await okta_client.list_applications())
    assert sorted(app.label for app in listed) == ["CRM", "Downstream", "Wiki"]
    fetched = _ok(await okta_client.get_application(created.id))
    assert fetched.settings.app.url == "https://wiki.example.com"
    assert fetched.links.users.href.endswith(f"/apps/{created.id}/users")


async def test_sdk_assigns_groups_and_users(okta_client: Any, runtime: Runtime) -> None:
    app = _ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    members = [add_user(runtime, f"member{i}@example.com") for i in range(2)]
    group = add_group(runtime, "Accounting", members)
    assignment = _ok(
        await okta_client.assign_group_to_application(
            app.id, group, okta_models.ApplicationGroupAssignment(priority=0)
        )
    )
    assert (assignment.id, assignment.priority) == (group, 0)
    assert user_keys(runtime, app.id) == set(members)
    assignments = _ok(await okta_client.list_application_group_assignments(app.id))
    assert [a.id for a in assignments] == [group]

    app_users = _ok(await okta_client.list_application_users(app.id))
    assert {u.id for u in app_users} == set(members)
    assert {u.scope for u in app_users} == {"GROUP"}
    one = _ok(await okta_client.get_application_user(app.id, members[0]))
    assert one.credentials.user_name == "member0@example.com"

    direct = add_user(runtime, "direct@example.com")
    request = okta_models.AppUserAssignRequest(
        id=direct,
        scope="USER",
        credentials=okta_models.AppUserCredentials(user_name="direct-user"),
    )
    assigned = _ok(await okta_client.assign_user_to_application(app.id, request))
    assert (assigned.id, assigned.scope, assigned.credentials.user_name) == (
        direct,
        "USER",
        "direct-user",
    )
    assert direct in user_keys(runtime, app.id)

    _, response, error = await okta_client.unassign_application_from_group(app.id, group)
    assert error is None and response.status_code == 204
    remaining = _ok(await okta_client.list_application_users(app.id))
    assert [u.id for u in remaining] == [direct]


async def test_sdk_sets_the_provisioning_connection(okta_client: Any, runtime: Runtime) -> None:
    token = "sdk-token-5e1d8a"
    transport = httpx.ASGITransport(app=in_process_app(bearer_token=token))
    runtime.connectors.transports["http://scim.test"] = transport
    app = _ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    request = okta_models.UpdateDefaultProvisioningConnectionForApplicationRequest(
        okta_models.ProvisioningConnectionTokenRequest(
            base_url="http://scim.test/v2",
            profile=okta_models.ProvisioningConnectionTokenRequestProfile(
                auth_scheme="TOKEN", token=token
            ),
        )
    )
    connection = _ok(
        await okta_client.update_default_provisioning_connection_for_application(
            app.id, request, activate=True
        )
    )
    assert connection.status == "ENABLED" and connection.base_url == "http://scim.test/v2"
    fetched = _ok(await okta_client.get_default_provisioning_connection_for_application(app.id))
    assert fetched.profile.auth_scheme == "TOKEN"
    refreshed = _ok(await okta_client.get_application(app.id))
    assert "SCIM_PROVISIONING" in refreshed.features
