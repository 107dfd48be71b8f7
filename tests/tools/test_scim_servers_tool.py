"""The SCIM servers by name: runners, the toolkit's reader against each, and the PATCH forms
that set them apart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.servers import (
    SERVER_NAMES,
    DjangoScimProcess,
    ScimmyProcess,
    ScimServer,
    auth_headers,
    scimmy_missing,
    server_process,
)
from headwater.testing.toolkit import (
    PATCH_SCHEMA,
    SCIM_HEADERS,
    scim_reader,
    scim_server,
    scim_user,
    unique,
)

# The session fixture serving each server (tests/tools/conftest.py).
FIXTURES = {"scim2-server": "scim_server", "django-scim2": "django_scim", "scimmy": "scimmy"}


@pytest.fixture(params=SERVER_NAMES)
def running(request: pytest.FixtureRequest) -> tuple[str, ScimServer]:
    name: str = request.param
    server: ScimServer = request.getfixturevalue(FIXTURES[name])
    return name, server


def test_names_and_runners() -> None:
    assert SERVER_NAMES == ("scim2-server", "django-scim2", "scimmy")
    assert isinstance(server_process("scim2-server", bearer_token="t"), ScimServerProcess)
    assert isinstance(server_process("django-scim2"), DjangoScimProcess)
    scimmy = server_process("scimmy", bearer_token="t")
    assert isinstance(scimmy, ScimmyProcess)
    assert scimmy.bearer_token == "t"
    assert auth_headers(scimmy) == {"Authorization": "Bearer t"}
    assert auth_headers(server_process("scimmy")) == {}
    with pytest.raises(ValueError, match="unknown SCIM server 'okta'"):
        server_process("okta")
    with pytest.raises(RuntimeError, match="not started"):
        _ = DjangoScimProcess().base_url

    import headwater.testing as tools

    assert tools.server_process is server_process
    assert tools.SERVER_NAMES == SERVER_NAMES


def test_reader_against_each_server(running: tuple[str, ScimServer]) -> None:
    """The toolkit's reader reads users and groups with members, and changes them, on each."""
    name, server = running
    scim = scim_reader(name, server)
    alice, bob = f"{unique('reader-a')}@example.org", f"{unique('reader-b')}@example.org"
    alice_id, bob_id = scim.create_user(alice), scim.create_user(bob)
    group = unique("reader-group")
    group_id = scim.create_group(group, [alice_id])
    assert scim.member_ids(group) == {alice_id}
    scim.patch_members(group_id, add=[bob_id], remove=[alice_id])
    assert scim.members(group) == {bob}
    user = scim.user(bob.upper())
    assert user is not None
    assert user["id"] == bob_id
    created = scim.user(alice)
    assert created is not None
    assert created["active"] is True
    scim.delete_group(group_id)
    assert scim.group(group) is None
    scim.delete_user(alice_id)
    assert scim.user(alice) is None


# What each server answers to the two ways of removing one member (RFC 7644 section 3.5.2.2's
# path filter, and the value list Entra ID sends); docs/compatibility.md has the whole table.
REMOVAL = {
    "scim2-server": {"path filter": 204, "value list": 400},
    "django-scim2": {"path filter": 501, "value list": 200},
    "scimmy": {"path filter": 200, "value list": 200},
}


@pytest.mark.parametrize("form", ["path filter", "value list"])
def test_member_removal_forms(running: tuple[str, ScimServer], form: str) -> None:
    name, server = running
    scim = scim_reader(name, server)
    member = scim.create_user(f"{unique('removal')}@example.org")
    group_id = scim.create_group(unique("removal-group"), [member])
    operation: dict[str, Any]
    if form == "path filter":
        operation = {"op": "remove", "path": f'members[value eq "{member}"]'}
    else:
        operation = {"op": "remove", "path": "members", "value": [{"value": member}]}
    body: dict[str, Any] = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
    with httpx.Client(headers={**SCIM_HEADERS, **auth_headers(server)}, trust_env=False) as http:
        response = http.patch(f"{server.base_url}/Groups/{group_id}", json=body)
    assert response.status_code == REMOVAL[name][form], response.text
    still_there = member in {m["value"] for m in scim.get(f"Groups/{group_id}").get("members", [])}
    assert still_there is (response.status_code >= 400)


@pytest.mark.parametrize("name", ["django-scim2", "scimmy"])
def test_toolkit_starts_and_stops_a_server(name: str) -> None:
    with scim_server(name, bearer_token="-starts-with-a-dash") as (server, scim):
        assert server.running
        assert scim.users() == []
        url = f"{server.base_url}/Users"
        assert httpx.get(url, trust_env=False).status_code == 401
        scim.create_user("first@example.org")
        assert [u["userName"] for u in scim.users()] == ["first@example.org"]
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=1, trust_env=False)
    # Each start is a new, empty server.
    with scim_server(name) as (server, scim):
        assert scim.users() == []


def test_start_failure_reports_child_output() -> None:
    server = DjangoScimProcess(extra_args=["--no-such-option"])
    with pytest.raises(RuntimeError, match="unrecognized arguments: --no-such-option"):
        server.start()
    assert not server.running
    assert server.output() == ""


def test_scimmy_without_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import headwater.testing.servers.process as process

    monkeypatch.setattr(process, "SCIMMY_DIR", tmp_path)
    if shutil.which("node") is not None:
        assert scimmy_missing() == (
            f"the scimmy server's packages are not installed: run `npm ci` in {tmp_path}"
        )
    with pytest.raises(RuntimeError, match="scimmy"):
        ScimmyProcess().start()


def test_user_names_in_any_case(running: tuple[str, ScimServer]) -> None:
    """Whether ``userName eq`` ignores case, as RFC 7643 says it should (userName is not
    caseExact), and whether a create in another case is refused."""
    name, server = running
    user_name = f"{unique('Case')}@Example.org"
    headers = {**SCIM_HEADERS, **auth_headers(server)}
    with httpx.Client(base_url=server.base_url, headers=headers, trust_env=False) as http:
        assert http.post("/Users", json=scim_user(user_name)).status_code == 201
        lower = http.get("/Users", params={"filter": f'userName eq "{user_name.lower()}"'})
        recreate = http.post("/Users", json=scim_user(user_name.lower()))
    expected = {
        "scim2-server": (1, 409),
        "django-scim2": (1, 201),
        "scimmy": (0, 409),
    }
    assert (lower.json()["totalResults"], recreate.status_code) == expected[name]
