"""Liveness and readiness, unauthenticated, for load balancers and ``headwater status``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from headwater.api.deps import get_db

router = APIRouter(tags=["Headwater extension"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok"}`` when the database answers."""
    with get_db(request).read() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}
