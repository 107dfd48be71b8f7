"""Fixtures for the CLI tests: a temporary SQLite database in the environment, a CliRunner
bound to it, direct database access for seeding, and a real downstream SCIM server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from headwater.runtime import Runtime
from headwater.testing.scimserver import LOOPBACK_ALLOW, ScimServerProcess
from headwater.testing.toolkit import Cli


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str | None]:
    """Environment of one test's CLI: its own database and key; the downstream on loopback
    allowed by the outbound policy; no terminal, 200 columns."""
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
    return env


@pytest.fixture
def cli(cli_env: dict[str, str | None]) -> Cli:
    return Cli(cli_env)


@pytest.fixture
def runtime(cli: Cli) -> Iterator[Runtime]:
    """The CLI's database, for seeding and checking rows directly."""
    rt = cli.runtime()
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def downstream() -> Iterator[ScimServerProcess]:
    """One real scim2-server for the whole session (tests use distinct names)."""
    with ScimServerProcess(bearer_token=secrets.token_urlsafe(16)) as server:
        yield server
