"""Helpers for the CLI tests: a CliRunner bound to one database, ANSI stripping, seeding."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from click.testing import Result
from sqlalchemy import insert
from typer.testing import CliRunner

from headwater import clock, ids
from headwater.cli import app
from headwater.config import Settings
from headwater.db import tables as t
from headwater.runtime import Runtime

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return ANSI.sub("", text)


class Cli:
    """Runs ``headwater`` in-process against one database, with a wide, plain console."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
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
        settings = Settings(
            data_dir=Path(str(self.env["HEADWATER_DATA_DIR"])),
            database_url=self.env["HEADWATER_DATABASE_URL"],
            secret_key=self.env["HEADWATER_SECRET_KEY"],
        )
        return Runtime.from_settings(settings)


def seed_group(runtime: Runtime, name: str, count: int, domain: str) -> list[str]:
    """A group of ``count`` ACTIVE people, written with three bulk INSERTs."""
    now = clock.utcnow()
    users = []
    for n in range(count):
        login = f"person{n:05d}@{domain}"
        users.append(
            {
                "id": ids.new_id("00u"),
                "status": "ACTIVE",
                "login": login,
                "login_lower": login,
                "email_lower": login,
                "profile": {"login": login, "email": login, "firstName": "P", "lastName": str(n)},
                "created": now,
                "last_updated": now,
            }
        )
    group_id = ids.new_id("00g")
    group = {
        "id": group_id,
        "type": "OKTA_GROUP",
        "name": name,
        "name_lower": name.lower(),
        "name_scope": "okta",
        "profile": {"name": name},
        "created": now,
        "last_updated": now,
    }
    with runtime.database.transaction() as session:
        session.execute(insert(t.User), users)
        session.execute(insert(t.Group), [group])
        memberships = [{"group_id": group_id, "user_id": u["id"], "created": now} for u in users]
        session.execute(insert(t.Membership), memberships)
    return [u["id"] for u in users]
