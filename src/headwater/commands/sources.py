"""``headwater sources ...``: inbound sources (``/scim/v2`` clients) and their tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from headwater import clock
from headwater.commands.common import cli_actor, notice, opened, out, table, when

__all__ = ["sources_app"]

sources_app = typer.Typer(
    help="Inbound sources: SCIM clients (an HR system, another directory) that master the "
    "users and groups they create.",
    no_args_is_help=True,
)

SourceArg = Annotated[str, typer.Argument(help="Id or name of the source.", show_default=False)]


@sources_app.command("list")
def sources_list() -> None:
    """List sources with how many users and groups each masters, and their tokens."""
    from sqlalchemy import func, select

    from headwater.db import tables as t
    from headwater.services import sources

    grid = table("id", "name", "created", "users", "groups", "tokens")
    with opened() as runtime, runtime.database.read() as session:
        for source in sources.list_sources(session):
            counts = [
                session.execute(
                    select(func.count()).select_from(model).where(model.source_id == source.id)
                ).scalar_one()
                for model in (t.User, t.Group, t.SourceToken)
            ]
            grid.add_row(source.id, source.name, when(source.created), *map(str, counts))
    out().print(grid)


@sources_app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="e.g. HR", show_default=False)],
) -> None:
    """Create a source (then issue it a token with ``headwater sources token``)."""
    from headwater.services import sources

    with opened() as runtime, runtime.database.transaction() as session:
        source = sources.create_source(session, cli_actor(), name)
        source_id, source_name = source.id, source.name
    out().print(f"Created source {source_name} ({source_id}).", markup=False, highlight=False)


@sources_app.command("delete")
def sources_delete(key: SourceArg) -> None:
    """Delete a source and its tokens; the users and groups it mastered stay, unmastered."""
    from headwater.services import sources

    with opened() as runtime, runtime.database.transaction() as session:
        sources.delete_source(session, cli_actor(), key)
    out().print(f"Deleted source {key}.", markup=False, highlight=False)


@sources_app.command("token")
def sources_token(
    key: SourceArg,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, such as 90d or 12h (default: no expiry).")
    ] = None,
) -> None:
    """Issue a bearer token for /scim/v2; it is printed once, as the last line."""
    from headwater.services import sources, tokens

    with opened() as runtime:
        lifetime = tokens.parse_lifetime(expires_in) if expires_in is not None else None
        with runtime.database.transaction() as session:
            row, plaintext = sources.issue_token(session, cli_actor(), key, lifetime=lifetime)
            token_id, expiry = row.id, clock.format_okta(row.expires_at)
    until = f", expires {expiry}" if expiry else ""
    notice(f"Issued token {token_id} for source {key}{until}. It is shown only once:")
    print(plaintext)


@sources_app.command("tokens")
def sources_tokens(key: SourceArg) -> None:
    """List a source's tokens (never their values)."""
    from headwater.services import sources

    grid = table("id", "prefix", "created", "expires", "last used")
    with opened() as runtime, runtime.database.read() as session:
        for row in sources.list_tokens(session, key):
            grid.add_row(
                row.id,
                row.token_prefix,
                when(row.created),
                when(row.expires_at),
                when(row.last_used),
            )
    out().print(grid)


@sources_app.command("revoke")
def sources_revoke(
    key: SourceArg,
    token_id: Annotated[str, typer.Argument(help="Id of the token.", show_default=False)],
) -> None:
    """Revoke one of a source's tokens."""
    from headwater.services import sources

    with opened() as runtime, runtime.database.transaction() as session:
        sources.revoke_token(session, cli_actor(), key, token_id)
    out().print(f"Revoked token {token_id}.", markup=False, highlight=False)
