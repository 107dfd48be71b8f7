"""SCIM payload helpers shared by the test-tool tests."""

from __future__ import annotations

import itertools
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_HEADERS = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """Return a fresh name: the server is shared by every test of the directory."""
    return f"{prefix}-{next(_serial)}"


def user(user_name: str) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name}


def group(display_name: str, members: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": display_name}
    if members:
        body["members"] = [{"value": m} for m in members]
    return body


def add_members(*member_ids: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}
        ],
    }
