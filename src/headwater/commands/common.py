"""Plumbing shared by the CLI commands: runtime, consoles, errors, the actor, name lookups."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from headwater import clock
from headwater.config import Settings, SettingsError, mask_database_url
from headwater.db import tables as t
from headwater.db.events import Actor
from headwater.errors import HeadwaterError, NotFound
from headwater.runtime import Runtime

__all__ = [
    "cli_actor",
    "err",
    "explain",
    "fail",
    "find_app",
    "find_group",
    "find_user",
    "guarded",
    "mask_url",
    "notice",
    "open_runtime",
    "opened",
    "out",
    "table",
    "when",
]


#: Width of output that goes to a file or a pipe: wide enough never to cut a value.
PIPE_WIDTH = 1000


def out() -> Console:
    """A console on stdout, made per call so it honours the environment of this run. Output
    to a file or pipe is not wrapped (unless $COLUMNS says otherwise)."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        return Console(width=PIPE_WIDTH)
    return console


def err() -> Console:
    return Console(stderr=True)


def notice(message: str) -> None:
    """One line on stderr, printed as is (no markup, no wrapping)."""
    err().print(message, markup=False, highlight=False, soft_wrap=True)


def table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells fold long values (ids, logins, URLs) instead of cutting them."""
    result = Table(title=title, title_justify="left")
    for header in headers:
        result.add_column(header, overflow="fold")
    return result


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 1 (no traceback)."""
    notice(f"error: {message}")
    raise typer.Exit(1)


def explain(exc: HeadwaterError) -> str:
    """A service error as one line: its causes, else its summary."""
    return "; ".join(exc.causes) or exc.summary


def mask_url(url: str) -> str:
    """A database URL with any password replaced by ``***``."""
    return mask_database_url(url)


@contextmanager
def guarded() -> Iterator[None]:
    """Turn settings, service and database errors into ``error: ...`` and exit status 1."""
    try:
        yield
    except SettingsError as exc:
        fail(str(exc))
    except HeadwaterError as exc:
        fail(explain(exc))
    except OperationalError as exc:
        fail(f"database error: {str(exc.orig).strip().splitlines()[0]}")
    except ArgumentError:
        fail("HEADWATER_DATABASE_URL is not a database URL Headwater can use")


def open_runtime(*, migrate: bool = True) -> Runtime:
    """The runtime for this process, from ``HEADWATER_*`` environment variables (a wrong one
    ends the command with one line and status 1)."""
    with guarded():
        return Runtime.from_settings(Settings.load(), migrate=migrate)


@contextmanager
def opened(*, migrate: bool = True) -> Iterator[Runtime]:
    """A runtime for one command, closed after it; errors end the command with status 1."""
    with guarded():
        runtime = open_runtime(migrate=migrate)
        try:
            yield runtime
        finally:
            runtime.close()


def cli_actor() -> Actor:
    """Who CLI changes are attributed to in the system log: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(
        id="headwater-cli",
        type="SystemPrincipal",
        alternate_id=f"cli:{user}",
        display_name=f"Headwater CLI ({user})",
    )


def when(value: datetime | None) -> str:
    """A timestamp as the console shows it (UTC, to the second)."""
    if value is None:
        return "never"
    return clock.as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- Lookups by id or name ----------------------------------------------------------------

Row = TypeVar("Row", t.App, t.Group)


def _one(matches: list[Row], noun: str, key: str) -> Row:
    """The single match, or an error naming every candidate's id."""
    if len(matches) == 1:
        return matches[0]
    if not matches:
        fail(f"no {noun} with id or name {key!r}")
    fail(f"{len(matches)} {noun}s are named {key!r}; use an id: {', '.join(m.id for m in matches)}")


def find_app(session: Session, key: str) -> t.App:
    """An app by id, else by label (case-insensitively), else by name."""
    app = session.get(t.App, key) if 0 < len(key) <= 32 else None
    if app is not None:
        return app
    for condition in (func.lower(t.App.label) == key.lower(), t.App.name == key):
        matches = list(session.execute(select(t.App).where(condition).order_by(t.App.id)).scalars())
        if matches:
            return _one(matches, "app", key)
    fail(f"no app with id, label or name {key!r}")


def find_group(session: Session, key: str) -> t.Group:
    """A group by id, else an Okta group by name, else the one app group of that name."""
    from headwater.services.directory import OKTA_SCOPE

    group = session.get(t.Group, key) if 0 < len(key) <= 32 else None
    if group is not None:
        return group
    lowered = key.lower()
    okta = session.execute(
        select(t.Group).where(t.Group.name_scope == OKTA_SCOPE, t.Group.name_lower == lowered)
    ).scalar_one_or_none()
    if okta is not None:
        return okta
    matches = list(
        session.execute(
            select(t.Group).where(t.Group.name_lower == lowered).order_by(t.Group.id)
        ).scalars()
    )
    return _one(matches, "group", key)


def find_user(session: Session, key: str) -> t.User:
    """A user by id or login (case-insensitively), as the API finds them."""
    from headwater.services import directory

    try:
        return directory.find_user(session, key)
    except NotFound:
        fail(f"no user with id or login {key!r}")
