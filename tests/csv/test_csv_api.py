"""CSV imports over the API: ``POST /api/v1/imports/users`` and ``/imports/groups`` take the file
as a ``text/csv`` body and answer the import's summary; bad options, bodies and roles are
Okta's errors and write nothing."""

from __future__ import annotations

from pathlib import Path

from headwater.runtime import Runtime
from headwater.testing.toolkit import (
    api_client,
    api_token,
    assert_okta_error,
    create_group,
    create_users,
    events,
    members,
    row_counts,
)
from headwater.testing.toolkit import create_app as create_bookmark_app

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
CSV = {"Content-Type": "text/csv"}
PEOPLE = (
    "login,email,firstName,lastName,groups,startYear:integer\n"
    "ann@example.com,ann@example.com,Ann,Lee,Engineering,2020\n"
    "bob@example.com,bob@example.com,Bob,Ray,Nowhere,2021\n"
    "cy@example.com,cy@example.com,Cy,Ng,,next year\n"
)


def test_a_file_posted_as_text_csv_is_imported_with_its_summary(runtime: Runtime) -> None:
    engineering = create_group(runtime, "Engineering")
    with api_client(runtime) as client:
        dry = client.post("/api/v1/imports/users?dryRun=true", content=PEOPLE, headers=CSV)
        assert dry.status_code == 200, dry.text
        assert dry.json()["dryRun"] is True and dry.json()["created"] == 1
        assert members(runtime, engineering) == set()
        response = client.post(
            "/api/v1/imports/users?source=HR&match=email", content=PEOPLE, headers=CSV
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["updated"], body["rejected"], body["held"]) == (1, 0, 2, 0)
    assert [(r["line"], r["key"]) for r in body["rejections"]] == [
        (3, "bob@example.com"),
        (4, "cy@example.com"),
    ]
    assert "unknown group 'Nowhere'" in body["rejections"][0]["reason"]
    assert "not an integer" in body["rejections"][1]["reason"]
    assert len(members(runtime, engineering)) == 1
    created = events(runtime, "user.lifecycle.create")
    assert [event.actor["displayName"] for event in created] == ["HR"]


def test_mass_deactivations_are_held_until_posted_again_with_confirm(runtime: Runtime) -> None:
    create_users(runtime, 12, prefix="p", digits=2)
    rows = [f"p{n:02d}@example.com,DEPROVISIONED" for n in range(11)]
    data = "\n".join(["login,status", *rows]) + "\n"
    with api_client(runtime) as client:
        held = client.post("/api/v1/imports/users", content=data, headers=CSV)
        assert held.status_code == 200, held.text
        body = held.json()
        assert (body["held"], body["updated"]) == (11, 0)
        assert "confirm=true" in body["heldReason"]
        assert [row["line"] for row in body["heldRows"]] == list(range(2, 13))
        assert events(runtime, "user.lifecycle.deactivate") == []
        confirmed = client.post("/api/v1/imports/users?confirm=true", content=data, headers=CSV)
    assert (confirmed.json()["held"], confirmed.json()["updated"]) == (0, 11)
    assert len(events(runtime, "user.lifecycle.deactivate")) == 11


def test_groups_are_imported_from_the_example_file(runtime: Runtime) -> None:
    data = (EXAMPLES / "groups.csv").read_bytes()
    with api_client(runtime) as client:
        first = client.post("/api/v1/imports/groups", content=data, headers=CSV)
        again = client.post("/api/v1/imports/groups", content=data, headers=CSV)
    assert first.status_code == 200, first.text
    assert first.json()["created"] > 0 and first.json()["rejected"] == 0
    assert again.json()["unchanged"] == first.json()["created"]


def test_bad_options_bodies_and_headers_are_okta_errors_that_write_nothing(
    runtime: Runtime,
) -> None:
    create_group(runtime, "Engineering")
    with api_client(runtime) as client:
        before = row_counts(runtime)
        url = "/api/v1/imports/users"
        cases = [
            (client.post(url + "?match=nickName", content=PEOPLE, headers=CSV), "match"),
            (client.post(url + "?dryRun=maybe", content=PEOPLE, headers=CSV), "dryRun"),
            (client.post(url + "?confirm=2", content=PEOPLE, headers=CSV), "confirm"),
            (client.post(url + "?source=" + "x" * 101, content=PEOPLE, headers=CSV), "source"),
            (client.post(url, json={"login": "ann"}), "Content-Type"),
            (client.post(url, content=b"", headers=CSV), "body"),
            (client.post(url, content=b"nick,name\nx,y\n", headers=CSV), "header"),
            (client.post(url, content=b"\xff\xfe,\n", headers=CSV), "header"),
        ]
        for response, cause in cases:
            assert_okta_error(response, 400, "E0000001", cause)
        groups = client.post("/api/v1/imports/groups", content=b"title\nx\n", headers=CSV)
        assert_okta_error(groups, 400, "E0000001", "name")
    # Refused requests write nothing at all (not even an import event).
    assert row_counts(runtime) == before


def test_a_body_over_the_bound_is_refused(tmp_path: Path, sqlite_runtime: Runtime) -> None:
    bound = sqlite_runtime.settings.max_body_bytes
    line = "p{:07d}@example.com,p{:07d}@example.com,First,Last\n"
    rows = ["login,email,firstName,lastName\n"]
    rows += [line.format(n, n) for n in range(bound // len(line.format(0, 0)) + 10)]
    data = "".join(rows).encode()
    assert len(data) > bound
    with api_client(sqlite_runtime) as client:
        response = client.post("/api/v1/imports/users", content=data, headers=CSV)
    assert response.status_code == 413, response.text
    assert set(response.json()) == {
        "errorCode",
        "errorSummary",
        "errorLink",
        "errorId",
        "errorCauses",
    }
    assert row_counts(sqlite_runtime)["users"] == 0


def test_only_roles_that_write_people_or_groups_may_import(runtime: Runtime) -> None:
    group = create_group(runtime, "Engineering")
    app = create_bookmark_app(runtime, "Wiki")
    scopes = {
        "READ_ONLY_ADMIN": ([], []),
        "APP_ADMIN": ([app], []),
        "GROUP_MEMBERSHIP_ADMIN": ([], [group]),
    }
    for role, (apps, groups) in scopes.items():
        token = api_token(runtime, f"{role.lower()}-token", role=role, apps=apps, groups=groups)
        with api_client(runtime, token) as client:
            for kind in ("users", "groups"):
                response = client.post(f"/api/v1/imports/{kind}", content=PEOPLE, headers=CSV)
                assert_okta_error(response, 403, "E0000006")
    assert row_counts(runtime)["users"] == 0
