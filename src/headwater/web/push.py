"""The Push Groups tab: push by name or by rule, status and errors, push now, pause and resume,
unlink keeping or deleting the downstream group (with its impact first), and orphans."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.db import tables as t
from headwater.domain.access import Permission as P
from headwater.domain.states import GroupType
from headwater.engine import orphans
from headwater.services import apps, grouppush, push_rules, tasks
from headwater.web import impact
from headwater.web.assignments import find_okta_group, group_suggestions
from headwater.web.core import (
    PREFIX,
    AdminDep,
    ConsoleRoute,
    FormDep,
    allow,
    db_of,
    reading,
    render,
    runtime_of,
    see_other,
    session_of,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

ORPHANS_SHOWN = 100


def _counts(session: Session, model: Any, app_id: str) -> dict[str, int]:
    """Rows per mapping of the app (pushed members, orphans), one query."""
    rows = session.execute(
        select(model.mapping_id, func.count())
        .join(t.PushMapping, t.PushMapping.id == model.mapping_id)
        .where(t.PushMapping.app_id == app_id)
        .group_by(model.mapping_id)
    ).all()
    return {mapping_id: int(count) for mapping_id, count in rows}


def _rows(session: Session, app_id: str) -> list[dict[str, Any]]:
    mappings = session.execute(
        grouppush.mappings_query(session, app_id, grouppush.MappingFilter()).order_by(
            t.PushMapping.created
        )
    ).scalars()
    pushed = _counts(session, t.PushMember, app_id)
    orphans = _counts(session, t.Orphan, app_id)
    rows = []
    for mapping in mappings:
        source = session.get(t.Group, mapping.source_group_id) if mapping.source_group_id else None
        rows.append(
            {
                "mapping": mapping,
                "source": source,
                "target": impact.target_name(session, mapping),
                "pushed": pushed.get(mapping.id, 0),
                "orphans": orphans.get(mapping.id, 0),
            }
        )
    return rows


def _linkable(session: Session, app_id: str) -> list[t.Group]:
    """The app's downstream groups that no mapping targets yet (link instead of create)."""
    targeted = select(t.PushMapping.target_group_id).where(
        t.PushMapping.target_group_id.is_not(None)
    )
    return list(
        session.execute(
            select(t.Group)
            .where(
                t.Group.app_id == app_id,
                t.Group.type == GroupType.APP_GROUP,
                t.Group.id.not_in(targeted),
            )
            .order_by(t.Group.name_lower)
            .limit(200)
        ).scalars()
    )


@router.get("/apps/{app_id}/push", dependencies=[allow(P.APPS_READ, "app_id")])
def push_groups(request: Request, admin: AdminDep, app_id: str) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        rules = list(session.execute(push_rules.rules_query(session, app_id)).scalars())
        orphans = session.execute(
            tasks.orphans_query(session, app_id, None, None).limit(ORPHANS_SHOWN)
        ).scalars()
        context = {
            "section": "apps",
            "tab": "push",
            "app": app,
            "group_push_on": apps.settings_of(app).group_push,
            "rows": _rows(session, app_id),
            "rules": rules,
            "matches": push_rules.MATCHES,
            "orphans": list(orphans),
            "linkable": _linkable(session, app_id),
            "suggestions": group_suggestions(session),
        }
    return render(request, "apps/push.html", context)


@router.post("/apps/{app_id}/push", dependencies=[allow(P.APPS_WRITE, "app_id")])
def create_mapping(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """Push a group by name: a new downstream group (or one of the same name, linked), or an
    existing downstream group picked from the list."""
    link_to = form.get("target_group_id")
    with db_of(request).transaction() as session:
        source = find_okta_group(session, form.get("group"))
        spec = grouppush.MappingSpec(
            source_group_id=source.id,
            target_group_name=None if link_to else (form.get("target_name") or source.name),
            target_group_id=link_to or None,
        )
        grouppush.create_mapping(session, admin.actor, app_id, spec)
        name = source.name
    session_of(request).flash("ok", f"Pushing {name}; the engine is creating the group.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.post(
    "/apps/{app_id}/push/{mapping_id}/push-now", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def push_now(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, mapping_id: str
) -> Response:
    with db_of(request).transaction() as session:
        grouppush.push_now(session, admin.actor, app_id, mapping_id)
    session_of(request).flash("ok", "Full push requested.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.post(
    "/apps/{app_id}/push/{mapping_id}/status", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def set_status(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, mapping_id: str
) -> Response:
    status = form.get("status")
    with db_of(request).transaction() as session:
        grouppush.set_status(session, admin.actor, app_id, mapping_id, status)
    session_of(request).flash("ok", f"Mapping is now {status}.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.get("/apps/{app_id}/push/{mapping_id}/unlink", dependencies=[allow(P.APPS_READ, "app_id")])
def confirm_unlink(
    request: Request, admin: AdminDep, app_id: str, mapping_id: str, delete_target: bool = False
) -> Response:
    with reading(request) as session:
        app = apps.get_app(session, app_id)
        mapping = grouppush.get_mapping(session, app_id, mapping_id)
        effect = impact.mapping_removal(session, mapping, delete_target=delete_target)
    if delete_target:
        what = f"Unlink and delete the downstream group {effect.target_name}?"
        notes = [
            f"The group {effect.target_name} will be deleted in {app.label}, with its "
            f"{effect.memberships} pushed membership(s). No account is deactivated.",
        ]
    else:
        what = f"Unlink {effect.target_name} and keep the downstream group?"
        notes = [
            f"The group {effect.target_name} stays in {app.label} with its "
            f"{effect.memberships} member(s); Headwater stops managing it.",
        ]
    context = {
        "section": "apps",
        "tab": "push",
        "app": app,
        "what": what,
        "impacts": [],
        "notes": notes,
        "hidden": {"delete_target": "true" if delete_target else "false"},
        "action": f"{PREFIX}/apps/{app_id}/push/{mapping_id}/unlink",
        "confirm": "Confirm: unlink" + (" and delete the group" if delete_target else ""),
        "cancel": f"{PREFIX}/apps/{app_id}/push",
    }
    return render(request, "apps/confirm.html", context)


@router.post(
    "/apps/{app_id}/push/{mapping_id}/unlink", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def unlink(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, mapping_id: str
) -> Response:
    delete_target = form.get("delete_target") == "true"
    with db_of(request).transaction() as session:
        grouppush.delete_mapping(
            session, admin.actor, app_id, mapping_id, delete_target=delete_target
        )
    session_of(request).flash("ok", "Mapping unlinked.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.post("/apps/{app_id}/push-rules", dependencies=[allow(P.APPS_WRITE, "app_id")])
def create_rule(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    spec = push_rules.RuleSpec(
        name=form.get("rule_name"), match=form.get("match"), value=form.get("value")
    )
    with db_of(request).transaction() as session:
        push_rules.create_rule(session, admin.actor, app_id, spec)
    session_of(request).flash("ok", f"Rule {spec.name} created; matching groups are pushed.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.post(
    "/apps/{app_id}/push-rules/{rule_id}/delete", dependencies=[allow(P.APPS_WRITE, "app_id")]
)
def delete_rule(
    request: Request, admin: AdminDep, form: FormDep, app_id: str, rule_id: str
) -> Response:
    delete_mappings = form.checked("delete_mappings")
    with db_of(request).transaction() as session:
        push_rules.delete_rule(
            session, admin.actor, app_id, rule_id, delete_mappings=delete_mappings
        )
    session_of(request).flash("ok", "Rule deleted.")
    return see_other(f"{PREFIX}/apps/{app_id}/push")


@router.post("/apps/{app_id}/orphans/remove", dependencies=[allow(P.APPS_WRITE, "app_id")])
async def remove_orphans(request: Request, admin: AdminDep, form: FormDep, app_id: str) -> Response:
    """Members of pushed groups that Headwater does not manage, removed on request only."""
    mapping_id = form.get("mapping_id") or None
    runtime = runtime_of(request)
    result = await orphans.remove_orphans(
        runtime.database, runtime.connectors, admin.actor, app_id, mapping_id=mapping_id
    )
    session = session_of(request)
    session.flash("ok", f"{result['removed']} unknown member(s) removed.")
    for error in result["errors"]:
        session.flash("error", f"Mapping {error['mappingId']}: {error['errorSummary']}")
    return see_other(f"{PREFIX}/apps/{app_id}/push")
