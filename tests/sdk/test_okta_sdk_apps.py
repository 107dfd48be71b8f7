"""The official Okta Python SDK (3.4.6) drives the apps API over real HTTP.

Without the ``okta`` package this module skips; under ``CI=true`` it fails instead.
"""

from __future__ import annotations

from typing import Any

import httpx

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    InProcessScim,
    create_group,
    create_user,
    queued_subjects,
    require_module,
    sdk_ok,
)

okta_models = require_module("okta.models")


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
    created = sdk_ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    assert type(created).__name__ == "BookmarkApplication"
    assert created.id.startswith("0oa") and created.status == "ACTIVE"
    sdk_ok(await okta_client.create_application(_bookmark("CRM"), activate=False))
    # A SCIM-only app has no signOnMode; the SDK must still read it in a mixed list.
    generic = {"name": "scim2headwater", "label": "Downstream"}
    headers = {"Authorization": f"SSWS {api_token}"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=headers) as raw:
        assert (await raw.post("/api/v1/apps", json=generic)).status_code == 200
    listed = sdk_ok(await okta_client.list_applications())
    assert sorted(app.label for app in listed) == ["CRM", "Downstream", "Wiki"]
    fetched = sdk_ok(await okta_client.get_application(created.id))
    assert fetched.settings.app.url == "https://wiki.example.com"
    assert fetched.links.users.href.endswith(f"/apps/{created.id}/users")


async def test_sdk_assigns_groups_and_users(okta_client: Any, runtime: Runtime) -> None:
    app = sdk_ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    members = [create_user(runtime, f"member{i}@example.com") for i in range(2)]
    group = create_group(runtime, "Accounting", members)
    assignment = sdk_ok(
        await okta_client.assign_group_to_application(
            app.id, group, okta_models.ApplicationGroupAssignment(priority=0)
        )
    )
    assert (assignment.id, assignment.priority) == (group, 0)
    assert queued_subjects(runtime, app.id) == set(members)
    assignments = sdk_ok(await okta_client.list_application_group_assignments(app.id))
    assert [a.id for a in assignments] == [group]

    app_users = sdk_ok(await okta_client.list_application_users(app.id))
    assert {u.id for u in app_users} == set(members)
    assert {u.scope for u in app_users} == {"GROUP"}
    one = sdk_ok(await okta_client.get_application_user(app.id, members[0]))
    assert one.credentials.user_name == "member0@example.com"

    direct = create_user(runtime, "direct@example.com")
    request = okta_models.AppUserAssignRequest(
        id=direct,
        scope="USER",
        credentials=okta_models.AppUserCredentials(user_name="direct-user"),
    )
    assigned = sdk_ok(await okta_client.assign_user_to_application(app.id, request))
    assert (assigned.id, assigned.scope, assigned.credentials.user_name) == (
        direct,
        "USER",
        "direct-user",
    )
    assert direct in queued_subjects(runtime, app.id)

    _, response, error = await okta_client.unassign_application_from_group(app.id, group)
    assert error is None and response.status_code == 204
    remaining = sdk_ok(await okta_client.list_application_users(app.id))
    assert [u.id for u in remaining] == [direct]


async def test_sdk_sets_the_provisioning_connection(okta_client: Any, runtime: Runtime) -> None:
    token = "sdk-token-5e1d8a"
    InProcessScim(bearer_token=token).serve(runtime)
    app = sdk_ok(await okta_client.create_application(_bookmark("Wiki"), activate=True))
    request = okta_models.UpdateDefaultProvisioningConnectionForApplicationRequest(
        okta_models.ProvisioningConnectionTokenRequest(
            base_url="http://scim.test/v2",
            profile=okta_models.ProvisioningConnectionTokenRequestProfile(
                auth_scheme="TOKEN", token=token
            ),
        )
    )
    connection = sdk_ok(
        await okta_client.update_default_provisioning_connection_for_application(
            app.id, request, activate=True
        )
    )
    assert connection.status == "ENABLED" and connection.base_url == "http://scim.test/v2"
    fetched = sdk_ok(await okta_client.get_default_provisioning_connection_for_application(app.id))
    assert fetched.profile.auth_scheme == "TOKEN"
    refreshed = sdk_ok(await okta_client.get_application(app.id))
    assert "SCIM_PROVISIONING" in refreshed.features
