"""Push by rule: groups whose names match an app's rule get a push mapping automatically."""

from __future__ import annotations

from sqlalchemy.orm import Session

__all__ = ["apply_to_group"]


def apply_to_group(session: Session, group_id: str) -> None:
    """Create mappings for ``group_id`` under every matching active rule (called on group
    create and rename, in the same transaction)."""
    # Filled in by the Group Push work; a no-op until rules exist.
    return None
