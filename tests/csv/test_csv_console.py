"""The console's import page: upload, preview (first rows and a dry run), import; CSRF and
roles are checked like every other console form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import csv_import
from headwater.services.access import DENIED_EVENT
from headwater.testing.toolkit import (
    console_client,
    console_csrf,
    console_sign_in,
    create_admin,
    create_group,
    create_users,
    events,
    members,
    row_counts,
)

PASSWORD = "correct-horse-battery"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def app(sqlite_runtime: Runtime) -> FastAPI:
    create_admin(sqlite_runtime, "root", PASSWORD)
    create_admin(sqlite_runtime, "auditor", PASSWORD, role="READ_ONLY_ADMIN")
    return create_app(sqlite_runtime, start_worker=False)


def upload(client: TestClient, data: bytes, **fields: str) -> object:
    csrf = console_csrf(client, "/console/import")
    return client.post(
        "/console/import/preview",
        data={"csrf_token": csrf, "match": "login", "source": "HR", **fields},
        files={"file": ("people.csv", data, "text/csv")},
    )


def test_upload_preview_then_import(app: FastAPI, sqlite_runtime: Runtime) -> None:
    everyone = create_group(sqlite_runtime, "Everyone")
    for name in ("Engineering", "Finance"):
        create_group(sqlite_runtime, name)
    data = (EXAMPLES / "users.csv").read_bytes() + b"bad@example.com,bad@example.com,B,D,,,,,x,,\n"
    with console_client(app) as client:
        assert console_sign_in(client, "root", PASSWORD).status_code == 303
        page = client.get("/console/import")
        assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
        before = row_counts(sqlite_runtime)
        preview = upload(client, data)
        assert preview.status_code == 200, preview.text[:500]  # type: ignore[attr-defined]
        text = preview.text  # type: ignore[attr-defined]
        assert row_counts(sqlite_runtime) == before  # a preview writes nothing
        assert "ada.lovelace@example.com" in text and "Dry run: 5 rows" in text
        assert "startYear: &#39;x&#39; is not an integer" in text
        found = re.search(r'name="upload" value="([^"]+)"', text)
        assert found
        done = client.post(
            "/console/import",
            data={
                "csrf_token": console_csrf(client, "/console/import"),
                "upload": found[1],
                "match": "login",
                "source": "HR",
            },
        )
        assert done.status_code == 200, done.text[:500]
        assert "<caption>5 rows</caption>" in done.text
        assert len(members(sqlite_runtime, everyone)) == 4
        # The upload is gone once imported.
        again = client.post(
            "/console/import",
            data={"csrf_token": console_csrf(client, "/console/import"), "upload": found[1]},
            headers={"referer": "http://testserver/console/import"},
        )
        assert again.status_code == 303
        assert "expired" in client.get("/console/import").text
    assert events(sqlite_runtime, "user.lifecycle.create")[0].actor["displayName"] == "HR"


def test_without_the_csrf_token_nothing_is_read(app: FastAPI) -> None:
    with console_client(app) as client:
        console_sign_in(client, "root", PASSWORD)
        refused = client.post(
            "/console/import/preview", files={"file": ("p.csv", b"login\nx@y.zz\n", "text/csv")}
        )
        assert refused.status_code == 403


def test_a_read_only_admin_cannot_import(app: FastAPI, sqlite_runtime: Runtime) -> None:
    with console_client(app) as client:
        console_sign_in(client, "auditor", PASSWORD)
        assert ">Import<" not in client.get("/console/people").text
        before = row_counts(sqlite_runtime)
        refused = upload(client, (EXAMPLES / "users.csv").read_bytes())
        assert refused.status_code == 303  # type: ignore[attr-defined]
        assert row_counts(sqlite_runtime)["users"] == before["users"]
    assert [e.debug["permission"] for e in events(sqlite_runtime, DENIED_EVENT)] == ["users.write"]


def test_a_bad_header_is_shown_on_the_form(app: FastAPI) -> None:
    with console_client(app) as client:
        console_sign_in(client, "root", PASSWORD)
        refused = upload(client, b"email,nickname\nx@y.zz,X\n")
        assert refused.status_code == 400  # type: ignore[attr-defined]
        assert "the match key column" in refused.text  # type: ignore[attr-defined]


def test_held_rows_are_listed_and_decided_on_the_import_page(
    app: FastAPI, sqlite_runtime: Runtime
) -> None:
    create_users(sqlite_runtime, 12, prefix="p", digits=1, start=1)
    rows = [f"p{n}@example.com,DEPROVISIONED" for n in range(1, 12)]
    data = ("\n".join(["login,status", *rows]) + "\n").encode()
    summary = csv_import.import_users(sqlite_runtime.database, SYSTEM, data)
    first, second, third = (item.id for item in summary.held_rows[:3])
    with console_client(app) as client:
        console_sign_in(client, "auditor", PASSWORD)
        page = client.get("/console/import")
        assert page.status_code == 200 and f'id="hold-{first}"' in page.text
        csrf = console_csrf(client, "/console/import")
        refused = client.post(f"/console/import/holds/{first}/approve", data={"csrf_token": csrf})
        assert refused.status_code == 303
        client.post("/console/logout", data={"csrf_token": csrf})
        console_sign_in(client, "root", PASSWORD)
        page = client.get("/console/import")
        assert page.text.count('/approve">') == 11
        assert client.post(f"/console/import/holds/{first}/approve").status_code == 403
        csrf = console_csrf(client, "/console/import")
        done = client.post(f"/console/import/holds/{first}/approve", data={"csrf_token": csrf})
        assert done.status_code == 303 and done.headers["location"] == "/console/import"
        page = client.get("/console/import")
        assert "Held row for p1@example.com (line 2) approved and applied." in page.text
        assert f'id="hold-{first}"' not in page.text
        client.post(f"/console/import/holds/{second}/reject", data={"csrf_token": csrf})
        again = client.post(f"/console/import/holds/{first}/reject", data={"csrf_token": csrf})
        assert again.status_code == 303
        assert "already decided: APPROVED" in client.get("/console/import").text
        unknown = client.post(f"/console/import/holds/{third}/maybe", data={"csrf_token": csrf})
        assert unknown.status_code == 303
    with sqlite_runtime.database.read() as session:
        found = dict(session.execute(select(t.User.login, t.User.status)).all())
    assert [found[f"p{n}@example.com"] for n in (1, 2, 3)] == [
        "DEPROVISIONED",
        "PROVISIONED",
        "PROVISIONED",
    ]
    assert [e.debug["permission"] for e in events(sqlite_runtime, DENIED_EVENT)] == ["users.write"]
