"""The ``headwater`` command: serve, worker, demo, tokens and admin commands, and the
directory, app and engine commands of ``headwater.commands``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from rich.table import Table

from headwater import clock
from headwater.commands import app_imports as app_imports_commands  # noqa: F401  (registers on apps)
from headwater.commands import apps as apps_commands
from headwater.commands import common
from headwater.commands import directory as directory_commands
from headwater.commands import engine as engine_commands
from headwater.commands import imports as imports_commands
from headwater.commands import mappings as mappings_commands
from headwater.commands import reconcile as reconcile_commands
from headwater.commands import rules as rules_commands
from headwater.commands import sources as sources_commands
from headwater.config import Settings, SettingsError
from headwater.runtime import Runtime

__all__ = ["app", "main"]

app = typer.Typer(
    help="Headwater: an identity lifecycle engine behind Okta's management API.",
    no_args_is_help=True,
    add_completion=False,
)
token_app = typer.Typer(help="Manage SSWS API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
admin_app = typer.Typer(help="Manage console administrators.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(directory_commands.users_app, name="users")
app.add_typer(directory_commands.groups_app, name="groups")
app.add_typer(rules_commands.rules_app, name="rules")
app.add_typer(apps_commands.apps_app, name="apps")
app.add_typer(mappings_commands.mappings_app, name="mappings")
app.add_typer(sources_commands.sources_app, name="sources")
app.add_typer(imports_commands.import_app, name="import")
app.command("assign")(apps_commands.assign)
app.command("unassign")(apps_commands.unassign)
app.command("push")(apps_commands.push)
app.command("reconcile")(reconcile_commands.reconcile)
app.command("plan")(engine_commands.plan)
app.command("status")(engine_commands.status)


def _runtime(migrate: bool = True) -> Runtime:
    """The process's runtime; a wrong setting, database or key ends the command with one line
    on stderr and status 1, never a traceback."""
    return common.open_runtime(migrate=migrate)


def _logging(settings: Settings) -> None:
    from headwater import logs

    logs.configure(settings.log_format, settings.log_level)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a reconcile worker in-process.")
    ] = True,
) -> None:
    """Run the API and console (and, by default, one reconcile worker)."""
    import uvicorn

    from headwater.server import create_app
    from headwater.serving import uvicorn_config

    runtime = _runtime()
    _logging(runtime.settings)
    api = create_app(runtime, start_worker=worker)
    # uvicorn's own loggers propagate to the handler configured above, at the same level: an
    # access line per request only where HEADWATER_LOG_LEVEL lets INFO through.
    settings = runtime.settings
    level = settings.log_level.lower()
    config = uvicorn_config(api, settings, host=host, port=port, log_config=None, log_level=level)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # could not listen (the port is taken...): uvicorn said why
        raise typer.Exit(3)


@app.command("worker")
def worker_command() -> None:
    """Run a reconcile worker (any number may share one PostgreSQL database)."""

    runtime = _runtime()
    _logging(runtime.settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = runtime.worker()
        common.err().print(f"worker {worker.worker_id} started")
        await worker.run(stop)

    asyncio.run(main())


Roles = typer.Option(
    help="SUPER_ADMIN, APP_ADMIN, GROUP_MEMBERSHIP_ADMIN or READ_ONLY_ADMIN.",
    case_sensitive=False,
)
AppScope = typer.Option("--app", help="An app an APP_ADMIN manages (repeat for more).")
GroupScope = typer.Option(
    "--group", help="A group whose members a GROUP_MEMBERSHIP_ADMIN manages (repeat for more)."
)


def _refused(exc: Exception) -> typer.Exit:
    from headwater.errors import HeadwaterError

    if isinstance(exc, HeadwaterError):
        common.err().print(f"error: {'; '.join(exc.causes) or exc.summary}", highlight=False)
    return typer.Exit(1)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name for the token.")],
    role: Annotated[str, Roles],
    app_ids: Annotated[list[str] | None, AppScope] = None,
    group_ids: Annotated[list[str] | None, GroupScope] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, such as 90d or 12h (default: no expiry).")
    ] = None,
) -> None:
    """Create an API token with a role; it is printed once, as the last line."""
    from headwater.db.events import SYSTEM
    from headwater.errors import HeadwaterError
    from headwater.services import tokens

    runtime = _runtime()
    try:
        lifetime = tokens.parse_lifetime(expires_in) if expires_in is not None else None
        with runtime.database.transaction() as session:
            row, plaintext = tokens.create(
                session,
                name,
                SYSTEM,
                role=role,
                app_ids=app_ids or (),
                group_ids=group_ids or (),
                lifetime=lifetime,
            )
            expiry = clock.format_okta(row.expires_at)
    except HeadwaterError as exc:
        raise _refused(exc) from exc
    until = f", expires {expiry}" if expiry else ""
    common.err().print(
        f"Created token {row.id} ({row.name}, {row.role}{until}). It is shown only once:",
        highlight=False,
    )
    print(plaintext)


@token_app.command("list")
def token_list() -> None:
    """List API tokens with their roles (never their values)."""
    from headwater.services import access, tokens

    runtime = _runtime()
    table = Table("id", "name", "prefix", "role", "created", "expires", "last used")
    # Rows are read inside the session: a read session expires them when it ends.
    with runtime.database.read() as session:
        for row in tokens.list_tokens(session):
            table.add_row(
                row.id,
                row.name,
                row.token_prefix + "…",
                access.grant_of(row).describe(),
                clock.format_okta(row.created) or "",
                clock.format_okta(row.expires_at) or "never",
                clock.format_okta(row.last_used) or "never",
            )
    common.out().print(table)


@token_app.command("revoke")
def token_revoke(token: Annotated[str, typer.Argument(help="Token id or name.")]) -> None:
    """Revoke an API token by id or name."""
    from headwater.db.events import SYSTEM
    from headwater.errors import NotFound
    from headwater.services import tokens

    runtime = _runtime()
    try:
        with runtime.database.transaction() as session:
            row = tokens.revoke(session, token, SYSTEM)
    except NotFound as exc:
        common.err().print(f"error: no token with id or name {token!r}")
        raise typer.Exit(1) from exc
    common.out().print(f"Revoked {row.id} ({row.name})")


#: Where ``admin create`` and ``admin password`` read the password when it is set.
PASSWORD_ENV = "HEADWATER_ADMIN_PASSWORD"


def _new_password() -> str:
    """From ``$HEADWATER_ADMIN_PASSWORD``, else a hidden prompt asked twice; never argv."""
    import os

    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option(help="Sign-in name.")],
    role: Annotated[str, Roles],
    app_ids: Annotated[list[str] | None, AppScope] = None,
    group_ids: Annotated[list[str] | None, GroupScope] = None,
) -> None:
    """Create a console administrator with a role. The password is read from
    $HEADWATER_ADMIN_PASSWORD or a hidden prompt (asked twice), and stored with argon2."""
    from headwater.errors import HeadwaterError
    from headwater.services import admins

    password = _new_password()
    runtime = _runtime()
    try:
        with runtime.database.transaction() as session:
            admin = admins.create(
                session,
                username,
                password,
                role=role,
                app_ids=app_ids or (),
                group_ids=group_ids or (),
            )
            role_name = admin.role
    except HeadwaterError as exc:
        raise _refused(exc) from exc
    common.out().print(f"Created admin {admin.username} ({role_name})", highlight=False)


@admin_app.command("list")
def admin_list() -> None:
    """List console administrators and their roles."""
    from headwater.services import access, admins

    runtime = _runtime()
    table = Table("username", "role", "created")
    with runtime.database.read() as session:
        for admin in admins.list_admins(session):
            table.add_row(
                admin.username,
                access.grant_of(admin).describe(),
                clock.format_okta(admin.created) or "",
            )
    common.out().print(table)


@admin_app.command("password")
def admin_password(username: Annotated[str, typer.Argument(help="Sign-in name.")]) -> None:
    """Set a new password ($HEADWATER_ADMIN_PASSWORD or a hidden prompt); the admin's console
    sessions end."""
    from headwater.errors import HeadwaterError, NotFound
    from headwater.services import admins

    password = _new_password()
    runtime = _runtime()
    try:
        with runtime.database.transaction() as session:
            admins.set_password(session, username, password)
    except NotFound as exc:
        common.err().print(f"error: no admin named {username!r}", highlight=False)
        raise typer.Exit(1) from exc
    except HeadwaterError as exc:
        raise _refused(exc) from exc
    common.out().print(
        f"Password changed for {username}; their sessions have ended.", highlight=False
    )


@admin_app.command("delete")
def admin_delete(username: Annotated[str, typer.Argument(help="Sign-in name.")]) -> None:
    """Remove a console administrator; their sessions end."""
    from headwater.errors import NotFound
    from headwater.services import admins

    runtime = _runtime()
    try:
        with runtime.database.transaction() as session:
            admins.delete_admin(session, username)
    except NotFound as exc:
        common.err().print(f"error: no admin named {username!r}", highlight=False)
        raise typer.Exit(1) from exc
    common.out().print(f"Removed admin {username}", highlight=False)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for Headwater.")] = 8080,
) -> None:
    """Start Headwater with a real downstream SCIM app and the seed's example loaded."""
    import importlib.util

    from headwater.demo import run_demo

    if importlib.util.find_spec("scim2_server") is None:
        typer.echo(
            "headwater demo needs the scim2-server package: pip install 'headwater[demo]'", err=True
        )
        raise typer.Exit(1)

    try:
        run_demo(port=port)
    except SettingsError as exc:
        common.fail(str(exc))


def main() -> None:
    app()
