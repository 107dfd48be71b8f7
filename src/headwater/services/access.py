"""Roles stored with tokens and admins, checked before storage; refusals in the system log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.db import events
from headwater.db import tables as t
from headwater.db.events import Actor, Target
from headwater.domain.access import Grant, Permission, check_grant
from headwater.errors import Forbidden, InvalidRequest

__all__ = ["DENIED_EVENT", "deny", "grant_of", "validated_grant"]

#: The system log event of a refused call (API or console).
DENIED_EVENT = "app.headwater.access.denied"
_TARGET_TYPES = {"app": "AppInstance", "group": "UserGroup"}


def _unique(values: Iterable[str]) -> list[str]:
    return sorted({value.strip() for value in values if value.strip()})


def validated_grant(
    session: Session, role: str, app_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
) -> Grant:
    """The grant, once the role is known and every named app and group exists."""
    apps, groups = _unique(app_ids), _unique(group_ids)
    causes = check_grant(role.strip().upper(), apps, groups)
    if not causes:
        for name, model, wanted in (("apps", t.App, apps), ("groups", t.Group, groups)):
            if not wanted:
                continue
            found = set(session.execute(select(model.id).where(model.id.in_(wanted))).scalars())
            causes += [f"{name}: no such id {item}" for item in wanted if item not in found]
    if causes:
        raise InvalidRequest("Api validation failed: " + causes[0], causes)
    return Grant.of(role.strip().upper(), apps, groups)


class Granted(Protocol):
    """A row that carries a role: a token (as an object or a plain row) or an admin."""

    @property
    def role(self) -> str: ...
    @property
    def app_ids(self) -> Sequence[Any] | None: ...
    @property
    def group_ids(self) -> Sequence[Any] | None: ...


def grant_of(row: Granted) -> Grant:
    return Grant.of(row.role, row.app_ids or (), row.group_ids or ())


def deny(
    session: Session, actor: Actor, permission: Permission, resource_id: str | None, where: str
) -> Forbidden:
    """Record a refused call (``where``: the method and path) and return the error to raise."""
    kind = _TARGET_TYPES.get(permission.kind.value, "Org")
    targets = [Target(resource_id, kind)] if resource_id else []
    events.record(
        session,
        DENIED_EVENT,
        f"Access denied: {permission.value} ({where})",
        actor=actor,
        targets=targets,
        outcome="FAILURE",
        reason="You do not have permission to perform the requested action",
        debug={"permission": permission.value, "request": where[:300]},
    )
    return Forbidden()
