"""The server process: the REST API, the admin console and, optionally, an embedded worker.

The one place where the edges meet: ``api`` and ``web`` know nothing of each other, and the
worker thread is started and stopped with the server's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from headwater import web
from headwater.api.app import create_api
from headwater.runtime import Runtime

__all__ = ["POSTGRESQL_API_THREADS", "SQLITE_API_THREADS", "api_threads", "create_app"]

#: Handler threads on SQLite unless ``HEADWATER_API_THREADS`` says otherwise (decision 55).
SQLITE_API_THREADS = 4
#: ... and on PostgreSQL (anyio's own default).
POSTGRESQL_API_THREADS = 40


def api_threads(runtime: Runtime) -> int:
    """How many handlers run at once.

    On PostgreSQL a handler spends much of its time waiting for the server, and other handlers
    run meanwhile. On SQLite nearly all of it is this interpreter's own work, so handlers beyond
    a few only take turns for the GIL: with 8 creates at once, 4 threads served 5-7% more
    than 40. Four still lets reads go on while writers wait for SQLite's write lock."""
    configured = runtime.settings.api_threads
    if configured is not None:
        return configured
    return SQLITE_API_THREADS if runtime.database.is_sqlite else POSTGRESQL_API_THREADS


def create_app(runtime: Runtime, *, start_worker: bool | None = None) -> FastAPI:
    """API and console on one app; a worker thread too unless ``start_worker`` is False
    (``None`` follows ``HEADWATER_EMBEDDED_WORKER``)."""
    run_worker = runtime.settings.embedded_worker if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The handlers' thread pool belongs to the event loop, so it is sized as the loop starts.
        to_thread.current_default_thread_limiter().total_tokens = api_threads(runtime)
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
