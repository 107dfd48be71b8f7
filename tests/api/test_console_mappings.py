"""The console's Mappings tab: the mapping, a preview for one person with the typed change,
saving it (exact keys queued), a refused expression, and roles."""

from __future__ import annotations

from headwater.db import tables as t
from headwater.runtime import Runtime
from headwater.server import create_app as create_server
from headwater.services.access import DENIED_EVENT
from headwater.testing.toolkit import (
    assign_group,
    clear_keys,
    console_client,
    console_csrf,
    console_sign_in,
    create_admin,
    create_app,
    create_group,
    create_user,
    event_types,
    queued_subjects,
)

TITLE = 'user.department == "Engineering" ? "Builder" : user.title'


def test_preview_and_save(runtime: Runtime) -> None:
    eng = create_user(runtime, "eng@example.com", department="Engineering", title="Clerk")
    sales = create_user(runtime, "sales@example.com", department="Sales", title="Clerk")
    app_id = create_app(runtime, "Wiki")
    assign_group(runtime, app_id, create_group(runtime, "Staff", [eng, sales]))
    clear_keys(runtime)
    create_admin(runtime)
    page = f"/console/apps/{app_id}/mappings"
    with console_client(create_server(runtime, start_worker=False)) as client:
        assert console_sign_in(client).status_code == 303
        shown = client.get(page)
        assert shown.status_code == 200 and "user.firstName" in shown.text
        query = {"attribute": "title", "expression": TITLE, "user": "eng@example.com"}
        previewed = client.get(page, params=query)
        assert "Builder" in previewed.text and "Clerk" in previewed.text
        unchanged = client.get(page, params={**query, "user": "sales@example.com"})
        assert "No change for this person." in unchanged.text
        typo = client.get(page, params={**query, "expression": "String.toLower(user.title)"})
        assert "did you mean String.toLowerCase" in typo.text
        missing = client.get(page, params={**query, "user": "nobody@example.com"})
        assert "no person with the id or login" in missing.text

        csrf = console_csrf(client, page)
        form = {"csrf_token": csrf, "attribute": "title", "expression": TITLE}
        saved = client.post(page, data={**form, "push_status": "PUSH"})
        assert saved.status_code == 303
        assert queued_subjects(runtime, app_id) == {eng}
        after = client.get(page)
        assert "1 account(s) queued for update" in after.text and TITLE.replace('"', "&#34;") in (
            after.text
        )
        refused = client.post(page, data={**form, "expression": "user.title +"})
        assert refused.status_code == 303
        assert "column" in client.get(page).text


def test_a_read_only_admin_sees_but_cannot_save(runtime: Runtime) -> None:
    app_id = create_app(runtime, "Wiki")
    create_admin(runtime, "auditor", "correct-horse-battery", role="READ_ONLY_ADMIN")
    page = f"/console/apps/{app_id}/mappings"
    with console_client(create_server(runtime, start_worker=False)) as client:
        assert console_sign_in(client, "auditor", "correct-horse-battery").status_code == 303
        assert client.get(page).status_code == 200
        csrf = console_csrf(client, page)
        body = {"csrf_token": csrf, "attribute": "title", "expression": TITLE}
        assert client.post(page, data=body).status_code == 303  # refused, back with a message
        assert "permission" in client.get(page).text
    assert DENIED_EVENT in event_types(runtime)
    with runtime.database.read() as session:
        assert session.get(t.App, app_id).attribute_mapping is None  # type: ignore[union-attr]
