"""``headwater apps import``, ``confirm`` and ``unmanaged`` against a real scim2-server on
loopback: three accounts matched by userName, two nobody owns; confirming links without a
create; the unmanaged ones are listed, ignored, deactivated."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.testing.scimserver import LOOPBACK_ALLOW, ScimServerProcess
from headwater.testing.toolkit import Cli, ScimReader, create_scim_app, create_users, plain


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_DATABASE_URL=f"sqlite:///{tmp_path / 'hw.db'}",
        HEADWATER_DATA_DIR=str(tmp_path / "data"),
        HEADWATER_SECRET_KEY=Fernet.generate_key().decode(),
        HEADWATER_OUTBOUND_ALLOW=LOOPBACK_ALLOW,
        COLUMNS="200",
        TTY_COMPATIBLE="0",
        TTY_INTERACTIVE="0",
        FORCE_COLOR=None,
    )
    return Cli(env)


@pytest.fixture
def runtime(cli: Cli) -> Iterator[Runtime]:
    rt = cli.runtime()
    yield rt
    rt.close()


@pytest.fixture
def server() -> Iterator[ScimServerProcess]:
    with ScimServerProcess(bearer_token=secrets.token_urlsafe(16)) as running:
        yield running


def test_import_confirm_and_unmanaged_from_the_cli(
    cli: Cli, runtime: Runtime, server: ScimServerProcess
) -> None:
    scim = ScimReader(server.base_url, token=server.bearer_token)
    create_users(runtime, 3, prefix="held", domain="cli.example")
    for i in range(3):
        scim.create_user(f"held{i:05d}@cli.example")
    strays = [scim.create_user(f"stray{i}@cli.example") for i in range(2)]
    create_scim_app(runtime, server.base_url, "Old App", token=server.bearer_token)

    result = cli("apps", "import", "Old App")
    assert result.exit_code == 0, result.output
    text = plain(result.output)
    assert "5 accounts" in text and "COMPLETED" in text
    assert "headwater apps confirm Old App" in text

    status = plain(cli.ok("apps", "import-status", "Old App"))
    assert "COMPLETED" in status

    result = cli("apps", "confirm", "Old App")
    assert result.exit_code == 0, result.output
    assert "3 account(s) to link" in plain(result.output)
    assert "CONFIRMED" in plain(result.output)
    with runtime.database.read() as session:
        assert session.execute(select(func.count()).select_from(t.AppUserLink)).scalar_one() == 3

    listing = plain(cli.ok("apps", "unmanaged", "Old App"))
    assert "stray0@cli.example" in listing and "stray1@cli.example" in listing
    with runtime.database.read() as session:
        first = session.execute(
            select(t.UnmanagedAccount.id).where(
                t.UnmanagedAccount.user_name == "stray0@cli.example"
            )
        ).scalar_one()
    assert "IGNORED" in plain(cli.ok("apps", "unmanaged", "Old App", "--ignore", first))
    result = cli("apps", "unmanaged", "Old App", "--deactivate", "all")
    assert result.exit_code == 0, result.output
    assert "1 account(s) to deactivate" in plain(result.output)
    cli.ok("reconcile", "Old App", "--no-progress")
    listing = plain(cli.ok("apps", "unmanaged", "Old App", "--state", "DEACTIVATED"))
    assert "stray1@cli.example" in listing and "stray0@cli.example" not in listing
    accounts = {u["id"]: u for u in scim.users()}
    assert accounts[strays[1]]["active"] is False
    assert accounts[strays[0]]["active"] is True

    bad = cli("apps", "unmanaged", "Old App", "--ignore", "umaNoSuchAccount0000")
    assert bad.exit_code == 1
