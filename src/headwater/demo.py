"""``headwater demo``: Headwater on SQLite, a real downstream SCIM app, and the seed's example;
when OpenLDAP's ``slapd`` is installed, a throwaway directory too, connected as a second app
("LDAP Directory") with nothing assigned yet (docs/ldap.md goes on from there).

The example is loaded through Headwater's own API, exactly as an admin script would.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from headwater.domain.ldap import LDAP_APP_NAME, LDAP_SCHEME

__all__ = ["LdapDirectory", "load_example", "load_ldap_example", "run_demo"]

DEMO_DIR = Path("data") / "demo"

PEOPLE = [
    ("taylor.smith@example.com", "Taylor", "Smith", "Accountant"),
    ("alex.johnson@example.com", "Alex", "Johnson", "Controller"),
    ("jordan.lee@example.com", "Jordan", "Lee", "Payroll Specialist"),
    ("casey.brown@example.com", "Casey", "Brown", "Marketing Lead"),
]


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json() if response.content else None


def load_example(api: httpx.Client, scim_url: str, scim_token: str) -> dict[str, Any]:
    """Accounting (assigned to the app) and AppPushGroup (pushed), with Taylor Smith and
    colleagues, as in the seed; Casey is in neither and shows what is left alone."""
    users = {}
    for login, first, last, title in PEOPLE:
        body = {
            "profile": {
                "login": login,
                "email": login,
                "firstName": first,
                "lastName": last,
                "title": title,
                "department": "Finance" if first != "Casey" else "Marketing",
            },
            "credentials": {"password": {"value": "Demo-" + secrets.token_urlsafe(12)}},
        }
        users[first] = _check(api.post("/api/v1/users?activate=true", json=body))["id"]
    groups = {}
    for name, description in (
        ("Accounting", "Assigns the demo app"),
        ("AppPushGroup", "Pushed to the demo app"),
    ):
        body = {"profile": {"name": name, "description": description}}
        groups[name] = _check(api.post("/api/v1/groups", json=body))["id"]
    for first in ("Taylor", "Alex", "Jordan"):
        _check(api.put(f"/api/v1/groups/{groups['Accounting']}/users/{users[first]}"))
    for first in ("Taylor", "Alex"):
        _check(api.put(f"/api/v1/groups/{groups['AppPushGroup']}/users/{users[first]}"))
    app = _check(
        api.post(
            "/api/v1/apps?activate=true",
            json={
                "name": "scim2headwater",
                "label": "Demo SCIM App",
                "signOnMode": "BOOKMARK",
                "settings": {"app": {"url": scim_url}},
            },
        )
    )
    _check(
        api.post(
            f"/api/v1/apps/{app['id']}/connections/default?activate=true",
            json={"baseUrl": scim_url, "profile": {"authScheme": "TOKEN", "token": scim_token}},
        )
    )
    # scim2-server answers a duplicate userName with 409: new accounts are created first, and
    # only one that already exists is looked up (and linked).
    _check(
        api.put(
            f"/api/v1/apps/{app['id']}/provisioning/settings",
            json={"lookupBatchSize": 100, "lookupBeforeCreate": False},
        )
    )
    _check(api.put(f"/api/v1/apps/{app['id']}/groups/{groups['Accounting']}", json={"priority": 0}))
    _check(
        api.post(
            f"/api/v1/apps/{app['id']}/group-push/mappings",
            json={"sourceGroupId": groups["AppPushGroup"], "targetGroupName": "AppPushGroup"},
        )
    )
    return {"app": app["id"], "users": users, "groups": groups}


@dataclass(frozen=True)
class LdapDirectory:
    """Where the demo's directory is and how Headwater binds to it."""

    url: str
    bind_dn: str
    password: str
    people_base: str
    groups_base: str
    disabled_base: str


def load_ldap_example(api: httpx.Client, directory: LdapDirectory) -> str:
    """An "LDAP Directory" app beside the SCIM one, connected to ``directory`` and active,
    with nothing assigned or pushed yet: docs/ldap.md walks through assigning Accounting and
    pushing AppPushGroup to it. Returns the app's id."""
    app = _check(
        api.post(
            "/api/v1/apps?activate=true",
            json={"name": LDAP_APP_NAME, "label": "LDAP Directory"},
        )
    )
    profile = {
        "authScheme": LDAP_SCHEME,
        "bindDn": directory.bind_dn,
        "password": directory.password,
        "peopleBaseDn": directory.people_base,
        "groupsBaseDn": directory.groups_base,
        "disabledBaseDn": directory.disabled_base,
        "deactivation": "LOCK",
    }
    _check(
        api.post(
            f"/api/v1/apps/{app['id']}/connections/default?activate=true",
            json={"baseUrl": directory.url, "profile": profile},
        )
    )
    return str(app["id"])


class _Stop(Exception):
    """SIGTERM or SIGINT asks the demo to stop: raised in the main thread."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_demo(*, port: int) -> None:
    """Run until Ctrl-C (SIGINT) or SIGTERM; either stops Headwater's server and its worker,
    then the downstream scim2-server child process (and slapd, when it was started), before
    returning."""
    import uvicorn

    from headwater.config import Settings
    from headwater.db.events import SYSTEM
    from headwater.runtime import Runtime
    from headwater.server import create_app
    from headwater.services import admins, tokens
    from headwater.serving import uvicorn_config
    from headwater.testing.scimserver import LOOPBACK_ALLOW, ScimServerProcess
    from headwater.testing.slapd import Slapd, slapd_missing

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    scim_token = secrets.token_urlsafe(24)
    # scim2-server implements SCIM Bulk, filters joined by "or" and unique userNames: the demo
    # app uses all three.
    downstream = ScimServerProcess(bearer_token=scim_token, extra_args=["--bulk"])
    # OpenLDAP's slapd, when installed: a directory of its own in a temporary folder.
    no_slapd = slapd_missing()
    slapd = None if no_slapd else Slapd(root_password=secrets.token_urlsafe(18))
    runtime: Runtime | None = None
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    # Both signals explicitly: a process started in the background by a shell inherits SIGINT
    # ignored, and Ctrl-C (or kill -INT) must still stop the demo.
    previous = signal.signal(signal.SIGTERM, _stop_on_signal)
    previous_interrupt = signal.signal(signal.SIGINT, _stop_on_signal)
    try:
        downstream.start()
        if slapd is not None:
            slapd.start()
        # The downstream runs on loopback, which the outbound policy denies unless allowed.
        settings = Settings.load(
            data_dir=DEMO_DIR,
            database_url=None,
            idle_poll_seconds=0.2,
            outbound_allow=LOOPBACK_ALLOW,
        )
        runtime = Runtime.from_settings(settings)
        with runtime.database.transaction() as session:
            _, api_token = tokens.create(session, "demo", SYSTEM)
        admin_password = secrets.token_urlsafe(12)
        with runtime.database.transaction() as session:
            admins.create(session, "admin", admin_password)
        server = uvicorn.Server(
            uvicorn_config(
                create_app(runtime), settings, host="127.0.0.1", port=port, log_level="warning"
            )
        )
        # Not the main thread: uvicorn leaves the signal handlers to us.
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/health")
        with httpx.Client(base_url=base, headers={"Authorization": f"SSWS {api_token}"}) as api:
            load_example(api, downstream.base_url, scim_token)
            if slapd is not None:
                directory = LdapDirectory(
                    slapd.url,
                    slapd.root_dn,
                    slapd.root_password,
                    slapd.people_base,
                    slapd.groups_base,
                    slapd.disabled_base,
                )
                load_ldap_example(api, directory)
        print(f"Headwater is running at {base}")
        print(f"  Console:        {base}/console  (user: admin, password: {admin_password})")
        print(f"  API:            {base}/api/v1   (OpenAPI: {base}/openapi.json)")
        print(f"  Downstream app: {downstream.base_url}  (scim2-server, bearer token auth)")
        if slapd is not None:
            print(
                f"  LDAP directory: {slapd.url}  (OpenLDAP slapd; bind DN: {slapd.root_dn}, "
                f"password: {slapd.root_password})"
            )
        else:
            print(f"  LDAP directory: not started ({no_slapd})")
        print("  SCIM dialect:   rfc7644  (per app: headwater apps set APP dialect=entra-style)")
        print('  Try:  curl -H "Authorization: SSWS $TOKEN" ' + base + "/api/v1/users")
        print("Press Ctrl-C to stop. Your API token (shown once):")
        print(api_token, flush=True)
        while thread.is_alive():
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and leave the child behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if server is not None:
                server.should_exit = True
            if thread is not None:
                thread.join(timeout=10)
            downstream.stop()
            if slapd is not None:
                slapd.close()
            if runtime is not None:
                runtime.close()
        finally:
            signal.signal(signal.SIGINT, previous_interrupt)
            signal.signal(signal.SIGTERM, previous)


def _wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
