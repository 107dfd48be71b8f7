"""Okta's JSON shapes for directory objects, shared by every route that shows them.

The official SDK parses these strictly: enums as Okta spells them, timestamps with
milliseconds and ``Z``, and a string ``href`` in every ``_links`` entry.
"""

from __future__ import annotations

from typing import Any

from headwater import clock
from headwater.db import tables as t
from headwater.domain import lifecycle

__all__ = ["DEFAULT_USER_TYPE_ID", "group_json", "user_json"]

#: Okta gives every user a type; Headwater has the default one only.
DEFAULT_USER_TYPE_ID = "otyheadwaterdefault0"


def _user_links(user: t.User, base: str, *, full: bool) -> dict[str, Any]:
    """``self``; a single user also links the lifecycle actions legal in its status."""
    href = f"{base}/api/v1/users/{user.id}"
    links: dict[str, Any] = {"self": {"href": href}}
    if full:
        for action in lifecycle.allowed_actions(user.status):
            links[action.value] = {"href": f"{href}/lifecycle/{action.value}", "method": "POST"}
    return links


def user_json(user: t.User, base: str, *, full: bool = True) -> dict[str, Any]:
    """Okta's User object; never a password or its hash (``password: {}`` says one is set)."""
    credentials: dict[str, Any] = {"provider": {"type": "OKTA", "name": "OKTA"}}
    if user.password_hash is not None:
        credentials = {"password": {}, **credentials}
    return {
        "id": user.id,
        "status": user.status,
        "created": clock.format_okta(user.created),
        "activated": clock.format_okta(user.activated),
        "statusChanged": clock.format_okta(user.status_changed),
        "lastLogin": clock.format_okta(user.last_login),
        "lastUpdated": clock.format_okta(user.last_updated),
        "passwordChanged": clock.format_okta(user.password_changed),
        "type": {"id": DEFAULT_USER_TYPE_ID},
        "profile": user.profile,
        "credentials": credentials,
        "_links": _user_links(user, base, full=full),
    }


def group_json(group: t.Group, base: str) -> dict[str, Any]:
    """Okta's Group object (no ``logo`` links: Headwater serves no group logos)."""
    href = f"{base}/api/v1/groups/{group.id}"
    links: dict[str, Any] = {
        "self": {"href": href},
        "users": {"href": f"{href}/users"},
        "apps": {"href": f"{href}/apps"},
    }
    if group.app_id is not None:
        links["source"] = {"href": f"{base}/api/v1/apps/{group.app_id}"}
    return {
        "id": group.id,
        "created": clock.format_okta(group.created),
        "lastUpdated": clock.format_okta(group.last_updated),
        "lastMembershipUpdated": clock.format_okta(group.last_membership_updated),
        "objectClass": ["okta:user_group"],
        "type": group.type,
        "profile": {"name": group.name, "description": group.description, **group.profile},
        "_links": links,
    }
