"""Liveness and readiness, unauthenticated, for load balancers and ``headwater status``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from headwater.api.deps import get_db, get_runtime

router = APIRouter(tags=["Headwater extension"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok"}`` when the database answers."""
    with get_db(request).read() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    body = get_runtime(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
