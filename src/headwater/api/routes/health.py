"""Liveness for load balancers and ``headwater status`` (unauthenticated)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from headwater import clock
from headwater.api.deps import get_db
from headwater.db import leases

router = APIRouter(tags=["Headwater extension"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """``status`` ok (200) when the database answers and the embedded worker, if this process
    runs one, goes round; ``unavailable`` (503) when either does not."""
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    worker = getattr(request.app.state, "worker", None)
    # Read before the database: the worker records a heartbeat only once it is committed, so
    # an embedded worker that says it has beaten is then counted among the live ones.
    liveness = worker.liveness() if worker is not None else None
    try:
        with get_db(request).read() as session:
            session.execute(text("SELECT 1"))
            horizon = clock.utcnow() - timedelta(seconds=leases.LIVE_SECONDS)
            live = sum(1 for _, seen in leases.workers(session) if seen >= horizon)
    except Exception:
        body.update(status="unavailable", database="unreachable")
        return JSONResponse(body, status_code=503)
    body["workers"] = {"live": live}
    if liveness is not None:
        body["worker"] = {
            "embedded": True,
            "alive": liveness.alive,
            "stuck": liveness.stuck,
            "loopAgeSeconds": round(liveness.loop_age, 3),
            "heartbeatAgeSeconds": (
                round(liveness.heartbeat_age, 3) if liveness.heartbeat_age is not None else None
            ),
            "lastError": liveness.last_error,
        }
        if not liveness.alive or liveness.stuck:
            body["status"] = "unavailable"
            return JSONResponse(body, status_code=503)
    return JSONResponse(body)
