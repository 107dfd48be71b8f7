"""The console's router: every page group under ``/console``."""

from __future__ import annotations

from fastapi import APIRouter

from headwater.web import (
    app_imports,
    apps,
    assignments,
    groups,
    imports,
    mappings,
    observe,
    people,
    push,
    rules,
    signin,
    tasks,
)
from headwater.web.core import PREFIX

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
for module in (
    signin,
    people,
    imports,
    groups,
    rules,
    apps,
    assignments,
    push,
    mappings,
    app_imports,
    tasks,
    observe,
):
    router.include_router(module.router)
