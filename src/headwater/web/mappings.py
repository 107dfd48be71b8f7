"""The Mappings tab of an app: every attribute's expression and push status, a form to change
one, and a preview of what a chosen person would get, with the expression being typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import or_, select

from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.profile_mapping import PushStatus, attribute_changes, targets
from headwater.engine import preview
from headwater.errors import HeadwaterError
from headwater.services import apps, mappings
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    allow,
    db_of,
    error_message,
    reading,
    render,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


def _preview(
    request: Request, app_id: str, who: str, attribute: str, expression: str, status: str
) -> dict[str, Any]:
    """The chosen person's attributes now and with the typed change (or the error)."""
    with reading(request) as session:
        user = session.execute(
            select(t.User).where(or_(t.User.id == who, t.User.login == who))
        ).scalar_one_or_none()
        if user is None:
            return {"who": who, "error": f"no person with the id or login {who!r}"}
        result: dict[str, Any] = {"who": who, "login": user.login}
        _, current, _ = mappings.load(session, app_id)
        now, error = preview.mapping_preview(session, app_id, user.id)
        if now is None and error is None:
            result["error"] = f"{user.login} is not assigned to this app"
            return result
        result["now"] = now.as_dict() if now else None
        result["now_error"] = error
        if attribute:
            try:
                change = {"expression": expression or None, "pushStatus": status or "PUSH"}
                changed = current.updated({attribute: change})
                after, after_error = preview.mapping_preview(session, app_id, user.id, changed)
            except HeadwaterError as exc:
                result["change_error"] = error_message(exc)
                return result
            result["after_error"] = after_error
            if after is not None:
                result["changes"] = attribute_changes(result["now"], after)
    return result


@router.get("/apps/{app_id}/mappings", dependencies=[allow(P.APPS_READ, "app_id")])
def mapping_page(
    request: Request,
    admin: AdminDep,
    app_id: str,
    user: str = "",
    attribute: str = "",
    expression: str = "",
    push_status: str = "PUSH",
) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        _, mapping, pending = mappings.load(session, app_id)
    rows = [
        {
            "name": name,
            "expression": text,
            "status": status.value,
            "changed": name in mapping.properties,
        }
        for name, (text, status) in sorted(mapping.effective().items())
    ]
    context = {
        "section": "apps",
        "tab": "mappings",
        "app": app,
        "rows": rows,
        "pending": pending is not None,
        "targets": sorted(targets(mapping.schema)),
        "statuses": [s.value for s in PushStatus],
        "form": {
            "user": user,
            "attribute": attribute,
            "expression": expression,
            "push_status": push_status,
        },
        "preview": _preview(
            request, app_id, user[:255], attribute[:64], expression[:1024], push_status
        )
        if user
        else None,
    }
    return render(request, "apps/mappings.html", context)


@router.post("/apps/{app_id}/mappings", dependencies=[allow(P.APPS_WRITE, "app_id")])
def save_mapping(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    attribute = form.get("attribute")
    change: dict[str, Any] | None = None
    if not form.checked("reset"):
        change = {"pushStatus": form.get("push_status") or "PUSH"}
        if form.get("expression"):
            change["expression"] = form.get("expression")
    with db_of(request).transaction() as session:
        saved = mappings.update(
            session, app_id, {attribute: change}, admin.actor, preview.mapping_impact
        )
    if saved.held:
        message = (
            f"Held by the mass-change guard: it would update {saved.affected} account(s). "
            "Approve it with `headwater mappings approve` or the API."
        )
        session_of(request).flash("error", message)
    else:
        session_of(request).flash(
            "ok", f"Mapping of {attribute} saved: {saved.affected} account(s) queued for update."
        )
    return see_other(f"{PREFIX}/apps/{app_id}/mappings")
