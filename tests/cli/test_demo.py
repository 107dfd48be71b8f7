"""``headwater demo`` stops cleanly on SIGTERM as on Ctrl-C: its HTTP server and its worker
stop, and so does the scim2-server child process it started as the downstream app."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import ldap3
import pytest

from headwater.testing.scimserver import ScimServerProcess
from headwater.testing.slapd import slapd_missing
from headwater.testing.toolkit import IN_CI, Demo, children_of, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

PROMPTLY = 20.0


def accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_demo_stops_with_its_scim_server(tmp_path: Path, signum: signal.Signals) -> None:
    demo = Demo(tmp_path)
    with demo:
        assert demo.process is not None
        headers = {"Authorization": f"SSWS {demo.token}"}
        assert httpx.get(demo.base + "/api/v1/users", headers=headers).status_code == 200
        assert accepts_connections(demo.port)
        assert accepts_connections(demo.scim_port)
        assert demo.scim_server_running()

        started = time.monotonic()
        returncode = demo.stop(signum, timeout=PROMPTLY)
        took = time.monotonic() - started

        assert returncode == 0, demo.output
        assert took < PROMPTLY, demo.output
        assert not demo.scim_server_running(), f"scim2-server (pid {demo.scim_pid}) still runs"
        assert not accepts_connections(demo.scim_port)
        assert not accepts_connections(demo.port)
        assert "Traceback" not in demo.output, demo.output


@pytest.mark.parametrize("backend", ["uvicorn", "cli"])
def test_the_downstream_takes_a_token_that_starts_with_a_dash(backend: str) -> None:
    """The demo's random SCIM token (``secrets.token_urlsafe``) starts with "-" once in 64
    runs; the SCIM server must not take it for an option and refuse to start."""
    token = "-starts-with-a-dash"
    with ScimServerProcess(bearer_token=token, backend=backend) as server:  # type: ignore[arg-type]
        url = server.base_url + "/Users"
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer other"}).status_code == 401


def test_the_demo_runs_an_ldap_directory_beside_the_scim_app(tmp_path: Path) -> None:
    """With slapd installed, the demo starts one and connects it as the "LDAP Directory" app;
    the groups docs/ldap.md gives it land in the directory, which stops with everything else."""
    problem = slapd_missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"slapd is required in CI: {problem}")
        pytest.skip(problem)
    demo = Demo(tmp_path)
    with demo:
        assert demo.process is not None and demo.ldap_url is not None, demo.output
        assert demo.ldap_password is not None
        ldap_url, ldap_password = demo.ldap_url, demo.ldap_password
        children = children_of(demo.process.pid)
        assert [pid for pid, cmd in children.items() if "slapd" in cmd], children
        port = int(ldap_url.rsplit(":", 1)[1])
        headers = {"Authorization": f"SSWS {demo.token}"}
        apps = httpx.get(demo.base + "/api/v1/apps", headers=headers).json()
        assert {app["label"] for app in apps} >= {"Demo SCIM App", "LDAP Directory"}
        # As docs/ldap.md goes on: Accounting assigned, AppPushGroup pushed.
        (app,) = [a for a in apps if a["label"] == "LDAP Directory"]
        groups = httpx.get(demo.base + "/api/v1/groups", headers=headers).json()
        # Only directory groups: the SCIM app's pushed AppPushGroup is listed too, as APP_GROUP.
        ids = {g["profile"]["name"]: g["id"] for g in groups if g["type"] == "OKTA_GROUP"}
        with httpx.Client(base_url=demo.base + "/api/v1", headers=headers) as api:
            assigned = api.put(f"/apps/{app['id']}/groups/{ids['Accounting']}", json={})
            assert assigned.status_code == 200, assigned.text
            mapping = {"sourceGroupId": ids["AppPushGroup"], "targetGroupName": "AppPushGroup"}
            pushed = api.post(f"/apps/{app['id']}/group-push/mappings", json=mapping)
            assert pushed.status_code in (200, 201), pushed.text

        def read() -> tuple[set[str], set[str]]:
            server = ldap3.Server(ldap_url, get_info=ldap3.NONE)
            conn = ldap3.Connection(server, "cn=admin,dc=example,dc=org", ldap_password)
            conn.bind()
            try:
                people_base, groups_base = (
                    "ou=people,dc=example,dc=org",
                    "ou=groups,dc=example,dc=org",
                )
                conn.search(people_base, "(objectClass=inetOrgPerson)", attributes=["uid"])
                people = {str(e.uid) for e in conn.entries}
                conn.search(groups_base, "(cn=AppPushGroup)", attributes=["member"])
                members = {str(m) for e in conn.entries for m in e.member.values} - {""}
            finally:
                conn.unbind()
            return people, members

        wanted = {"taylor.smith@example.com", "alex.johnson@example.com", "jordan.lee@example.com"}

        def loaded() -> tuple[set[str], set[str]] | None:
            people, members = read()
            return (people, members) if people == wanted and len(members) == 2 else None

        found = wait_for(loaded, "the example in the directory", timeout=60)
        assert all(dn.startswith("uid=") for dn in found[1])
        assert demo.stop(signal.SIGTERM, timeout=PROMPTLY) == 0, demo.output
        assert not accepts_connections(port)
        assert "Traceback" not in demo.output, demo.output
