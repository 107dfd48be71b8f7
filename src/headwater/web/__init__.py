"""The admin console: server-rendered pages (Jinja2 + htmx) over the same services as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from headwater.crypto import load_or_create_key
from headwater.runtime import Runtime
from headwater.web.core import PREFIX
from headwater.web.routes import router
from headwater.web.session import SessionCodec, derive_key
from headwater.web.throttle import SignInGuard

__all__ = ["install"]

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the console and its static files on an app that carries ``state.runtime``.

    The cookie's signing key comes from the runtime's secret key (the same key file on every
    process sharing the data folder), and sessions live in the database, so any process can
    resume any session. Sign-in limits and the hashing pool are this app's own.
    """
    runtime: Runtime = app.state.runtime
    secret = load_or_create_key(runtime.settings.secret_key, runtime.settings.data_dir)
    app.state.console_codec = SessionCodec(derive_key(secret))
    app.state.console_signin = SignInGuard()
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="console-static")
