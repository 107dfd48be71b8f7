"""The REST API: one Runtime in, a FastAPI app with Okta's routes and Headwater's extensions out.

``headwater.server`` adds the console and the embedded worker around it."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.routing import iter_route_contexts

from headwater import __version__
from headwater.api import scim
from headwater.api.deps import get_actor, storable_url_dep
from headwater.api.errors import install_error_handlers
from headwater.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from headwater.api.routes import (
    app_imports,
    app_users,
    apps,
    csv_imports,
    extensions,
    group_push,
    group_rules,
    groups,
    guard,
    health,
    logs,
    mappings,
    metrics,
    schemas,
    sources,
    tokens,
    users,
)
from headwater.runtime import Runtime

__all__ = ["create_api"]

DESCRIPTION = """Okta's management API shapes for users, groups, group rules, apps, assignments,
app users, Group Push mappings and the system log. Routes tagged *Headwater extension* do not
exist in Okta.
Authenticate with `Authorization: SSWS <token>`."""


def _check_settled(app: FastAPI) -> None:
    """Every /api/v1 handler must settle its request's token and permissions before it runs
    (``AuthenticatedRoute``): a route without it would run unauthenticated, so the app is
    refused instead."""
    for route in iter_route_contexts(app.routes):
        if not (route.path or "").startswith("/api/v1/"):
            continue
        if not getattr(route.endpoint, "settles_first", False):
            raise RuntimeError(f"{route.path}: its router needs route_class=AuthenticatedRoute")


def create_api(runtime: Runtime, *, lifespan: Any = None) -> FastAPI:
    """Build the API around an already wired runtime (``lifespan``: the server's, if any)."""
    app = FastAPI(
        title="Headwater",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The reference and its schema are public knowledge (the source is open); an operator
        # may still turn them off (HEADWATER_API_DOCS=false). ReDoc is not served.
        docs_url="/docs" if runtime.settings.api_docs else None,
        openapi_url="/openapi.json" if runtime.settings.api_docs else None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    # The URL is checked before any route's permission check, which logs refusals with the path.
    api_dependencies = [Depends(get_actor), Depends(storable_url_dep)]
    for module in (
        users,
        group_rules,
        groups,
        apps,
        app_users,
        app_imports,
        csv_imports,
        group_push,
        mappings,
        schemas,
        logs,
        tokens,
        sources,
        extensions,
        guard,
    ):
        app.include_router(module.router, prefix="/api/v1", dependencies=api_dependencies)
    _check_settled(app)
    app.include_router(scim.router)
    app.include_router(health.router)
    app.include_router(metrics.router)

    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
