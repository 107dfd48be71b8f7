"""Group rules: the list, with a preview of whom an expression matches before it is saved."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from headwater.domain.access import Permission as P
from headwater.domain.group_rules import invalid
from headwater.errors import HeadwaterError
from headwater.services import group_rules
from headwater.web.core import AdminDep, ConsoleRoute, allow, error_message, reading, render

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

SHOWN = 500
SAMPLE = 10
MAX_EXPRESSION = 4096


@router.get("/rules", dependencies=[allow(P.RULES_READ)])
def rules(request: Request, admin: AdminDep, expression: str = "") -> Response:
    """Every rule (status, expression, groups, memberships held); ``expression`` previews."""
    preview: group_rules.Preview | None = None
    error = None
    with reading(request) as session:
        listing = group_rules.list_rules(session, limit=SHOWN)
        rows, held, names = listing.rules, listing.held, listing.group_names
        text = expression.strip()
        if text:
            try:
                if len(text) > MAX_EXPRESSION:
                    raise invalid(
                        f"conditions.expression.value: at most {MAX_EXPRESSION} characters"
                    )
                preview = group_rules.preview(session, text, sample=SAMPLE)
            except HeadwaterError as exc:
                error = error_message(exc)
    context: dict[str, Any] = {
        "section": "rules",
        "rules": [
            (rule, [names.get(g, f"{g} (deleted)") for g in rule.group_ids], held.get(rule.id, 0))
            for rule in rows
        ],
        "expression": text,
        "preview": preview,
        "error": error,
    }
    return render(request, "rules/list.html", context)
