"""Apps: create, read, list, replace, lifecycle, delete, features and provisioning settings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    assert_okta_error,
    assign_group,
    assign_user,
    clear_keys,
    create_app,
    create_group,
    create_user,
    events,
    links,
    queued_subjects,
)

BOOKMARK = {
    "name": "bookmark",
    "label": "Team Wiki",
    "signOnMode": "BOOKMARK",
    "settings": {"app": {"url": "https://wiki.example.com"}},
}


def _all_hrefs(links: dict[str, Any]) -> list[Any]:
    hrefs = []
    for value in links.values():
        for item in value if isinstance(value, list) else [value]:
            hrefs.append(item["href"])
    return hrefs


def test_create_bookmark_app_returns_okta_shape(client: TestClient) -> None:
    response = client.post("/api/v1/apps", json=BOOKMARK)
    assert response.status_code == 200, response.text
    app = response.json()
    assert app["id"].startswith("0oa")
    assert (app["name"], app["label"], app["status"]) == ("bookmark", "Team Wiki", "ACTIVE")
    assert app["signOnMode"] == "BOOKMARK"
    assert app["settings"]["app"]["url"] == "https://wiki.example.com"
    assert app["accessibility"]["selfService"] is False
    assert app["visibility"] == {"autoSubmitToolbar": False, "hide": {"iOS": False, "web": False}}
    assert app["credentials"]["userNameTemplate"] == {
        "template": "${source.login}",
        "type": "BUILT_IN",
    }
    assert app["credentials"]["signing"] == {}
    assert app["features"] == []
    assert app["created"].endswith("Z") and app["lastUpdated"].endswith("Z")
    assert {"self", "users", "groups", "deactivate", "appLinks"} <= set(app["_links"])
    assert all(isinstance(href, str) for href in _all_hrefs(app["_links"]))


def test_create_inactive_then_activate_and_deactivate(client: TestClient, runtime: Runtime) -> None:
    response = client.post(
        "/api/v1/apps?activate=false",
        json={
            "name": "bookmark",
            "label": "Later",
            "signOnMode": "BOOKMARK",
            "settings": {"app": {"url": "https://later.example.com"}},
        },
    )
    app = response.json()
    assert app["status"] == "INACTIVE" and "activate" in app["_links"]
    activated = client.post(f"/api/v1/apps/{app['id']}/lifecycle/activate")
    assert (activated.status_code, activated.json()) == (200, {})
    assert client.get(f"/api/v1/apps/{app['id']}").json()["status"] == "ACTIVE"
    assert client.post(f"/api/v1/apps/{app['id']}/lifecycle/deactivate").json() == {}
    assert client.get(f"/api/v1/apps/{app['id']}").json()["status"] == "INACTIVE"
    types = [e.event_type for e in events(runtime, "application.lifecycle")]
    assert types == [
        "application.lifecycle.create",
        "application.lifecycle.activate",
        "application.lifecycle.deactivate",
    ]


def test_auto_login_app_keeps_login_url(client: TestClient) -> None:
    body = {
        "label": "Legacy portal",
        "signOnMode": "AUTO_LOGIN",
        "settings": {"signOn": {"loginUrl": "https://portal.example.com/login"}},
    }
    app = client.post("/api/v1/apps", json=body).json()
    assert app["signOnMode"] == "AUTO_LOGIN"
    assert app["settings"]["signOn"]["loginUrl"] == "https://portal.example.com/login"
    assert app["name"]  # generated, as Okta does for custom apps


def test_scim_app_takes_username_template_from_credentials(client: TestClient) -> None:
    template = '${fn:substringBefore(source.login,"@")}'
    body = {
        "name": "scim2headwater",
        "label": "Downstream",
        "credentials": {"userNameTemplate": {"template": template, "type": "CUSTOM"}},
    }
    app = client.post("/api/v1/apps", json=body).json()
    assert app["name"] == "scim2headwater"
    assert app["credentials"]["userNameTemplate"] == {"template": template, "type": "CUSTOM"}
    settings = client.get(f"/api/v1/apps/{app['id']}/provisioning/settings").json()
    assert settings["userNameTemplate"] == template


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"name": "bookmark", "signOnMode": "BOOKMARK"}, "label"),
        ({"label": 7, "name": "x"}, "label"),
        ({"label": "  ", "name": "x"}, "label"),
        ({"label": "x", "signOnMode": "BOOKMARK", "settings": {"app": {}}}, "settings.app.url"),
        ({"label": "x", "signOnMode": "AUTO_LOGIN"}, "settings.signOn.loginUrl"),
        ({"label": "x", "signOnMode": "TELEPATHY", "name": "x"}, "signOnMode"),
        ({"label": "x"}, "name"),
        ({"label": "x", "name": "x", "settings": []}, "settings"),
        (
            {"label": "x", "name": "x", "credentials": {"userNameTemplate": {"template": "${x}"}}},
            "credentials.userNameTemplate.template",
        ),
        ([1, 2], "body"),
    ],
)
def test_invalid_app_is_refused_and_not_stored(client: TestClient, body: Any, cause: str) -> None:
    response = client.post("/api/v1/apps", json=body)
    assert_okta_error(response, 400, "E0000001")
    causes = [c["errorSummary"] for c in response.json()["errorCauses"]]
    assert any(c.startswith(cause) for c in causes), causes
    assert client.get("/api/v1/apps").json() == []


def test_malformed_json_and_unknown_app(client: TestClient) -> None:
    broken = client.post(
        "/api/v1/apps", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_okta_error(broken, 400, "E0000003")
    assert_okta_error(client.get("/api/v1/apps/0oaMissing"), 404, "E0000007")


def test_list_pages_searches_and_filters(client: TestClient, runtime: Runtime) -> None:
    for label in ("Alpha", "Beta", "Alpine", "Gamma", "Delta"):
        create_app(runtime, label)
    pages, url = [], "/api/v1/apps?limit=2"
    while url:
        response = client.get(url)
        pages.append([a["label"] for a in response.json()])
        found = links(response)
        assert next(iter(found)) == "self"
        url = found.get("next", "")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(label for page in pages for label in page) == [
        "Alpha",
        "Alpine",
        "Beta",
        "Delta",
        "Gamma",
    ]
    assert sorted(a["label"] for a in client.get("/api/v1/apps?q=al").json()) == [
        "Alpha",
        "Alpine",
    ]
    beta = client.get("/api/v1/apps?q=Beta").json()[0]
    client.post(f"/api/v1/apps/{beta['id']}/lifecycle/deactivate")
    active = client.get('/api/v1/apps?filter=status eq "ACTIVE"').json()
    inactive = client.get('/api/v1/apps?filter=status eq "INACTIVE"').json()
    assert (len(active), [a["label"] for a in inactive]) == (4, ["Beta"])
    assert_okta_error(client.get('/api/v1/apps?filter=label co "x"'), 400, "E0000001")


def test_replace_app_updates_document_but_not_name(client: TestClient, runtime: Runtime) -> None:
    app = client.get(f"/api/v1/apps/{create_app(runtime)}").json()
    body = {
        **{k: app[k] for k in ("name", "signOnMode", "visibility", "accessibility")},
        "label": "Renamed",
        "settings": {"app": {"url": "https://new.example.com"}},
        "credentials": {"userNameTemplate": {"template": "${source.email}", "type": "BUILT_IN"}},
    }
    replaced = client.put(f"/api/v1/apps/{app['id']}", json=body).json()
    assert replaced["label"] == "Renamed"
    assert replaced["settings"]["app"]["url"] == "https://new.example.com"
    assert replaced["credentials"]["userNameTemplate"]["template"] == "${source.email}"
    renamed = client.put(f"/api/v1/apps/{app['id']}", json={**body, "name": "other"})
    assert renamed.status_code == 400
    assert client.get(f"/api/v1/apps/{app['id']}").json()["label"] == "Renamed"


def test_template_change_reconciles_assigned_users(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "ana@example.com")
    assign_group(runtime, app_id, create_group(runtime, "Staff", [user]))
    clear_keys(runtime)
    body = {
        "name": "bookmark",
        "label": "Wiki",
        "signOnMode": "BOOKMARK",
        "settings": {"app": {"url": "https://wiki.example.com"}},
        "credentials": {"userNameTemplate": {"template": "${source.email}"}},
    }
    client.put(f"/api/v1/apps/{app_id}", json=body)
    assert queued_subjects(runtime, app_id) == {user}


def test_delete_requires_inactive_app(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    refused = client.delete(f"/api/v1/apps/{app_id}")
    body = assert_okta_error(refused, 400, "E0000001")
    assert "deactivated before deletion" in body["errorSummary"]
    client.post(f"/api/v1/apps/{app_id}/lifecycle/deactivate")
    deleted = client.delete(f"/api/v1/apps/{app_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.get(f"/api/v1/apps/{app_id}").status_code == 404
    assert events(runtime, "application.lifecycle.delete")[0].targets[0]["id"] == app_id


# --- Features and settings --------------------------------------------------------------------


def test_user_provisioning_feature_maps_to_settings(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    url = f"/api/v1/apps/{app_id}/features"
    (feature,) = client.get(url).json()
    assert feature["name"] == "USER_PROVISIONING"
    assert feature["capabilities"]["create"]["lifecycleCreate"]["status"] == "ENABLED"
    body = {
        "name": "USER_PROVISIONING",
        "capabilities": {
            "create": {"lifecycleCreate": {"status": "DISABLED"}},
            "update": {"lifecycleDeactivate": {"status": "DISABLED"}},
        },
    }
    updated = client.put(f"{url}/USER_PROVISIONING", json=body).json()
    assert updated["capabilities"]["create"]["lifecycleCreate"]["status"] == "DISABLED"
    assert updated["capabilities"]["update"]["profile"]["status"] == "ENABLED"
    assert updated["capabilities"]["update"]["password"]["status"] == "DISABLED"
    # The SDK sends the bare capabilities object.
    client.put(f"{url}/USER_PROVISIONING", json={"update": {"profile": {"status": "DISABLED"}}})
    settings = client.get(f"/api/v1/apps/{app_id}/provisioning/settings").json()
    assert (settings["createUsers"], settings["updateUsers"], settings["deactivateUsers"]) == (
        False,
        False,
        False,
    )
    assert client.get(f"{url}/INBOUND_PROVISIONING").status_code == 404
    password = {"update": {"password": {"status": "ENABLED"}}}
    assert client.put(f"{url}/USER_PROVISIONING", json=password).status_code == 400
    assert (
        client.put(
            f"{url}/USER_PROVISIONING", json={"create": {"lifecycleCreate": {"status": "ON"}}}
        ).status_code
        == 400
    )


def test_provisioning_settings_expose_every_field(client: TestClient, runtime: Runtime) -> None:
    app_id = create_app(runtime)
    url = f"/api/v1/apps/{app_id}/provisioning/settings"
    settings = client.get(url).json()
    assert settings["updateMethod"] == "PUT" and settings["membershipBatchSize"] == 100
    changes = {
        "updateMethod": "PATCH",
        "deprovision": "DELETE",
        "onSuspend": "DEACTIVATE",
        "membershipMethod": "PUT",
        "membershipBatchSize": 500,
        "groupMembersReturned": False,
        "deleteGroupWithSource": True,
        "maxConcurrency": 2,
        "rateLimitPerSecond": 2.5,
        "massChangeThreshold": 0,
        "fullReconcileInterval": 0,
        "reactivateUsers": False,
        "groupPush": False,
        "userNameTemplate": "${fn:toLowerCase(source.email)}",
    }
    updated = client.put(url, json=changes).json()
    assert {k: updated[k] for k in changes} == changes
    assert client.get(url).json() == updated


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"membershipBatchSize": 0}, "membershipBatchSize"),
        ({"membershipBatchSize": 1001}, "membershipBatchSize"),
        ({"membershipBatchSize": "50"}, "membershipBatchSize"),
        ({"membershipBatchSize": 5.5}, "membershipBatchSize"),
        ({"maxConcurrency": 0}, "maxConcurrency"),
        ({"maxConcurrency": True}, "maxConcurrency"),
        ({"rateLimitPerSecond": -1}, "rateLimitPerSecond"),
        ({"massChangeThreshold": 1.5}, "massChangeThreshold"),
        ({"fullReconcileInterval": -5}, "fullReconcileInterval"),
        ({"updateMethod": "POST"}, "updateMethod"),
        ({"deprovision": "deactivate"}, "deprovision"),
        ({"groupPush": "yes"}, "groupPush"),
        ({"userNameTemplate": "${source.login"}, "userNameTemplate"),
        ({"userNameTemplate": "${user.login}"}, "userNameTemplate"),
        ({"bogusSetting": 1}, "bogusSetting"),
        ({"createUsers": False, "maxConcurrency": -1}, "maxConcurrency"),
    ],
)
def test_invalid_settings_name_the_field_and_change_nothing(
    client: TestClient, runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    url = f"/api/v1/apps/{create_app(runtime)}/provisioning/settings"
    before = client.get(url).json()
    response = client.put(url, json=body)
    assert field in assert_okta_error(response, 400, "E0000001")["errorSummary"]
    assert client.get(url).json() == before


def test_settings_enqueue_only_when_desired_state_may_change(
    client: TestClient, runtime: Runtime
) -> None:
    app_id = create_app(runtime)
    user = create_user(runtime, "bo@example.com")
    assign_user(runtime, app_id, user)
    url = f"/api/v1/apps/{app_id}/provisioning/settings"
    clear_keys(runtime)
    client.put(url, json={"maxConcurrency": 3, "rateLimitPerSecond": 10})
    assert queued_subjects(runtime, app_id) == set()
    client.put(url, json={"deprovision": "DELETE"})
    assert queued_subjects(runtime, app_id) == {user}
    assert events(runtime, "application.lifecycle.update")[-1].debug == {
        "changedSettings": ["deprovision"]
    }


@pytest.mark.parametrize(
    ("method", "path", "content", "code"),
    [
        ("POST", "/api/v1/apps", b'{"label": "x\\u0000", "name": "n"}', "E0000001"),
        (
            "POST",
            "/api/v1/apps",
            b'{"label": "x", "name": "n", "settings": {"a": NaN}}',
            "E0000003",
        ),
        ("POST", "/api/v1/apps", b"[" * 5000 + b"]" * 5000, "E0000003"),
        ("PUT", "/api/v1/apps/{app}/groups/00gX", b'{"profile": {"x": Infinity}}', "E0000003"),
        ("POST", "/api/v1/apps/{app}/users", b'{"id": "00u\\u0000"}', "E0000001"),
        ("GET", "/api/v1/apps?after=%00", b"", "E0000001"),
        ("GET", "/api/v1/apps/{app}/users/%00", b"", "E0000001"),
    ],
)
def test_unstorable_input_is_refused_not_a_server_error(
    client: TestClient, runtime: Runtime, method: str, path: str, content: bytes, code: str
) -> None:
    """Not JSON (NaN, nesting beyond the parser) is malformed; JSON with text no database
    stores is invalid, naming the field."""
    url = path.replace("{app}", create_app(runtime))
    response = client.request(
        method, url, content=content, headers={"Content-Type": "application/json"}
    )
    assert_okta_error(response, 400, code)
    assert [a["label"] for a in client.get("/api/v1/apps").json()] == ["Wiki"]
