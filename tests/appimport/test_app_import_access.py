"""Who may import, confirm and act on unmanaged accounts: over the API (a read-only admin
reads, an app admin acts on its own apps only) and in the console's Import tab (the same
rules, and no form without its CSRF token)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import (
    InProcessScim,
    api_client,
    api_token,
    console_client,
    console_csrf,
    console_sign_in,
    converge,
    create_admin,
    create_scim_app,
    create_user,
    record_import,
)

PASSWORD = "correct-horse-battery"


def _apps(runtime: Runtime) -> tuple[str, str]:
    mine = create_scim_app(runtime, "http://127.0.0.1:9/scim/v2", "Mine", enabled=False)
    theirs = create_scim_app(runtime, "http://127.0.0.1:9/scim/v2", "Theirs", enabled=False)
    return mine, theirs


def test_api_roles(runtime: Runtime) -> None:
    mine, theirs = _apps(runtime)
    run, account = record_import(runtime, mine)
    record_import(runtime, theirs)
    reader = api_token(runtime, "reader", role="READ_ONLY_ADMIN")
    admin = api_token(runtime, "app-admin", role="APP_ADMIN", apps=[mine])
    with api_client(runtime, reader) as client:
        assert client.get(f"/api/v1/apps/{mine}/imports/{run}").status_code == 200
        assert client.get(f"/api/v1/apps/{mine}/unmanagedAccounts").status_code == 200
        for path in (
            f"/api/v1/apps/{mine}/imports",
            f"/api/v1/apps/{mine}/imports/{run}/confirm",
            f"/api/v1/apps/{mine}/unmanagedAccounts/deactivate",
            f"/api/v1/apps/{mine}/unmanagedAccounts/{account}/ignore",
        ):
            refused = client.post(path)
            assert refused.status_code == 403, path
            assert refused.json()["errorCode"] == "E0000006"
    with api_client(runtime, admin) as client:
        assert client.get(f"/api/v1/apps/{theirs}/unmanagedAccounts").status_code == 403
        assert client.post(f"/api/v1/apps/{theirs}/unmanagedAccounts/deactivate").status_code == 403
        ignored = client.post(f"/api/v1/apps/{mine}/unmanagedAccounts/{account}/ignore")
        assert ignored.status_code == 200 and ignored.json()["state"] == "IGNORED"
        # Its connection is disabled: starting an import is refused, as Okta's 400.
        refused = client.post(f"/api/v1/apps/{mine}/imports")
        assert refused.status_code == 400
        assert refused.json()["errorCode"] == "E0000001"


def test_console_import_tab(runtime: Runtime) -> None:
    downstream = InProcessScim().serve(runtime)
    user = create_user(runtime, "taylor.smith@example.com")
    downstream.scim.create_user("taylor.smith@example.com")
    downstream.scim.create_user("hand.made@example.com")
    mine = create_scim_app(runtime, downstream.base_url, "Mine")
    theirs = create_scim_app(runtime, downstream.base_url, "Theirs")
    create_admin(runtime, "apps", PASSWORD, role="APP_ADMIN", apps=[mine])
    create_admin(runtime, "auditor", PASSWORD, role="READ_ONLY_ADMIN")
    app = create_app(runtime, start_worker=False)
    with console_client(app) as client:
        assert console_sign_in(client, "apps", PASSWORD).status_code == 303
        page = client.get(f"/console/apps/{mine}/imports")
        assert page.status_code == 200 and "not been imported yet" in page.text
        assert client.get(f"/console/apps/{theirs}/imports").status_code == 403
        csrf = console_csrf(client, f"/console/apps/{mine}/imports")
        forged = client.post(f"/console/apps/{mine}/imports", data={})
        assert forged.status_code in (400, 403)
        assert _count(runtime, t.AppImport) == 0
        started = client.post(f"/console/apps/{mine}/imports", data={"csrf_token": csrf})
        assert started.status_code == 303
        converge(runtime)
        page = client.get(f"/console/apps/{mine}/imports")
        assert "COMPLETED" in page.text and "Confirm all matches" in page.text
        assert "hand.made@example.com" in page.text
        run = _one(runtime, t.AppImport)
        confirmed = client.post(
            f"/console/apps/{mine}/imports/{run}/confirm", data={"csrf_token": csrf}
        )
        assert confirmed.status_code == 303
        converge(runtime)
        assert "CONFIRMED" in client.get(f"/console/apps/{mine}/imports").text
        with runtime.database.read() as session:
            link = session.get(t.AppUserLink, (mine, user))
            assert link is not None and link.external_id
        account = _one(runtime, t.UnmanagedAccount)
        done = client.post(
            f"/console/apps/{mine}/unmanaged",
            data={"csrf_token": csrf, "action": "ignore", "account": account},
        )
        assert done.status_code == 303
        assert "IGNORED" in client.get(f"/console/apps/{mine}/imports").text
    with console_client(app, address="127.0.0.2") as client:
        assert console_sign_in(client, "auditor", PASSWORD).status_code == 303
        assert client.get(f"/console/apps/{mine}/imports").status_code == 200
        csrf = console_csrf(client, f"/console/apps/{mine}/imports")
        client.post(
            f"/console/apps/{mine}/unmanaged",
            data={"csrf_token": csrf, "action": "unignore", "account": account},
        )
        with runtime.database.read() as session:
            row = session.get(t.UnmanagedAccount, account)
            assert row is not None and row.state == "IGNORED"  # refused: read-only


def _count(runtime: Runtime, model: Any) -> int:
    with runtime.database.read() as session:
        return len(session.execute(select(model.id)).all())


def _one(runtime: Runtime, model: Any) -> str:
    with runtime.database.read() as session:
        return str(session.execute(select(model.id)).scalar_one())
