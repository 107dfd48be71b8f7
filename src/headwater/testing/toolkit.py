"""The one test toolkit: runtimes, seeding through the services, converging, reading back.

Tests and benchmarks import everything they share from here (``from headwater.testing.toolkit
import ...``); pytest fixtures stay in the ``conftest.py`` files and are built from these tools.

Rules this module keeps:

* **Seeding goes through the services** (``headwater.services``), in one transaction per call,
  on behalf of :data:`~headwater.db.events.SYSTEM`. A seeded state therefore obeys the same rules,
  writes the same system log events and enqueues the same reconcile keys as an admin's change.
  The few helpers that write rows directly (:func:`record_app_group`, :func:`clear_keys`) say so
  and say why.
* **One meaning per name**: :func:`assign_group` is the service call (keys enqueued in the same
  transaction); :func:`create_scim_app` is the only way to make an app with a provisioning
  connection; :func:`converge` is the only way to drain the outbox; :class:`ScimReader` is the
  only way to read a downstream; :func:`assert_okta_error` is the only check of an Okta error.
* Only public surfaces: the services, ``Runtime``/``runtime.worker()``, the HTTP API and the other
  ``headwater.testing`` tools. Tables are read (never written, but for the two helpers above) to
  observe what the system did.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import delete, event, func, select, update

from headwater import clock, ids
from headwater.config import Settings
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.domain.ldap import LDAP_APP_NAME, LDAP_SCHEME
from headwater.domain.lifecycle import Action
from headwater.domain.settings import ProvisioningSettings, check_changes
from headwater.engine import connection_test
from headwater.runtime import Runtime
from headwater.services import (
    admins,
    apps,
    assignments,
    connections,
    directory,
    group_rules,
    grouppush,
    tokens,
)
from headwater.testing.faultproxy import FaultProxyThread
from headwater.testing.scimserver import (
    LOOPBACK_ALLOW,
    ScimApplication,
    ScimServerProcess,
    free_port,
    in_process_app,
)
from headwater.testing.servers import ScimServer, scimmy_missing, server_process

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from playwright.sync_api import Page
    from typer.testing import Result

    from headwater.connectors.scim import ScimConnector
    from headwater.testing.samba import SambaDC
    from headwater.testing.slapd import Slapd

__all__ = [
    "ADMIN",
    "ADMIN_PASSWORD",
    "ERROR_SCHEMA",
    "GROUP_SCHEMA",
    "IN_CI",
    "LOOPBACK_ALLOW",
    "PATCH_SCHEMA",
    "SCIM_HEADERS",
    "USER_PASSWORD",
    "USER_SCHEMA",
    "Cli",
    "Demo",
    "InProcessScim",
    "Listener",
    "LiveServer",
    "MovableClock",
    "QueuedKey",
    "RecordingTransport",
    "ScimReader",
    "Sent",
    "StubResolver",
    "add_member",
    "alive",
    "api_client",
    "api_token",
    "assert_okta_error",
    "assign_group",
    "assign_user",
    "change_status",
    "children_of",
    "clean_env",
    "clear_keys",
    "console_client",
    "console_csrf",
    "console_sign_in",
    "converge",
    "count_rows",
    "create_admin",
    "create_app",
    "create_group",
    "create_ldap_app",
    "create_rule",
    "create_scim_app",
    "create_user",
    "create_users",
    "creates_per_user_name",
    "delete_group",
    "event_types",
    "events",
    "flash",
    "import_users",
    "links",
    "loopback_transport",
    "make_runtime",
    "members",
    "numbered_profile",
    "ok",
    "plain",
    "proxied_scim_server",
    "push_group",
    "queued",
    "queued_keys",
    "queued_subjects",
    "record_app_group",
    "record_task",
    "remove_member",
    "rename_group",
    "require_module",
    "require_scim_server",
    "row_counts",
    "run_async",
    "scim_group",
    "scim_patch_members",
    "scim_reader",
    "scim_server",
    "scim_user",
    "sdk_ok",
    "set_mapping_status",
    "sign_in",
    "statements",
    "unassign_group",
    "unassign_user",
    "unique",
    "unlink_mapping",
    "update_settings",
    "update_user",
    "wait_for",
]

T = TypeVar("T")

#: ``CI=true``: whatever a local run may skip (PostgreSQL, Chromium, an optional SDK) must fail.
IN_CI = os.environ.get("CI", "").lower() == "true"
#: A password every user-creating helper and test may use (meets the password rules).
USER_PASSWORD = "Correct-Horse-42"
#: The console admin the browser tests sign in as.
ADMIN = "admin"
ADMIN_PASSWORD = "correct-horse-battery"

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_HEADERS = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}


# --- Environment: optional dependencies, runtimes, API clients, a live server -----------------


def require_module(name: str) -> Any:
    """Import ``name``; when it is missing, skip the calling test module locally and fail it
    under ``CI=true`` (a broken optional dependency must not silently skip a suite in CI)."""
    import pytest

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"{name} is required in CI and cannot be imported: {exc}", pytrace=False)
        pytest.skip(f"{name} cannot be imported: {exc}", allow_module_level=True)


def require_scim_server(name: str) -> None:
    """Skip the calling test locally when the SCIM server ``name`` cannot run on this machine
    (scimmy without Node.js or ``npm ci``), and fail it under ``CI=true``."""
    import pytest

    missing = scimmy_missing() if name == "scimmy" else None
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"the {name} SCIM server is required in CI: {missing}", pytrace=False)
    pytest.skip(f"the {name} SCIM server cannot run here: {missing}")


def make_runtime(
    url: str, data_dir: Path, *, secret_key: str | None = None, **settings: Any
) -> Runtime:
    """A migrated runtime on ``url`` without an embedded worker (tests drive workers).

    ``secret_key`` defaults to a fresh key; pass one to share it with worker subprocesses.
    ``settings`` override :class:`~headwater.config.Settings` fields (``retry_base_seconds``...).
    The outbound policy allows :data:`LOOPBACK_ALLOW` (the downstreams and proxies the test
    tools start) unless ``outbound_allow`` says otherwise.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    settings.setdefault("outbound_allow", LOOPBACK_ALLOW)
    config = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=secret_key or Fernet.generate_key().decode(),
        embedded_worker=False,
        **settings,
    )
    return Runtime.from_settings(config)


def loopback_transport(**options: Any) -> httpx.AsyncBaseTransport:
    """The transport Headwater's connectors use, with an outbound policy that allows
    :data:`LOOPBACK_ALLOW` (for a bare connector to a server on loopback); ``options`` are
    :class:`~headwater.connectors.outbound.OutboundTransport` keywords (``resolver``...)."""
    from headwater.connectors.outbound import OutboundPolicy, OutboundTransport

    return OutboundTransport(OutboundPolicy.from_text(LOOPBACK_ALLOW), **options)


def api_token(
    runtime: Runtime,
    name: str = "test-token",
    *,
    role: str = "SUPER_ADMIN",
    apps: Sequence[str] = (),
    groups: Sequence[str] = (),
    lifetime: timedelta | None = None,
) -> str:
    """A new SSWS token (the service logs ``system.api_token.create``), a super admin unless
    ``role`` says otherwise (``apps``/``groups``: the scoped roles' scope); returns the
    plaintext."""
    with runtime.database.transaction() as session:
        _, plaintext = tokens.create(
            session, name, SYSTEM, role=role, app_ids=apps, group_ids=groups, lifetime=lifetime
        )
    return plaintext


def create_admin(
    runtime: Runtime,
    username: str = ADMIN,
    password: str = ADMIN_PASSWORD,
    *,
    role: str = "SUPER_ADMIN",
    apps: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> str:
    """A console admin (through the service); returns the id."""
    with runtime.database.transaction() as session:
        admin = admins.create(
            session, username, password, role=role, app_ids=apps, group_ids=groups
        )
        return admin.id


class MovableClock:
    """Headwater's clock (``headwater.clock.utcnow``), moved forward on demand while in use:
    ``with MovableClock() as clock: ...; clock.advance(timedelta(minutes=31))``."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._real = clock.utcnow

    def now(self) -> datetime:
        return self._real() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def __enter__(self) -> MovableClock:
        clock.utcnow = self.now
        return self

    def __exit__(self, *exc: object) -> None:
        clock.utcnow = self._real


@contextlib.contextmanager
def console_client(app: FastAPI, *, address: str = "127.0.0.1") -> Iterator[TestClient]:
    """A cookie-keeping client of ``app``'s console, as a browser at ``address`` would be
    (several clients may share one app: its sign-in limits count per address)."""
    from fastapi.testclient import TestClient

    with TestClient(app, client=(address, 50000), follow_redirects=False) as client:
        yield client


def console_sign_in(
    client: TestClient, username: str = ADMIN, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    """Submit the console's sign-in form (a 303 to the console when it worked)."""
    form = client.get("/console/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found, form.text[:500]
    response: httpx.Response = client.post(
        "/console/login",
        data={"csrf_token": found[1], "username": username, "password": password, "next": ""},
    )
    return response


def console_csrf(client: TestClient, path: str = "/console/people") -> str:
    """The CSRF token of a console page (for posting a form)."""
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, (page.status_code, page.text[:500])
    return found[1]


@contextlib.contextmanager
def api_client(
    runtime: Runtime,
    token: str | None = None,
    *,
    raise_server_exceptions: bool = False,
    address: str = "127.0.0.1",
) -> Iterator[TestClient]:
    """Headwater's API and console in-process, authenticated with ``token`` (else a new one),
    called from ``address`` (loopback, as a script on the server's host would be)."""
    from fastapi.testclient import TestClient

    from headwater.server import create_app

    plaintext = token or api_token(runtime, f"client-{next(_serial)}")
    app = create_app(runtime, start_worker=False)
    with TestClient(
        app, raise_server_exceptions=raise_server_exceptions, client=(address, 50000)
    ) as client:
        client.headers["Authorization"] = f"SSWS {plaintext}"
        yield client


class Listener:
    """A TCP listener on a loopback address that only counts the connections made to it, to
    prove that nothing was sent there (``accepted`` stays 0). ``port`` 0 picks a free one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.accepted = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((host, port))
        self._socket.listen(16)
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="listener", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


class StubResolver:
    """A name resolver for the outbound policy that answers from a table instead of DNS (host
    → addresses; a name it does not know fails as an unknown name does). ``calls`` lists the
    names asked. Install it with ``runtime.connectors.resolver = StubResolver({...})``."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name: list(addresses) for name, addresses in table.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


class LiveServer:
    """Headwater served by uvicorn in a thread on a loopback port (with its worker, if asked),
    configured as ``headwater serve`` configures it (``fast``: httptools and uvloop, or h11 and
    asyncio; by default what ``serve`` would pick)."""

    def __init__(
        self, runtime: Runtime, *, start_worker: bool = False, fast: bool | None = None
    ) -> None:
        import uvicorn

        from headwater.server import create_app
        from headwater.serving import uvicorn_config

        self.runtime = runtime
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(
            create_app(runtime, start_worker=start_worker),
            runtime.settings,
            host="127.0.0.1",
            port=self.port,
            fast=fast,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(self._healthy, "the live server to answer /health", timeout=15, interval=0.05)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    Outside an event loop this is ``asyncio.run``; inside one (an async test) the coroutine runs
    on its own loop in a helper thread while the caller waits, so the same helper serves both.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def wait_for(
    check: Callable[[], T | None], what: str, *, timeout: float = 20.0, interval: float = 0.25
) -> T:
    """Poll until ``check`` returns something truthy (bounded); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A fresh name, for resources on a server shared by several tests."""
    return f"{prefix}-{next(_serial)}"


# --- Seeding, through the services only -------------------------------------------------------


def _profile(
    login: str, first: str | None, last: str | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    local = login.partition("@")[0]
    given, dot, family = local.partition(".")
    return {
        "login": login,
        "email": login,
        "firstName": first or given.title(),
        "lastName": last or (family.title() if dot else "Tester"),
        **extra,
    }


def create_user(
    runtime: Runtime,
    login: str,
    *,
    first: str | None = None,
    last: str | None = None,
    password: str | None = None,
    activate: bool = True,
    group_ids: Sequence[str] = (),
    **profile: Any,
) -> str:
    """One user, as Okta's create: ACTIVE with a password, else PROVISIONED; STAGED unless
    ``activate``. Names default from the login (``taylor.smith@`` is Taylor Smith, ``ann@`` is
    Ann Tester); extra keyword arguments are profile attributes. Returns the id."""
    with runtime.database.transaction() as session:
        user = directory.create_user(
            session,
            SYSTEM,
            _profile(login, first, last, profile),
            password=password,
            activate=activate,
            group_ids=group_ids,
        )
        return user.id


def update_user(runtime: Runtime, user_id: str, **changes: Any) -> None:
    """Merge ``changes`` into the user's profile (Okta's partial POST; ``None`` removes)."""
    with runtime.database.transaction() as session:
        directory.update_user(session, SYSTEM, user_id, changes, replace=False)


def numbered_profile(
    prefix: str, index: int, *, digits: int = 5, domain: str = "example.com"
) -> dict[str, str]:
    """The profile :func:`create_users` gives user number ``index``."""
    login = f"{prefix}{index:0{digits}d}@{domain}"
    return {
        "login": login,
        "email": login,
        "firstName": prefix.title(),
        "lastName": f"{prefix.title()} {index:0{digits}d}",
    }


def create_users(
    runtime: Runtime,
    count: int,
    *,
    prefix: str = "user",
    start: int = 0,
    digits: int = 5,
    domain: str = "example.com",
    group_ids: Sequence[str] = (),
    chunk: int = 2000,
) -> list[str]:
    """``count`` PROVISIONED users numbered from ``start`` (:func:`numbered_profile`), each
    created by the service, optionally straight into ``group_ids``; ``chunk`` users per
    transaction. Returns the ids in creation order."""
    created: list[str] = []
    numbers = range(start, start + count)
    for first in range(0, count, chunk):
        with runtime.database.transaction() as session:
            for index in numbers[first : first + chunk]:
                profile = numbered_profile(prefix, index, digits=digits, domain=domain)
                user = directory.create_user(session, SYSTEM, profile, group_ids=group_ids)
                created.append(user.id)
    return created


def import_users(
    runtime: Runtime,
    count: int,
    *,
    prefix: str = "user",
    start: int = 0,
    digits: int = 5,
    domain: str = "example.com",
    group_ids: Sequence[str] = (),
    chunk: int = 2000,
) -> list[str]:
    """The same people as :func:`create_users`, written by the import path
    (:func:`directory.import_users`: one multi-row insert and one set-based enqueue per
    ``chunk``), so a benchmark's 100,000 people take a minute rather than most of an hour.
    They are ACTIVE (an import activates), not PROVISIONED; both get accounts."""
    created: list[str] = []
    for first in range(start, start + count, chunk):
        last = min(first + chunk, start + count)
        with runtime.database.transaction() as session:
            groups = [directory.find_group(session, group_id) for group_id in group_ids]
            people = [
                directory.ImportedUser(
                    numbered_profile(prefix, index, digits=digits, domain=domain), groups=groups
                )
                for index in range(first, last)
            ]
            created += directory.import_users(session, SYSTEM, people)
    return created


def change_status(runtime: Runtime, user_id: str, action: str) -> None:
    """A lifecycle action: ``activate``, ``deactivate``, ``suspend``, ``unsuspend``,
    ``reactivate``."""
    with runtime.database.transaction() as session:
        directory.change_status(session, SYSTEM, user_id, Action(action))


def create_group(
    runtime: Runtime,
    name: str,
    members: Iterable[str] = (),
    *,
    description: str | None = None,
) -> str:
    """An OKTA_GROUP (push rules apply to it) with ``members`` added; returns the id."""
    profile: dict[str, Any] = {"name": name}
    if description is not None:
        profile["description"] = description
    with runtime.database.transaction() as session:
        group = directory.create_group(session, SYSTEM, profile)
        for user_id in members:
            directory.add_member(session, SYSTEM, group.id, user_id)
        return group.id


def add_member(runtime: Runtime, group_id: str, user_id: str) -> None:
    with runtime.database.transaction() as session:
        directory.add_member(session, SYSTEM, group_id, user_id)


def remove_member(runtime: Runtime, group_id: str, user_id: str) -> None:
    with runtime.database.transaction() as session:
        directory.remove_member(session, SYSTEM, group_id, user_id)


def rename_group(runtime: Runtime, group_id: str, name: str) -> None:
    """Replace the group's profile with ``{"name": name}`` (Okta's PUT)."""
    with runtime.database.transaction() as session:
        directory.replace_group(session, SYSTEM, group_id, {"name": name})


def delete_group(runtime: Runtime, group_id: str) -> None:
    with runtime.database.transaction() as session:
        directory.delete_group(session, SYSTEM, group_id)


def create_rule(
    runtime: Runtime,
    name: str,
    expression: str,
    group_ids: Sequence[str],
    *,
    activate: bool = True,
    exclude_users: Sequence[str] = (),
    exclude_groups: Sequence[str] = (),
) -> str:
    """A group rule through the service; ``activate`` also evaluates it over the directory (as
    the API does). Returns the id."""
    spec = group_rules.RuleSpec(name, expression, group_ids, exclude_users, exclude_groups)
    with runtime.database.transaction() as session:
        rule_id = group_rules.create_rule(session, SYSTEM, spec).id
    if activate:
        with runtime.database.transaction() as session:
            group_rules.activate_rule(session, SYSTEM, rule_id)
        group_rules.run_sweep(runtime.database, rule_id, SYSTEM)
    return rule_id


def members(runtime: Runtime, group_id: str) -> set[str]:
    """Ids of the group's members (manual or by rule)."""
    with runtime.database.read() as session:
        query = select(t.Membership.user_id).where(t.Membership.group_id == group_id)
        return set(session.execute(query).scalars())


def create_app(
    runtime: Runtime,
    label: str = "Wiki",
    *,
    url: str = "https://wiki.example.com",
    activate: bool = True,
) -> str:
    """A BOOKMARK app (sign-on only: nothing to provision); returns the id."""
    spec = apps.AppSpec(label, "bookmark", "BOOKMARK", {"settings": {"app": {"url": url}}})
    with runtime.database.transaction() as session:
        return apps.create_app(session, SYSTEM, spec, activate=activate).id


def update_settings(runtime: Runtime, app_id: str, **changes: Any) -> None:
    """Change provisioning settings by field name (``update_method="PATCH"``), validated as the
    API validates them."""
    checked = check_changes(changes)
    with runtime.database.transaction() as session:
        apps.update_settings(session, SYSTEM, app_id, checked)


def create_scim_app(
    runtime: Runtime,
    base_url: str,
    label: str = "Downstream",
    *,
    token: str | None = None,
    enabled: bool = True,
    **settings: Any,
) -> str:
    """An active app provisioning to the SCIM server at ``base_url`` (bearer ``token``, else no
    authentication), then ``settings`` applied (:func:`update_settings`). As the API does, an
    enabled connection is tested first: a downstream that refuses it fails here. Returns the
    id."""
    spec = connections.ConnectionSpec(
        "TOKEN" if token else "NONE", base_url, {"token": token} if token else {}
    )
    with runtime.database.transaction() as session:
        app_id = apps.create_app(
            session, SYSTEM, apps.AppSpec(label, "scim2headwater"), activate=True
        ).id
    with runtime.database.read() as session:
        prepared = connections.prepare_connection(session, runtime.secrets, app_id, spec)
    announced = None
    if enabled:
        announced = run_async(lambda: connection_test.probe(runtime.connectors, prepared))
    with runtime.database.transaction() as session:
        connections.save_connection(
            session, SYSTEM, prepared, enabled=enabled, capabilities=announced
        )
    if settings:
        update_settings(runtime, app_id, **settings)
    return app_id


def create_ldap_app(
    runtime: Runtime,
    server: Slapd | SambaDC,
    label: str = "Directory",
    *,
    password: str | None = None,
    enabled: bool = True,
    profile: Mapping[str, str] | None = None,
    **settings: Any,
) -> str:
    """An active LDAP app (``headwater_ldap``) binding to ``server`` as its root DN, its
    people, groups and disabled bases; ``profile`` overrides connection fields by their
    secret keys (``deactivation``...), ``settings`` are applied as :func:`update_settings`
    applies them. As the API does, an enabled connection is tested first. Returns the id.

    A Samba AD DC (``SambaDC``) is bound to as the domain's Administrator with the
    ``activeDirectory`` dialect; its bases come from ``profile`` (a test's own OU)."""
    from headwater.testing.slapd import Slapd

    secret: dict[str, str]
    if isinstance(server, Slapd):
        secret = {
            "bind_dn": server.root_dn,
            "password": server.root_password if password is None else password,
            "people_base": server.people_base,
            "groups_base": server.groups_base,
            "disabled_base": server.disabled_base,
        }
    else:
        secret = {
            "directory": "activeDirectory",
            "bind_dn": server.bind_dn,
            "password": server.password if password is None else password,
            "ca_pem": server.ca_pem or "",
        }
    secret.update(profile or {})
    spec = connections.ConnectionSpec(LDAP_SCHEME, server.url, secret)
    with runtime.database.transaction() as session:
        spec_app = apps.AppSpec(label, LDAP_APP_NAME)
        app_id = apps.create_app(session, SYSTEM, spec_app, activate=True).id
    with runtime.database.read() as session:
        prepared = connections.prepare_connection(session, runtime.secrets, app_id, spec)
    if enabled:
        run_async(lambda: connection_test.probe(runtime.connectors, prepared))
    with runtime.database.transaction() as session:
        connections.save_connection(session, SYSTEM, prepared, enabled=enabled)
    if settings:
        update_settings(runtime, app_id, **settings)
    return app_id


def assign_group(
    runtime: Runtime,
    app_id: str,
    group_id: str,
    *,
    priority: int | None = None,
    profile: dict[str, Any] | None = None,
) -> None:
    """Assign (or re-prioritise) a group: the service enqueues every member's key and the
    app's push keys in the same transaction."""
    spec = assignments.GroupAssignmentSpec(priority=priority, profile=profile)
    with runtime.database.transaction() as session:
        assignments.assign_group(session, SYSTEM, app_id, group_id, spec)


def unassign_group(runtime: Runtime, app_id: str, group_id: str) -> None:
    with runtime.database.transaction() as session:
        assignments.unassign_group(session, SYSTEM, app_id, group_id)


def assign_user(
    runtime: Runtime,
    app_id: str,
    user_id: str,
    *,
    profile: dict[str, Any] | None = None,
    user_name: str | None = None,
) -> None:
    """A direct (scope USER) assignment."""
    spec = assignments.UserAssignmentSpec(profile=profile, user_name=user_name)
    with runtime.database.transaction() as session:
        assignments.assign_user(session, SYSTEM, app_id, user_id, spec)


def unassign_user(runtime: Runtime, app_id: str, user_id: str) -> None:
    with runtime.database.transaction() as session:
        assignments.unassign_user(session, SYSTEM, app_id, user_id)


def push_group(
    runtime: Runtime,
    app_id: str,
    group_id: str,
    *,
    target_name: str | None = None,
    target_group_id: str | None = None,
    status: str = "ACTIVE",
) -> str:
    """A Group Push mapping (the downstream name defaults to the group's); returns its id."""
    with runtime.database.transaction() as session:
        if target_name is None and target_group_id is None:
            target_name = directory.find_group(session, group_id).name
        spec = grouppush.MappingSpec(group_id, target_name, target_group_id, status)
        return grouppush.create_mapping(session, SYSTEM, app_id, spec).id


def set_mapping_status(runtime: Runtime, app_id: str, mapping_id: str, status: str) -> None:
    with runtime.database.transaction() as session:
        grouppush.set_status(session, SYSTEM, app_id, mapping_id, status)


def unlink_mapping(runtime: Runtime, app_id: str, mapping_id: str, *, delete_target: bool) -> None:
    """Deactivate the mapping, then unlink it (keeping or deleting the downstream group)."""
    set_mapping_status(runtime, app_id, mapping_id, grouppush.INACTIVE)
    with runtime.database.transaction() as session:
        grouppush.delete_mapping(session, SYSTEM, app_id, mapping_id, delete_target=delete_target)


def record_app_group(
    runtime: Runtime, app_id: str, name: str, external_id: str | None = None
) -> str:
    """An APP_GROUP standing for a group that exists downstream.

    Raw row, deliberately: APP_GROUPs are recorded by the engine (when it creates or links a
    pushed group) and no service makes one, so API tests that need one write the row the engine
    would write.
    """
    now = clock.utcnow()
    group = t.Group(
        id=ids.new_id("00g"),
        type="APP_GROUP",
        name=name,
        name_lower=name.lower(),
        name_scope=app_id,
        profile={"name": name},
        app_id=app_id,
        external_id=external_id or f"ext-{name}",
        created=now,
        last_updated=now,
    )
    with runtime.database.transaction() as session:
        session.add(group)
        return group.id


def record_task(runtime: Runtime, app_id: str, kind: str, subject: str) -> str:
    """A Task as the engine opens it after a permanent failure; returns its id.

    Raw row, deliberately: only the engine opens Tasks, and API tests that list, retry or
    dismiss one need one without making a downstream fail for good first.
    """
    now = clock.utcnow()
    task = t.Task(
        id=ids.new_id("tsk"),
        app_id=app_id,
        kind=kind,
        subject_id=subject,
        operation="AddMembers",
        target=subject,
        http_status=400,
        message="refused",
        attempts=2,
        first_attempt=now,
        last_attempt=now,
    )
    with runtime.database.transaction() as session:
        session.add(task)
        return task.id


def record_import(runtime: Runtime, app_id: str, user_name: str = "stray") -> tuple[str, str]:
    """A completed app import that read one account nobody owns and one group, and that
    account as the app's unmanaged account; returns (import id, unmanaged account id).

    Raw rows, deliberately: only the engine reads apps, and API tests (the fuzz, permissions)
    need an import and an unmanaged account of an app whose downstream they never reach.
    """
    from headwater.domain.downstream import ListedAccount
    from headwater.engine.imports import upsert_unmanaged

    now = clock.utcnow()
    run = t.AppImport(
        id=ids.new_id("imp"),
        app_id=app_id,
        status="COMPLETED",
        rules="userName,email",
        auto_confirm=False,
        accounts_total=1,
        accounts_read=1,
        groups_read=1,
        next_index=2,
        matched=0,
        unmatched=1,
        conflicts=0,
        linked=0,
        confirmed=0,
        created=now,
        started=now,
        finished=now,
        last_updated=now,
    )
    external_id = f"ext-{user_name}-{ids.new_id('x')}"
    with runtime.database.transaction() as session:
        session.add(run)
        session.flush()
        session.add(
            t.AppImportAccount(
                id=ids.new_id("iac"),
                import_id=run.id,
                external_id=external_id,
                user_name=user_name,
                active=True,
                outcome="UNMATCHED",
                candidates=[],
                link_requested=False,
                confirmed=False,
            )
        )
        session.add(
            t.AppImportGroup(
                id=ids.new_id("igr"),
                import_id=run.id,
                external_id=f"grp-{external_id}",
                display_name=f"Found {user_name}",
            )
        )
        upsert_unmanaged(session, app_id, [ListedAccount(external_id, user_name, True)])
        account_id = session.execute(
            select(t.UnmanagedAccount.id).where(
                t.UnmanagedAccount.app_id == app_id, t.UnmanagedAccount.external_id == external_id
            )
        ).scalar_one()
        return run.id, account_id


# --- Converging --------------------------------------------------------------------------------


def converge(
    runtime: Runtime, *, timeout: float = 60.0, horizon: float = 0.0, settled: bool = True
) -> None:
    """Reconcile with a fresh worker until no key is due within ``horizon`` seconds.

    With ``settled`` (the default) no key may be left at all: a key held back by a retry
    delay means a reconcile failed, which a test expecting convergence must not miss. Tests that
    inject faults pass a ``horizon`` long enough for the backoffs, or ``settled=False``.
    """

    async def drain() -> None:
        worker = runtime.worker()
        try:
            await worker.drain(timeout=timeout, horizon=horizon)
        finally:
            await worker.aclose()

    run_async(drain)
    if settled:
        left = queued(runtime)
        assert not left, f"keys left after converging: {left}"


# --- Reading what Headwater did ----------------------------------------------------------------


class QueuedKey(NamedTuple):
    app_id: str
    kind: str
    subject_id: str
    observe: bool
    attempts: int


def due_now(runtime: Runtime) -> None:
    """Every queued key due at once: a fault test's faults are gone, and a key waiting out a
    long backoff (failed many times in a row) should not outlast the test's horizon."""
    with runtime.database.transaction() as session:
        session.execute(update(t.ReconcileKey).values(not_before=clock.utcnow()))


def queued(runtime: Runtime) -> list[QueuedKey]:
    """Every key waiting in the outbox."""
    with runtime.database.read() as session:
        rows = session.execute(
            select(
                t.ReconcileKey.app_id,
                t.ReconcileKey.kind,
                t.ReconcileKey.subject_id,
                t.ReconcileKey.observe,
                t.ReconcileKey.attempts,
            )
        ).all()
    return [QueuedKey(*row) for row in rows]


def queued_keys(
    runtime: Runtime, app_id: str | None = None, kind: str | None = None
) -> set[tuple[str, str, str]]:
    """``(app, kind, subject)`` of the waiting keys, of one app and kind if given."""
    return {
        (key.app_id, key.kind, key.subject_id)
        for key in queued(runtime)
        if (app_id is None or key.app_id == app_id) and (kind is None or key.kind == kind)
    }


def queued_subjects(runtime: Runtime, app_id: str, kind: str = "user") -> set[str]:
    """Subjects (user or mapping ids) of the app's waiting keys of one kind."""
    return {subject for _, _, subject in queued_keys(runtime, app_id, kind)}


def clear_keys(runtime: Runtime) -> None:
    """Empty the outbox, so that a test sees only the keys its next change enqueues.

    Raw delete, deliberately: no service drops keys without reconciling them (that is the point
    of the outbox); converging instead would need a reachable downstream for every app.
    """
    with runtime.database.transaction() as session:
        session.execute(delete(t.ReconcileKey))


def events(runtime: Runtime, prefix: str = "", target_id: str | None = None) -> list[t.Event]:
    """System log events (detached rows) in publication order, by type prefix or target."""
    query = select(t.Event).where(t.Event.event_type.startswith(prefix)).order_by(t.Event.id)
    if target_id is not None:
        query = query.join(t.EventTarget, t.EventTarget.event_id == t.Event.id).where(
            t.EventTarget.target_id == target_id
        )
    with runtime.database.read() as session:
        rows = list(session.execute(query).scalars())
        session.expunge_all()
    return rows


def event_types(runtime: Runtime, prefix: str = "", target_id: str | None = None) -> list[str]:
    return [row.event_type for row in events(runtime, prefix, target_id)]


def count_rows(runtime: Runtime, model: type[t.Base]) -> int:
    with runtime.database.read() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def row_counts(runtime: Runtime) -> dict[str, int]:
    """Row counts of the tables requests write (to prove a refused request changed nothing)."""
    models: list[type[t.Base]] = [
        t.User,
        t.Group,
        t.Membership,
        t.Event,
        t.EventTarget,
        t.ReconcileKey,
        t.ApiToken,
        t.App,
        t.AppConnection,
        t.AppGroupAssignment,
        t.AppUserAssignment,
        t.PushMapping,
        t.PushRule,
    ]
    return {model.__tablename__: count_rows(runtime, model) for model in models}


@contextlib.contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement run inside the block (whitespace collapsed)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = runtime.database.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


# --- HTTP answers --------------------------------------------------------------------------------


def ok(response: httpx.Response, *statuses: int) -> Any:
    """Fail unless the status is one of ``statuses`` (200 by default); the JSON body or None."""
    if response.status_code not in (statuses or (200,)):
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text[:1000]}"
        )
    return response.json() if response.content else None


_OKTA_ERROR_KEYS = {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}


def assert_okta_error(
    response: httpx.Response, status: int, code: str, cause_contains: str | None = None
) -> dict[str, Any]:
    """Assert Okta's error object (exactly its five fields, ``application/json``) with this
    status and ``errorCode``; ``cause_contains`` must appear in one of the ``errorCauses``.
    Returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body.get("errorCode") == code, body
    assert set(body) == _OKTA_ERROR_KEYS, body
    if cause_contains is not None:
        summaries = [cause["errorSummary"] for cause in body["errorCauses"]]
        assert any(cause_contains in summary for summary in summaries), body
    return body


def sdk_ok(result: tuple[Any, ...]) -> Any:
    """An official Okta SDK answer, ``(data, response, error)`` or ``(response, error)``: fail
    loudly on an error; the data, if any."""
    *data, error = result
    assert error is None, error
    return data[0] if len(data) == 2 else None


def links(response: httpx.Response) -> dict[str, str]:
    """``rel`` → URL of every ``Link`` header, in order (Okta sends ``self`` first)."""
    found: dict[str, str] = {}
    for header in response.headers.get_list("link"):
        match = re.fullmatch(r'\s*<([^>]*)>\s*;\s*rel="([^"]+)"\s*', header)
        assert match is not None, f"malformed Link header: {header!r}"
        found[match.group(2)] = match.group(1)
    return found


# --- Downstream: SCIM payloads, recorded traffic, reading a scim2-server ------------------------


def scim_user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def scim_group(display_name: str, members: Iterable[str] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": display_name}
    values = [{"value": member} for member in members]
    if values:
        body["members"] = values
    return body


def scim_patch_members(
    add: Iterable[str] = (), remove: Iterable[str] = (), *, remove_by_value: bool = False
) -> dict[str, Any]:
    """A PatchOp adding and removing group members.

    Removals use a path filter per member (``members[value eq "id"]``, RFC 7644 section
    3.5.2.2), or with ``remove_by_value`` one operation listing them in ``value`` (the form
    Entra ID sends, and the only one django-scim2 implements).
    """
    removed = list(remove)
    operations: list[dict[str, Any]]
    if not remove_by_value:
        operations = [
            {"op": "remove", "path": f'members[value eq "{member}"]'} for member in removed
        ]
    elif removed:
        values = [{"value": member} for member in removed]
        operations = [{"op": "remove", "path": "members", "value": values}]
    else:
        operations = []
    values = [{"value": member} for member in add]
    if values:
        operations.append({"op": "add", "path": "members", "value": values})
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


_ID_SEGMENT = re.compile(r"^(Users|Groups)/[^/]+")


@dataclass
class Sent:
    """One request as it left the client, and the status it got (None: no answer)."""

    method: str
    path: str
    query: str
    headers: httpx.Headers
    body: Any
    status: int | None = None

    @property
    def resource(self) -> str:
        """``Users``, ``Users/{id}``, ``Groups/{id}``...: the path after the ``/v2`` prefix."""
        path = self.path.split("/v2/", 1)[-1].lstrip("/")
        return _ID_SEGMENT.sub(r"\1/{id}", path)


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request to ``inner`` and keeps what was sent (bodies parsed)."""

    inner: httpx.AsyncBaseTransport
    sent: list[Sent] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        entry = Sent(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode(),
            headers=httpx.Headers(request.headers),  # auth flows reuse the request
            body=json.loads(raw) if raw else None,
        )
        self.sent.append(entry)
        response = await self.inner.handle_async_request(request)
        entry.status = response.status_code
        return response

    def requests(
        self, method: str | None = None, *, resource: str | None = None, path_prefix: str = ""
    ) -> list[Sent]:
        return [
            s
            for s in self.sent
            if (method is None or s.method == method)
            and (resource is None or s.resource == resource)
            and s.path.startswith(path_prefix)
        ]

    def count(
        self, method: str | None = None, path_prefix: str = "", *, resource: str | None = None
    ) -> int:
        return len(self.requests(method, resource=resource, path_prefix=path_prefix))

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method in {"POST", "PUT", "PATCH", "DELETE"}]

    def clear(self) -> None:
        self.sent.clear()


class ScimReader:
    """Reads a SCIM server directly (not through Headwater), as an auditor would, and makes
    the changes an admin makes by hand downstream (for drift tests).

    ``app``: an in-process scim2-server (reached over ASGI, no socket); else ``base_url`` is a
    real one. Works from synchronous and asynchronous tests alike. Two settings make the
    changes in a form the server implements (:func:`scim_reader` sets them per server):
    ``remove_by_value`` removes members with a value list instead of path filters, and
    ``members_after_create`` creates a group empty and then adds its members (for a server
    that ignores ``members`` in ``POST /Groups``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        app: ScimApplication | None = None,
        remove_by_value: bool = False,
        members_after_create: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.remove_by_value = remove_by_value
        self.members_after_create = members_after_create
        self.headers = dict(SCIM_HEADERS)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    # -- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if self.app is None:
            with httpx.Client(headers=self.headers, timeout=30, trust_env=False) as client:
                return client.request(method, url, json=json, params=params)
        app = self.app

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, headers=self.headers) as client:
                response = await client.request(method, url, json=json, params=params)
                await response.aread()
                return response

        return run_async(send)

    def get(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, params=params or None)
        response.raise_for_status()
        return response.json()

    def _all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = 1
        while True:
            body = self.get(path, startIndex=start, count=500)
            page: list[dict[str, Any]] = body.get("Resources", [])
            items.extend(page)
            start += len(page)
            if not page or start > body.get("totalResults", 0):
                return items

    # -- reading --------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        """Every account (all pages)."""
        return self._all("Users")

    def by_user_name(self) -> dict[str, dict[str, Any]]:
        """Accounts by userName; fails if two accounts share one (case-insensitively)."""
        accounts = self.users()
        names = Counter(a["userName"].lower() for a in accounts)
        duplicates = sorted(name for name, n in names.items() if n > 1)
        assert not duplicates, f"duplicate accounts downstream: {duplicates}"
        return {a["userName"]: a for a in accounts}

    def user(self, user_name: str) -> dict[str, Any] | None:
        matches = [u for u in self.users() if u["userName"].lower() == user_name.lower()]
        assert len(matches) <= 1, f"duplicate accounts for {user_name}"
        return matches[0] if matches else None

    def groups(self) -> list[dict[str, Any]]:
        """Every group (all pages), with its members."""
        return self._all("Groups")

    def group(self, name: str) -> dict[str, Any] | None:
        matches = [g for g in self.groups() if g["displayName"] == name]
        assert len(matches) <= 1, f"duplicate groups named {name}"
        return matches[0] if matches else None

    def member_ids(self, name: str) -> set[str] | None:
        """Member ids of the group named ``name``; None when there is no such group."""
        group = self.group(name)
        if group is None:
            return None
        return {m["value"] for m in group.get("members") or []}

    def members(self, name: str) -> set[str] | None:
        """userNames of the group's members (an unknown id stands for itself); None when there
        is no such group."""
        ids = self.member_ids(name)
        if ids is None:
            return None
        by_id = {u["id"]: u["userName"] for u in self.users()}
        return {by_id.get(member, member) for member in ids}

    # -- changes made by hand downstream --------------------------------------------------

    def _write(self, method: str, path: str, body: Any = None) -> Any:
        response = self.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_user(self, user_name: str, **attributes: Any) -> str:
        created = self._write("POST", "Users", scim_user(user_name, active=True, **attributes))
        return str(created["id"])

    def delete_user(self, user_id: str) -> None:
        self._write("DELETE", f"Users/{user_id}")

    def change_user(self, user_id: str, **changes: Any) -> None:
        """Change an account by hand: the document as read, with ``changes``, put back."""
        document = {k: v for k, v in self.get(f"Users/{user_id}").items() if k != "meta"}
        self._write("PUT", f"Users/{user_id}", {**document, **changes})

    def create_group(self, name: str, members: Iterable[str] = ()) -> str:
        if not self.members_after_create:
            return str(self._write("POST", "Groups", scim_group(name, members))["id"])
        group_id = str(self._write("POST", "Groups", scim_group(name))["id"])
        members = list(members)
        if members:
            self.patch_members(group_id, add=members)
        return group_id

    def delete_group(self, group_id: str) -> None:
        self._write("DELETE", f"Groups/{group_id}")

    def patch_members(
        self, group_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        body = scim_patch_members(add, remove, remove_by_value=self.remove_by_value)
        self._write("PATCH", f"Groups/{group_id}", body)


class InProcessScim:
    """A fresh, empty scim2-server served in-process at ``http://<host>/v2`` (no sockets).

    ``transport`` records what Headwater (or a connector) sent; ``scim`` reads the server
    directly. :meth:`serve` routes a runtime's connectors for this host here; :meth:`connector`
    makes a bare connector to it (close them with :meth:`aclose`). ``max_results`` lowers the
    server's ``filter.maxResults`` (the page size it grants at most); ``bulk`` announces SCIM
    Bulk.
    """

    def __init__(
        self,
        host: str = "scim.test",
        *,
        bearer_token: str | None = None,
        max_results: int | None = None,
        bulk: bool = False,
    ) -> None:
        from scim2_models import Filter

        self.app = in_process_app(bearer_token, bulk=bulk)
        if max_results is not None:
            self.app.service.config.filter = Filter(supported=True, max_results=max_results)
        self.origin = f"http://{host}"
        self.base_url = f"{self.origin}/v2"
        self.transport = RecordingTransport(httpx.ASGITransport(app=self.app))
        self.scim = ScimReader(self.base_url, token=bearer_token, app=self.app)
        self._connectors: list[ScimConnector] = []

    def serve(self, runtime: Runtime) -> InProcessScim:
        runtime.connectors.transports[self.origin + "/"] = self.transport
        return self

    def connector(
        self,
        settings: ProvisioningSettings | None = None,
        *,
        auth: httpx.Auth | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> ScimConnector:
        """A :class:`~headwater.connectors.scim.ScimConnector` to this server, recorded."""
        from headwater.connectors.scim import ScimConnector

        connector = ScimConnector(
            base_url or self.base_url + "/",
            auth=auth,
            settings=settings or ProvisioningSettings(),
            transport=self.transport,
            **options,
        )
        self._connectors.append(connector)
        return connector

    async def aclose(self) -> None:
        for connector in self._connectors:
            await connector.aclose()
        self._connectors.clear()


@contextlib.contextmanager
def proxied_scim_server(
    seed: int = 7, *, bearer_token: str | None = None, bulk: bool = False
) -> Iterator[tuple[ScimServerProcess, FaultProxyThread]]:
    """A scim2-server subprocess with the fault proxy in front (point apps at the proxy, read
    the server); ``bulk`` makes it announce SCIM Bulk."""
    with (
        ScimServerProcess(
            bearer_token=bearer_token, extra_args=["--bulk"] if bulk else ()
        ) as server,
        FaultProxyThread(server.base_url, seed=seed) as proxy,
    ):
        yield server, proxy


#: Servers that answer 501 to a path filter removing a member (``docs/compatibility.md``).
_REMOVES_MEMBERS_BY_VALUE_ONLY = frozenset({"django-scim2"})
#: Servers that ignore ``members`` in ``POST /Groups``.
_IGNORES_MEMBERS_ON_CREATE = frozenset({"django-scim2"})


def scim_reader(name: str, server: ScimServer) -> ScimReader:
    """A :class:`ScimReader` for ``server``, the running SCIM server called ``name``."""
    return ScimReader(
        server.base_url,
        token=server.bearer_token,
        remove_by_value=name in _REMOVES_MEMBERS_BY_VALUE_ONLY,
        members_after_create=name in _IGNORES_MEMBERS_ON_CREATE,
    )


@contextlib.contextmanager
def scim_server(
    name: str, *, bearer_token: str | None = None
) -> Iterator[tuple[ScimServer, ScimReader]]:
    """The SCIM server called ``name`` (``"scim2-server"``, ``"django-scim2"`` or
    ``"scimmy"``), started empty in a loopback subprocess, and a reader of it.

    Starting one costs from half a second (scim2-server, scimmy) to about two (django-scim2):
    share one across the tests of a session where they can use unique names.
    """
    require_scim_server(name)
    with server_process(name, bearer_token=bearer_token) as server:
        yield server, scim_reader(name, server)


def creates_per_user_name(proxy: FaultProxyThread) -> Counter[str]:
    """How many ``POST /Users`` the downstream accepted, per userName, alone or as operations
    of a Bulk request (``status`` 201 in its answer)."""
    created: Counter[str] = Counter()
    for entry in proxy.requests("POST", r"/Users$"):
        if entry.upstream_status == 201:
            created[entry.json()["userName"]] += 1
    for entry in proxy.requests("POST", r"/Bulk$"):
        if entry.upstream_status != 200 or not entry.upstream_body:
            continue
        answers = {
            answer.get("bulkId"): str(answer.get("status"))
            for answer in json.loads(entry.upstream_body).get("Operations", [])
        }
        for operation in entry.json().get("Operations", []):
            created_here = answers.get(operation.get("bulkId")) == "201"
            if created_here and (operation.get("method"), operation.get("path")) == (
                "POST",
                "/Users",
            ):
                created[operation["data"]["userName"]] += 1
    return created


# --- The command line ------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return _ANSI.sub("", text)


class Cli:
    """Runs ``headwater`` in-process against one environment (database, key, console size)."""

    def __init__(self, env: dict[str, str | None]) -> None:
        from typer.testing import CliRunner

        self.env = env
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
        from headwater.cli import app

        return self.runner.invoke(
            app,
            list(args),
            input=input,
            env={**self.env, **(env or {})},
            catch_exceptions=False,
            prog_name="headwater",
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        """Run a command that must succeed; returns its stdout."""
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    def runtime(self) -> Runtime:
        """A runtime on the CLI's database and key (for seeding and checking)."""
        settings = Settings(
            data_dir=Path(str(self.env["HEADWATER_DATA_DIR"])),
            database_url=self.env["HEADWATER_DATABASE_URL"],
            secret_key=self.env["HEADWATER_SECRET_KEY"],
            outbound_allow=self.env.get("HEADWATER_OUTBOUND_ALLOW") or "",
        )
        return Runtime.from_settings(settings)


# --- The console, in a browser ------------------------------------------------------------------


def sign_in(page: Page, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto("/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/people$"))


def flash(page: Page) -> str:
    """The text of the page's flash messages."""
    return " ".join(page.locator(".flash").all_inner_texts())


# --- The demo, as a user starts it ------------------------------------------------------------

READY_SECONDS = 90.0
BANNER = re.compile(
    r"^Headwater is running at (?P<base>http://127\.0\.0\.1:\d+)\n"
    r".*\(user: admin, password: (?P<password>\S+)\)\n"
    r".*\n"
    r"  Downstream app: (?P<scim>http://127\.0\.0\.1:(?P<scim_port>\d+)/v2) .*\n"
    r"(?:  LDAP directory: "
    r"(?:(?P<ldap>ldap://127\.0\.0\.1:\d+) .*password: (?P<ldap_password>\S+)\)|not started .*)\n)?"
    r"(?:.*\n){2}"
    r"Press Ctrl-C to stop\. Your API token \(shown once\):\n"
    r"(?P<token>\S+)\n",
    re.MULTILINE,
)


def clean_env() -> dict[str, str]:
    """This process's environment without Headwater settings: the demo picks its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}


def children_of(pid: int) -> dict[int, str]:
    """Live child processes of ``pid`` (Linux ``/proc``), with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Demo:
    """``python -m headwater demo --port P`` with ``cwd`` as its working directory."""

    def __init__(self, cwd: Path, port: int | None = None) -> None:
        self.cwd = cwd
        #: Picked here, so another may be picked when a parallel test took it first.
        self.port_picked = port is None
        self.port = port or free_port()
        self.log = cwd / "demo-output.txt"
        self.process: subprocess.Popen[bytes] | None = None
        self.scim_pid: int | None = None
        self.scim_cmdline = ""
        #: The demo's slapd (when installed): its URL and root password, else None.
        self.ldap_url: str | None = None
        self.ldap_password: str | None = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> Demo:
        """Start the demo and wait until it has printed its API token (the example is loaded).

        A port this helper picked can be taken by a parallel test's process in the seconds
        before the demo binds it: the demo is then started again on another (twice at most).
        """
        for attempt in range(3):
            try:
                return self._start()
            except AssertionError:
                if not (
                    self.port_picked and attempt < 2 and "address already in use" in self.output
                ):
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self) -> Demo:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "headwater", "demo", "--port", str(self.port)],
                cwd=self.cwd,
                env=clean_env() | {"PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_SECONDS
        while (found := BANNER.search(self.output)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("headwater demo did not start:\n" + self.output)
            time.sleep(0.1)
        self.base = found["base"]
        self.password = found["password"]
        self.token = found["token"]
        self.scim_url = found["scim"]
        self.scim_port = int(found["scim_port"])
        self.ldap_url = found["ldap"]
        self.ldap_password = found["ldap_password"]
        assert self.base == f"http://127.0.0.1:{self.port}", self.output
        children = children_of(self.process.pid)
        scim = [pid for pid, cmd in children.items() if "headwater.testing.scimserver" in cmd]
        assert len(scim) == 1, children
        self.scim_pid = scim[0]
        self.scim_cmdline = children[self.scim_pid]
        return self

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the demo and wait for it (killed, and its SCIM server too, if it hangs)."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def scim_server_running(self) -> bool:
        """The demo's SCIM server process still exists (checked by PID and command line)."""
        if self.scim_pid is None or not alive(self.scim_pid):
            return False
        try:
            cmdline = Path(f"/proc/{self.scim_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return cmdline.replace(b"\0", b" ").decode(errors="replace") == self.scim_cmdline

    def reap_leftovers(self) -> None:
        """Kill the SCIM server if the demo left it running (a failed test must not leak it)."""
        if self.scim_server_running():
            assert self.scim_pid is not None
            os.kill(self.scim_pid, signal.SIGKILL)

    def __enter__(self) -> Demo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.reap_leftovers()
