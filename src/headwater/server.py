"""The server process: the REST API, the admin console and, optionally, an embedded worker.

The one place where the edges meet: ``api`` and ``web`` know nothing of each other, and the
worker thread is started and stopped with the server's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from headwater import web
from headwater.api.app import create_api
from headwater.runtime import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime, *, start_worker: bool | None = None) -> FastAPI:
    """API and console on one app; a worker thread too unless ``start_worker`` is False
    (``None`` follows ``HEADWATER_EMBEDDED_WORKER``)."""
    run_worker = runtime.settings.embedded_worker if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if run_worker:
            from headwater.engine.worker import WorkerThread

            worker = WorkerThread(runtime.worker())
            worker.start()
            app.state.worker = worker  # /health reports its liveness
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = create_api(runtime, lifespan=lifespan)
    web.install(app)  # the admin console at /console, its static files at /console/static

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """A browser pointed at the server lands on the console (its sign-in page)."""
        return RedirectResponse("/console/", status_code=303)

    return app
