"""LDAP apps in the console: created by choosing their kind, connected through an LDAP form
whose values go through the API's validation, tested and saved against a real slapd, and
whose bind password never comes back in a page, a flash message or a log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.domain.ldap import LDAP_APP_NAME
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.slapd import Slapd
from headwater.testing.toolkit import console_client, console_csrf, console_sign_in, create_admin


def _flashes(page: str) -> str:
    return " ".join(re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', page))


def _create(client: TestClient, **form: str) -> str:
    """Submit the console's Add application form; returns where it led."""
    form["csrf_token"] = console_csrf(client, "/console/apps")
    response = client.post("/console/apps", data=form)
    assert response.status_code == 303
    return str(response.headers["location"])


def _apps(runtime: Runtime) -> dict[str, str]:
    with runtime.database.read() as session:
        rows = session.execute(select(t.App.label, t.App.name)).all()
    return {label: name for label, name in rows}


def _form(slapd: Slapd, **changes: str) -> dict[str, str]:
    """The LDAP connection form as a browser submits it (StartTLS left unchecked)."""
    values = {
        "base_url": slapd.url,
        "bind_dn": slapd.root_dn,
        "password": slapd.root_password,
        "people_base": slapd.people_base,
        "groups_base": slapd.groups_base,
        "disabled_base": slapd.disabled_base,
        "dn_template": "uid=${userName}",
        "match_attribute": "uid",
        "ca_pem": "",
        "deactivation": "LOCK",
        "group_class": "groupOfNames",
        "on_missing": "RECREATE",
        "connect_timeout": "3",
        "request_timeout": "10",
    }
    values.update(changes)
    return values


@pytest.fixture
def console(sqlite_runtime: Runtime) -> Iterator[TestClient]:
    create_admin(sqlite_runtime)
    with console_client(create_app(sqlite_runtime, start_worker=False)) as client:
        assert console_sign_in(client).status_code == 303
        yield client


def test_the_console_creates_an_app_of_either_kind(
    sqlite_runtime: Runtime, console: TestClient
) -> None:
    client = console
    page = client.get("/console/apps").text
    assert '<option value="ldap">LDAP directory</option>' in page
    where = _create(client, label="Corp Directory", kind="ldap", name="")
    assert where.endswith("/provisioning")
    # A kind and a name that disagree are refused, as the name decides the kind.
    _create(client, label="Wrong Name", kind="ldap", name="corp_ldap")
    shown = _flashes(client.get("/console/apps").text)
    assert "name: an LDAP directory is named headwater_ldap" in shown
    _create(client, label="Wrong Kind", kind="scim", name=LDAP_APP_NAME)
    shown = _flashes(client.get("/console/apps").text)
    assert "name: headwater_ldap is for LDAP directories" in shown
    assert _apps(sqlite_runtime) == {"Corp Directory": LDAP_APP_NAME}
    _create(client, label="Wiki", kind="scim")
    assert _apps(sqlite_runtime)["Wiki"] == "wiki"

    ldap_page = client.get(where).text
    connection_form = ldap_page.split('/connection">', 1)[1].split("</form>", 1)[0]
    names = ("base_url", "start_tls", "bind_dn", "password", "people_base", "groups_base")
    more = ("disabled_base", "ca_pem", "deactivation", "dn_template", "match_attribute")
    last = ("group_class", "on_missing", "connect_timeout", "request_timeout")
    for name in (*names, *more, *last):  # each field once (a browser sends every copy)
        assert connection_form.count(f'name="{name}"') == 1, name
    assert "SCIM 2.0 base URL" not in ldap_page
    assert '<textarea id="f-ca_pem" name="ca_pem"' in ldap_page
    assert '<input id="f-start_tls" name="start_tls" type="checkbox">' in ldap_page
    for select_name in ("deactivation", "group_class", "on_missing"):
        assert f'<select id="f-{select_name}" name="{select_name}">' in ldap_page
    assert '<option value="LOCK" selected>' in ldap_page  # the profile's defaults
    assert 'name="token"' not in ldap_page and 'name="auth_scheme"' not in ldap_page

    wiki = client.get(f"/console/apps/{_id(client, 'Wiki')}/provisioning").text
    assert "SCIM 2.0 base URL" in wiki and 'name="token"' in wiki
    assert '<option value="LDAP"' not in wiki and 'name="bind_dn"' not in wiki


def _id(client: TestClient, label: str) -> str:
    found = re.search(
        rf'href="/console/apps/([^"/]+)">{label}</a>', client.get("/console/apps").text
    )
    assert found
    return found[1]


def test_an_ldap_connection_is_tested_and_saved_without_showing_the_password(
    sqlite_runtime: Runtime,
    console: TestClient,
    slapd: Slapd,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = console
    app_id = _create(client, label="Directory", kind="ldap").split("/")[-2]
    url = f"/console/apps/{app_id}/connection"
    csrf = console_csrf(client, f"/console/apps/{app_id}/provisioning")
    password = slapd.root_password

    tested = client.post(url, data={**_form(slapd), "action": "test", "csrf_token": csrf})
    assert tested.status_code == 200 and "Connection test succeeded" in _flashes(tested.text)
    assert f'value="{slapd.people_base}"' in tested.text  # the form comes back as entered
    with sqlite_runtime.database.read() as session:
        assert session.get(t.AppConnection, app_id) is None  # a test stores nothing

    saved = client.post(url, data={**_form(slapd), "action": "save", "csrf_token": csrf})
    assert saved.status_code == 303
    page = client.get(f"/console/apps/{app_id}/provisioning").text
    assert "Connection saved and enabled." in _flashes(page)
    assert f"LDAP URL <code>{slapd.url}</code>, LDAP" in page
    assert f'value="{slapd.root_dn}"' in page and '<option value="LOCK" selected>' in page
    with sqlite_runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.status == "ENABLED" and row.secret_encrypted
        stored = sqlite_runtime.secrets.open(row.secret_encrypted)
    assert stored["password"] == password and stored["connect_timeout"] == "3.0"

    # A blank password keeps the stored one (the save binds with it); an emptied field clears.
    changed = _form(
        slapd,
        password="",
        deactivation="DELETE",
        group_class="groupOfUniqueNames",
        on_missing="TASK",
        connect_timeout="",
    )
    assert client.post(url, data={**changed, "action": "save", "csrf_token": csrf}).is_redirect
    with sqlite_runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.secret_encrypted
        stored = sqlite_runtime.secrets.open(row.secret_encrypted)
    assert stored["password"] == password and stored["deactivation"] == "DELETE"
    assert stored["group_class"] == "groupOfUniqueNames" and stored["on_missing"] == "TASK"
    assert "connect_timeout" not in stored
    page = client.get(f"/console/apps/{app_id}/provisioning").text
    assert '<option value="groupOfUniqueNames" selected>' in page

    wrong = "wrong-bind-password-5e1f"
    refused = client.post(
        url, data={**_form(slapd, password=wrong), "action": "save", "csrf_token": csrf}
    )
    assert refused.status_code == 400
    assert "invalidCredentials" in _flashes(refused.text)
    for html in (tested.text, page, refused.text):
        assert password not in html and wrong not in html
    assert password not in caplog.text and wrong not in caplog.text
    with sqlite_runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.secret_encrypted
        assert sqlite_runtime.secrets.open(row.secret_encrypted)["password"] == password


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"deactivation": "MOVE", "disabled_base": ""},
            "profile.disabledBaseDn: required when deactivation is MOVE",
        ),
        ({"people_base": "not a dn"}, "profile.peopleBaseDn: not a valid distinguished name"),
        ({"base_url": "https://127.0.0.1"}, "baseUrl: must be an ldap:// or ldaps:// URL"),
        ({"connect_timeout": "500"}, "profile.connectTimeout: must be between 0.1 and 120"),
        ({"ca_pem": "not a certificate"}, "profile.caCertificate: must be PEM certificates"),
        ({"deactivation": "ERASE"}, "profile.deactivation: must be LOCK, MOVE or DELETE"),
        ({"password": ""}, "profile.password: required"),
    ],
)
def test_the_service_refuses_what_the_api_refuses_and_nothing_is_stored(
    sqlite_runtime: Runtime,
    console: TestClient,
    slapd: Slapd,
    changes: dict[str, str],
    message: str,
) -> None:
    client = console
    app_id = _create(client, label="Directory", kind="ldap").split("/")[-2]
    csrf = console_csrf(client, f"/console/apps/{app_id}/provisioning")
    form = {**_form(slapd, **changes), "csrf_token": csrf}
    for action in ("test", "save", "save_disabled"):
        response = client.post(
            f"/console/apps/{app_id}/connection", data={**form, "action": action}
        )
        assert response.status_code == 400
        assert message in _flashes(response.text)
        assert slapd.root_password not in response.text
        assert f'value="{slapd.root_dn}"' in response.text  # what was typed is kept
    with sqlite_runtime.database.read() as session:
        assert session.get(t.AppConnection, app_id) is None


def test_a_new_ldap_url_needs_the_password_again(
    sqlite_runtime: Runtime, console: TestClient, slapd: Slapd
) -> None:
    client = console
    app_id = _create(client, label="Directory", kind="ldap").split("/")[-2]
    url = f"/console/apps/{app_id}/connection"
    csrf = console_csrf(client, f"/console/apps/{app_id}/provisioning")
    form = {**_form(slapd), "csrf_token": csrf}
    assert client.post(url, data={**form, "action": "save_disabled"}).is_redirect
    moved = {**form, "base_url": f"ldap://localhost:{slapd.port}", "password": ""}
    refused = client.post(url, data={**moved, "action": "save"})
    assert refused.status_code == 400
    assert "profile.password: required again when baseUrl changes" in _flashes(refused.text)
    with sqlite_runtime.database.read() as session:
        row = session.get(t.AppConnection, app_id)
        assert row is not None and row.base_url == slapd.url and row.status == "DISABLED"
