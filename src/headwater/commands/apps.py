"""``headwater apps ...``, ``assign``, ``unassign`` and ``push``: apps and what they receive."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import func, select

from headwater.commands.common import (
    cli_actor,
    explain,
    fail,
    find_app,
    find_group,
    notice,
    opened,
    out,
    table,
    when,
)
from headwater.db import tables as t
from headwater.errors import InvalidRequest

__all__ = ["AppArg", "GroupArg", "apps_app", "assign", "push", "unassign"]

#: Where ``apps create`` reads the bearer token when ``--token-prompt`` is not given.
TOKEN_ENV = "HEADWATER_SCIM_TOKEN"

apps_app = typer.Typer(
    help="Applications and their SCIM provisioning connections.", no_args_is_help=True
)

AppArg = Annotated[str, typer.Argument(help="Label, name or id of the app.", show_default=False)]
GroupArg = Annotated[str, typer.Argument(help="Name or id of the group.", show_default=False)]


def _print(message: str) -> None:
    out().print(message, markup=False, highlight=False, soft_wrap=True)


@apps_app.command("list")
def apps_list() -> None:
    """List apps with their provisioning connection and the keys waiting for the engine."""
    grid = table("id", "label", "status", "provisioning", "keys queued", "quarantined since")
    with opened() as runtime, runtime.database.read() as session:
        connections = {c.app_id: c for c in session.execute(select(t.AppConnection)).scalars()}
        pending = dict(
            session.execute(
                select(t.ReconcileKey.app_id, func.count()).group_by(t.ReconcileKey.app_id)
            ).all()
        )
        for app in session.execute(select(t.App).order_by(t.App.id)).scalars():
            connection = connections.get(app.id)
            target = f"{connection.base_url} ({connection.status})" if connection else "none"
            quarantined = when(app.quarantined_since) if app.quarantined_since else ""
            keys = str(pending.get(app.id, 0))
            grid.add_row(app.id, app.label, app.status, target, keys, quarantined)
    out().print(grid)


@apps_app.command("show")
def apps_show(app: AppArg) -> None:
    """Show an app's provisioning settings, the SCIM dialect it is spoken to in, and what it
    announced of itself (its ServiceProviderConfig)."""
    from headwater.api.wire import settings_json
    from headwater.services import apps

    with opened() as runtime, runtime.database.read() as session:
        row = find_app(session, app)
        settings = settings_json(apps.settings_of(row))
        spoken = apps.capabilities_of(row)
        title = f"{row.label} ({row.id}), {row.status}"
    _print(title)
    grid = table("setting", "value")
    for name, value in settings.items():
        grid.add_row(name, _shown(value))
    out().print(grid)
    announced = spoken.pop("announced")
    grid = table("dialect as spoken", "value")
    for name, value in spoken.items():
        grid.add_row(name, _shown(value))
    out().print(grid)
    grid = table("announced by the app", "value")
    for section, values in announced.items():
        if isinstance(values, dict):
            for name, value in values.items():
                grid.add_row(f"{section}.{name}", _shown(value))
        else:
            grid.add_row(section, _shown(values))
    out().print(grid)


def _shown(value: object) -> str:
    if value is None:
        return "not said"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@apps_app.command("set")
def apps_set(
    app: AppArg,
    changes: Annotated[
        list[str],
        typer.Argument(
            help="NAME=VALUE pairs, by the settings' API names (dialect=entra-style, "
            "membershipBatchSize=100, groupMembersReturned=false).",
            show_default=False,
        ),
    ],
) -> None:
    """Change provisioning settings, validated as the API does (numbers and true/false are read
    as JSON, anything else as text)."""
    from headwater.api.wire import parse_settings_changes
    from headwater.services import apps

    body: dict[str, object] = {}
    for pair in changes:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            fail(f"{pair}: expected NAME=VALUE")
        try:
            value: object = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, dict | list):
            value = text
        body[name.strip()] = value
    try:
        checked = parse_settings_changes(body)
        with opened() as runtime, runtime.database.transaction() as session:
            row = find_app(session, app)
            apps.update_settings(session, cli_actor(), row.id, checked)
            label = row.label
    except InvalidRequest as exc:
        fail(explain(exc))
    _print(f"Updated the provisioning settings of {label}.")


@apps_app.command("template-preview")
def apps_template_preview(
    app: AppArg,
    template: Annotated[
        str,
        typer.Argument(
            help="The username template, e.g. '${String.substringBefore(source.login, \"@\")}'.",
            show_default=False,
        ),
    ],
    user: Annotated[
        list[str] | None,
        typer.Option("--user", "-u", help="Try it on this person (login or id); repeatable."),
    ] = None,
    limit: Annotated[int, typer.Option(help="People to try it on (1 to 25).")] = 10,
) -> None:
    """Show what a username template would give a sample of people, before saving it with
    ``apps set APP userNameTemplate=...``. Exit status 1 when the template is refused."""
    from headwater.commands.common import find_user
    from headwater.services import apps

    try:
        with opened() as runtime, runtime.database.read() as session:
            row = find_app(session, app)
            ids = [find_user(session, key).id for key in user or ()]
            result = apps.preview_template(session, row.id, template, user_ids=ids, limit=limit)
    except InvalidRequest as exc:
        fail(explain(exc))
    if result.error is not None:
        fail(f"the template is refused: {result.error.message}")
    if not result.users:
        _print("No people to try it on yet.")
        return
    grid = table("person", "username")
    for one in result.users:
        grid.add_row(one.login, one.user_name if one.error is None else f"error: {one.error}")
    out().print(grid)


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Mute a logger's warnings while the command reports the same failure itself."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "app"


@apps_app.command("create")
def apps_create(
    label: Annotated[str, typer.Option(help="Display name of the app.", show_default=False)],
    scim_url: Annotated[
        str,
        typer.Option(
            "--scim-url",
            help="SCIM 2.0 base URL, e.g. https://app.example.com/scim/v2.",
            show_default=False,
        ),
    ],
    token_prompt: Annotated[
        bool,
        typer.Option(
            "--token-prompt",
            help=f"Ask for the bearer token (hidden) instead of reading ${TOKEN_ENV}.",
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="Catalog name (default: the label in lower case, as a slug).", show_default=False
        ),
    ] = None,
) -> None:
    """Create an active app and its provisioning connection, tested first.

    The bearer token comes from a hidden prompt (--token-prompt) or from $HEADWATER_SCIM_TOKEN,
    never from the command line; without either, the app is called without authentication.
    If the connection test fails, the app is removed again and the command exits with 1.
    """
    from headwater.engine import connection_test
    from headwater.services import apps, connections

    token = typer.prompt("Bearer token", hide_input=True) if token_prompt else None
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None:
        notice(
            f"warning: no bearer token (no --token-prompt, ${TOKEN_ENV} unset); "
            "the app will be called without authentication"
        )
    connection = connections.ConnectionSpec(
        "TOKEN" if token else "NONE", scim_url, {"token": token} if token else {}
    )
    spec = apps.AppSpec(label=label, name=name or _slug(label))
    actor = cli_actor()
    with opened() as runtime:
        with runtime.database.transaction() as session:
            app = apps.create_app(session, actor, spec, activate=True)
            session.flush()
            prepared = connections.prepare_connection(session, runtime.secrets, app.id, connection)
            app_id = app.id
        try:
            with _quiet(connections.log):
                announced = asyncio.run(connection_test.probe(runtime.connectors, prepared))
        except InvalidRequest as exc:
            with runtime.database.transaction() as session:
                apps.deactivate_app(session, actor, app_id)
                apps.delete_app(session, actor, app_id)
            fail(f"{explain(exc)} (the app was not kept)")
        with runtime.database.transaction() as session:
            connections.save_connection(
                session, actor, prepared, enabled=True, capabilities=announced
            )
    auth = "a bearer token" if token else "no authentication"
    _print(
        f"Created {label} ({app_id}): provisioning to {scim_url} with {auth} "
        "(connection tested and enabled)."
    )


def assign(
    app: AppArg,
    group: GroupArg,
    priority: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=100,
            help="0-100; the lowest number's app profile wins (default: after the others).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Assign an app to a group: its members get accounts (or keep them, at a new priority)."""
    from headwater.services import assignments

    with opened() as runtime, runtime.database.transaction() as session:
        app_row, group_row = find_app(session, app), find_group(session, group)
        spec = assignments.GroupAssignmentSpec(priority=priority)
        row = assignments.assign_group(session, cli_actor(), app_row.id, group_row.id, spec)
        members = session.execute(
            select(func.count()).where(t.Membership.group_id == group_row.id)
        ).scalar_one()
        message = (
            f"Assigned {app_row.label} to {group_row.name} at priority {row.priority} "
            f"({members} members)."
        )
    _print(message)


def unassign(app: AppArg, group: GroupArg) -> None:
    """Unassign an app from a group: members with no other grant lose their account (their
    pushed memberships are removed first)."""
    from headwater.services import assignments

    with opened() as runtime, runtime.database.transaction() as session:
        app_row, group_row = find_app(session, app), find_group(session, group)
        if session.get(t.AppGroupAssignment, (app_row.id, group_row.id)) is None:
            fail(f"{group_row.name} is not assigned to {app_row.label}")
        assignments.unassign_group(session, cli_actor(), app_row.id, group_row.id)
        message = f"Unassigned {app_row.label} from {group_row.name}."
    _print(message)


def push(
    app: AppArg,
    group: GroupArg,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Name of the downstream group (default: the group's name); an existing "
            "downstream group of that name is linked.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Push a group to an app (Group Push): the downstream group's members follow it."""
    from headwater.services import grouppush

    with opened() as runtime, runtime.database.transaction() as session:
        app_row, group_row = find_app(session, app), find_group(session, group)
        target = name or group_row.name
        spec = grouppush.MappingSpec(group_row.id, target_group_name=target)
        mapping = grouppush.create_mapping(session, cli_actor(), app_row.id, spec)
        message = (
            f"Pushing {group_row.name} to {app_row.label} as {target!r} (mapping {mapping.id})."
        )
    _print(message)
