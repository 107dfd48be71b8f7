"""``headwater users ...`` and ``headwater groups ...``: the directory from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.commands.common import (
    cli_actor,
    explain,
    fail,
    find_group,
    find_user,
    notice,
    opened,
    out,
    table,
)
from headwater.db import tables as t

__all__ = ["groups_app", "users_app"]

users_app = typer.Typer(help="People in the directory.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups and their members.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="Login or id of the person.", show_default=False)]
GroupArg = Annotated[str, typer.Argument(help="Name or id of the group.", show_default=False)]
UsersArg = Annotated[
    list[str], typer.Argument(help="Logins or ids of the people.", show_default=False)
]
LimitOpt = Annotated[int, typer.Option(min=1, help="Show at most this many rows.")]


def _full_name(user: t.User) -> str:
    profile = user.profile or {}
    return " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p)


def _more(shown: int, limit: int, total: int) -> None:
    if total > shown:
        notice(f"Showing the first {limit}; use --limit or --search to see others.")


# --- Users ------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(
    search: Annotated[
        str | None,
        typer.Option("--search", "-s", help="Start of a login, email, first or last name."),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", help='An Okta filter expression, e.g. status eq "DEPROVISIONED".'),
    ] = None,
    limit: LimitOpt = 200,
) -> None:
    """List people, oldest first (deactivated people only when --filter asks for them)."""
    from headwater.services import directory

    grid = table("id", "login", "name", "email", "status")
    with opened() as runtime, runtime.database.read() as session:
        query = directory.users_query(filter=filter_, q=search)
        rows = list(session.execute(query.order_by(t.User.id).limit(limit + 1)).scalars())
        for user in rows[:limit]:
            email = str((user.profile or {}).get("email") or "")
            grid.add_row(user.id, user.login, _full_name(user), email, user.status)
    out().print(grid)
    _more(len(rows[:limit]), limit, len(rows))


@users_app.command("create")
def users_create(
    login: Annotated[
        str, typer.Option(help="Sign-in name, usually an email address.", show_default=False)
    ],
    first: Annotated[str, typer.Option(help="First name.", show_default=False)],
    last: Annotated[str, typer.Option(help="Last name.", show_default=False)],
    email: Annotated[
        str | None, typer.Option(help="Email address (default: the login).", show_default=False)
    ] = None,
    password_prompt: Annotated[
        bool,
        typer.Option(
            "--password-prompt",
            help="Ask for a password (hidden). Without one an activated user is PROVISIONED.",
        ),
    ] = False,
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Activate now, or create STAGED.")
    ] = True,
) -> None:
    """Create a person (ACTIVE with a password, PROVISIONED without, STAGED with --no-activate)."""
    from headwater.services import directory

    password = None
    if password_prompt:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    profile = {"login": login, "email": email or login, "firstName": first, "lastName": last}
    with opened() as runtime, runtime.database.transaction() as session:
        user = directory.create_user(
            session, cli_actor(), profile, password=password, activate=activate
        )
        user_id, status = user.id, user.status
    out().print(f"Created {login} ({user_id}), {status}.", markup=False, highlight=False)


def _change_status(key: str, action_name: str) -> None:
    from headwater.domain.lifecycle import Action
    from headwater.errors import HeadwaterError
    from headwater.services import directory

    action = Action(action_name)
    with opened() as runtime, runtime.database.transaction() as session:
        user = find_user(session, key)
        login, status = user.login, user.status
        try:
            directory.change_status(session, cli_actor(), user.id, action)
        except HeadwaterError as exc:
            fail(f"{explain(exc)} ({login} is {status})")
        status = user.status
    verb = "Activated" if action is Action.ACTIVATE else "Deactivated"
    out().print(f"{verb} {login}, now {status}.", markup=False, highlight=False)


@users_app.command("activate")
def users_activate(user: UserArg) -> None:
    """Activate a STAGED or deactivated person."""
    _change_status(user, "activate")


@users_app.command("deactivate")
def users_deactivate(user: UserArg) -> None:
    """Deactivate a person: their downstream accounts are deactivated, after their pushed
    memberships are removed; direct app assignments are dropped, as in Okta."""
    _change_status(user, "deactivate")


# --- Groups -----------------------------------------------------------------------------------


@groups_app.command("list")
def groups_list(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Start of the group's name.")
    ] = None,
    limit: LimitOpt = 200,
) -> None:
    """List groups, oldest first, with their member counts."""
    from headwater.services import directory

    grid = table("id", "name", "type", "members", "description")
    with opened() as runtime, runtime.database.read() as session:
        query = directory.groups_query(q=search)
        rows = list(session.execute(query.order_by(t.Group.id).limit(limit + 1)).scalars())
        shown = rows[:limit]
        counts = dict(
            session.execute(
                select(t.Membership.group_id, func.count())
                .where(t.Membership.group_id.in_([g.id for g in shown]))
                .group_by(t.Membership.group_id)
            ).all()
        )
        for group in shown:
            members = str(counts.get(group.id, 0))
            grid.add_row(group.id, group.name, group.type, members, group.description or "")
    out().print(grid)
    _more(len(shown), limit, len(rows))


@groups_app.command("create")
def groups_create(
    name: Annotated[str, typer.Argument(help="The group's name (unique).", show_default=False)],
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
) -> None:
    """Create a group."""
    from headwater.services import directory

    profile = {"name": name} | ({"description": description} if description else {})
    with opened() as runtime, runtime.database.transaction() as session:
        group = directory.create_group(session, cli_actor(), profile)
        group_id = group.id
    out().print(f"Created group {name} ({group_id}).", markup=False, highlight=False)


def _members_of(session: Session, group_id: str, user_ids: list[str]) -> set[str]:
    return set(
        session.execute(
            select(t.Membership.user_id).where(
                t.Membership.group_id == group_id, t.Membership.user_id.in_(user_ids)
            )
        ).scalars()
    )


@groups_app.command("add")
def groups_add(group: GroupArg, users: UsersArg) -> None:
    """Add people to a group (all or none: an unknown person changes nothing)."""
    from headwater.services import directory

    with opened() as runtime, runtime.database.transaction() as session:
        row = find_group(session, group)
        people = {find_user(session, key).id: key for key in users}
        already = _members_of(session, row.id, list(people))
        for user_id in people:
            directory.add_member(session, cli_actor(), row.id, user_id)
        name = row.name
    added = len(people) - len(already)
    note = f" ({len(already)} already members)" if already else ""
    out().print(f"Added {added} to {name}{note}.", markup=False, highlight=False)


@groups_app.command("remove")
def groups_remove(group: GroupArg, users: UsersArg) -> None:
    """Remove people from a group (all or none: an unknown person changes nothing)."""
    from headwater.services import directory

    with opened() as runtime, runtime.database.transaction() as session:
        row = find_group(session, group)
        people = {find_user(session, key).id: key for key in users}
        present = _members_of(session, row.id, list(people))
        for user_id in people:
            directory.remove_member(session, cli_actor(), row.id, user_id)
        name = row.name
    missing = len(people) - len(present)
    note = f" ({missing} were not members)" if missing else ""
    out().print(f"Removed {len(present)} from {name}{note}.", markup=False, highlight=False)
