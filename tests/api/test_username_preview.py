"""Username template preview (``POST /api/v1/apps/{id}/userNameTemplate/preview``): the result
for a sample of users before saving, errors with their position, nothing written; the same in
the console (where the template is edited) and the CLI."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headwater.runtime import Runtime
from headwater.server import create_app as create_server
from headwater.testing.toolkit import (
    api_client,
    api_token,
    assert_okta_error,
    assign_group,
    console_client,
    console_sign_in,
    create_admin,
    create_app,
    create_group,
    create_user,
    ok,
)

BEFORE_AT = '${String.substringBefore(source.login, "@")}'


def _world(runtime: Runtime) -> tuple[str, str, str]:
    ann = create_user(runtime, "ann.lee@example.com", nickName="annie")
    bob = create_user(runtime, "bob@example.com")
    app_id = create_app(runtime, "Wiki")
    assign_group(runtime, app_id, create_group(runtime, "Staff", [ann, bob]))
    return app_id, ann, bob


def _url(app_id: str) -> str:
    return f"/api/v1/apps/{app_id}/userNameTemplate/preview"


def test_preview_for_the_apps_users(client: TestClient, runtime: Runtime) -> None:
    app_id, ann, bob = _world(runtime)
    outsider = create_user(runtime, "out@example.com")
    shown = ok(client.post(_url(app_id), json={"template": BEFORE_AT}))
    assert shown["valid"] is True and shown["error"] is None
    assert {u["id"]: u["userName"] for u in shown["users"]} == {ann: "ann.lee", bob: "bob"}
    partly = ok(client.post(_url(app_id), json={"template": "${source.nickName}"}))
    by_id = {u["id"]: u for u in partly["users"]}
    assert by_id[ann]["userName"] == "annie" and by_id[ann]["error"] is None
    assert by_id[bob]["userName"] is None and "is empty" in by_id[bob]["error"]
    chosen = ok(client.post(_url(app_id), json={"template": BEFORE_AT, "userIds": [outsider]}))
    assert [u["userName"] for u in chosen["users"]] == ["out"]
    one = ok(client.post(_url(app_id), json={"template": BEFORE_AT, "limit": 1}))
    assert len(one["users"]) == 1
    # Nothing was saved.
    settings = ok(client.get(f"/api/v1/apps/{app_id}/provisioning/settings"))
    assert settings["userNameTemplate"] == "${source.login}"


def test_errors_name_the_position(client: TestClient, runtime: Runtime) -> None:
    app_id, _, _ = _world(runtime)
    typo = "${String.toLower(source.login)}"
    refused = ok(client.post(_url(app_id), json={"template": typo}))
    assert refused["valid"] is False and refused["users"] == []
    error = refused["error"]
    assert (error["line"], error["column"]) == (1, 3)
    assert "did you mean String.toLowerCase" in error["message"]
    unclosed = ok(client.post(_url(app_id), json={"template": "${source.login"}))
    assert unclosed["valid"] is False and unclosed["error"]["column"] is not None


def test_bad_requests(client: TestClient, runtime: Runtime) -> None:
    app_id, _, _ = _world(runtime)
    assert_okta_error(client.post(_url(app_id), json={"template": ""}), 400, "E0000001")
    assert_okta_error(client.post(_url(app_id), json={"template": "x" * 1025}), 400, "E0000001")
    assert_okta_error(client.post(_url(app_id), json={}), 400, "E0000001")
    too_many = {"template": BEFORE_AT, "userIds": ["00u"] * 26}
    assert_okta_error(client.post(_url(app_id), json=too_many), 400, "E0000001")
    assert_okta_error(client.post(_url(app_id), json={"template": 3}), 400, "E0000001")
    missing = client.post(_url("0oaNoSuchApp00000000"), json={"template": BEFORE_AT})
    assert_okta_error(missing, 404, "E0000007")


def test_the_schema_is_applied(client: TestClient, runtime: Runtime) -> None:
    app_id, _, _ = _world(runtime)
    declared = {"badge": {"title": "Badge", "type": "string"}}
    body = {"definitions": {"custom": {"properties": declared}}}
    ok(client.post("/api/v1/meta/schemas/user/default", json=body))
    refused = ok(client.post(_url(app_id), json={"template": "${source.nick}"}))
    assert "unknown attribute source.nick" in refused["error"]["message"]


def test_roles(runtime: Runtime) -> None:
    app_id, _, _ = _world(runtime)
    other = create_app(runtime, "Other")
    token = api_token(runtime, "apps", role="APP_ADMIN", apps=[app_id])
    with api_client(runtime, token) as client:
        ok(client.post(_url(app_id), json={"template": BEFORE_AT}))
        assert_okta_error(client.post(_url(other), json={"template": BEFORE_AT}), 403, "E0000006")
    reader = api_token(runtime, "reader", role="READ_ONLY_ADMIN")
    with api_client(runtime, reader) as client:
        assert_okta_error(client.post(_url(app_id), json={"template": BEFORE_AT}), 403, "E0000006")


def test_console_preview(runtime: Runtime) -> None:
    app_id, _, _ = _world(runtime)
    create_admin(runtime)
    page = f"/console/apps/{app_id}/provisioning"
    with console_client(create_server(runtime, start_worker=False)) as client:
        assert console_sign_in(client).status_code == 303
        shown = client.get(page)
        assert shown.status_code == 200 and "Username template preview" in shown.text
        previewed = client.get(page, params={"template": BEFORE_AT})
        assert "<code>ann.lee</code>" in previewed.text
        typo = client.get(page, params={"template": "${String.toLower(source.login)}"})
        assert "did you mean String.toLowerCase" in typo.text
