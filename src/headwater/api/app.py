"""The FastAPI application factory: one Runtime in, a configured app out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from headwater import __version__, web
from headwater.api.deps import get_actor
from headwater.api.errors import install_error_handlers
from headwater.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from headwater.api.routes import (
    app_users,
    apps,
    extensions,
    group_push,
    groups,
    guard,
    health,
    logs,
    tokens,
    users,
)
from headwater.runtime import Runtime

__all__ = ["create_app"]

DESCRIPTION = """Okta's management API shapes for users, groups, apps, assignments, app users,
Group Push mappings and the system log. Routes tagged *Headwater extension* do not exist in Okta.
Authenticate with `Authorization: SSWS <token>`."""


def create_app(runtime: Runtime, *, start_worker: bool | None = None) -> FastAPI:
    """Build the API (and console) around an already wired runtime."""
    run_worker = runtime.settings.embedded_worker if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = None
        if run_worker:
            from headwater.engine.worker import WorkerThread

            worker = WorkerThread(runtime)
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="Headwater",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(get_actor)])
    for module in (users, groups, apps, app_users, group_push, logs, tokens, extensions, guard):
        api.include_router(module.router)
    app.include_router(api)
    _install_edges(app)

    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app


def _install_edges(app: FastAPI) -> None:
    """Unauthenticated edges: health, metrics and the console."""
    app.include_router(health.router)
    web.install(app)  # the admin console at /console, its static files at /console/static
