"""The console shows how an app is spoken to, says when drift repair is unavailable, and saves
only what the settings form changed (a profile's switches shown at their values stay the
profile's)."""

from __future__ import annotations

import re

from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import apps
from headwater.testing.toolkit import (
    InProcessScim,
    console_client,
    console_csrf,
    console_sign_in,
    create_admin,
    create_scim_app,
)


def _form(page: str) -> dict[str, str]:
    """The settings form as a browser would submit it (checked boxes only)."""
    form = page.split('/settings">', 1)[1].split("</form>", 1)[0]
    values: dict[str, str] = {}
    for name, kind, rest in re.findall(
        r'<input id="set-[^"]+" name="([^"]+)" type="([a-z]+)"([^>]*)>', form
    ):
        if kind == "checkbox":
            if " checked" in rest:
                values[name] = "on"
        else:
            found = re.search(r'value="([^"]*)"', rest)
            values[name] = found[1] if found else ""
    for name, options in re.findall(r'<select id="set-[^"]+" name="([^"]+)">(.*?)</select>', form):
        values[name] = re.findall(r"<option selected>([^<]+)</option>", options)[0]
    return values


def test_the_general_tab_shows_the_dialect_and_unavailable_drift_repair(
    sqlite_runtime: Runtime,
) -> None:
    runtime = sqlite_runtime
    downstream = InProcessScim().serve(runtime)
    app_id = create_scim_app(runtime, downstream.base_url, dialect="aws-identity-center")
    create_admin(runtime)
    with console_client(create_app(runtime, start_worker=False)) as client:
        assert console_sign_in(client).status_code == 303
        page = client.get(f"/console/apps/{app_id}").text
        assert "<code>aws-identity-center</code>" in page
        # Members hidden, but each linked account can be checked by the member filter.
        assert 'id="drift-repair-unavailable"' not in page
        assert "<dd>group-filter</dd>" in page
        assert "Not read yet" not in page  # the connection test read ServiceProviderConfig

        provisioning = client.get(f"/console/apps/{app_id}/provisioning").text
        data = _form(provisioning)
        assert data["dialect"] == "aws-identity-center"
        data["csrf_token"] = console_csrf(client, f"/console/apps/{app_id}/provisioning")
        assert client.post(f"/console/apps/{app_id}/settings", data=data).status_code == 303
        with runtime.database.read() as session:
            kept = apps.settings_of(apps.get_app(session, app_id))
        assert kept.dialect == "aws-identity-center"

        data["member_removal"] = "value-list"
        data["member_check"] = "none"
        assert client.post(f"/console/apps/{app_id}/settings", data=data).status_code == 303
        with runtime.database.read() as session:
            changed = apps.settings_of(apps.get_app(session, app_id))
        assert changed.dialect == "custom" and changed.member_removal == "value-list"
        assert changed.member_check == "none"
        assert changed.group_members_returned is False  # the rest of the profile stays
        page = client.get(f"/console/apps/{app_id}").text
        assert "<code>custom</code>" in page and 'id="drift-repair-unavailable"' in page
