"""Schemathesis over every operation of ``/openapi.json``: whatever a client sends, valid or
not, the answer is never a 5xx and every error is Okta's JSON error object.

Each operation gets two bounded Hypothesis runs: positive and negative data, half the time made
hostile; then (half as many) valid requests at real ids, always made hostile, to reach the code
that stores. Hostile: every string of the body tainted with a lone surrogate or a NUL, or one
hostile value put into it (deep nesting, many keys, a huge number...), or a NUL in a query
parameter. Path ids are real objects: seeded users, groups, apps (with a connection,
assignments, a push mapping, a push rule and a task), spare API tokens, and whatever the run
itself creates. After each operation, the lists and objects of every known app and user must
still answer: what one operation stored must not break a later read. Deletions come last,
deepest first, and revoking the caller's own token last of all. No request leaves the machine:
the outbound policy denies every address and names resolve to nothing.

``HEADWATER_FUZZ_EXAMPLES`` sets the examples per operation on SQLite (PostgreSQL gets a third
of them); ``HEADWATER_FUZZ_RANDOM=1`` draws new examples on every run instead of the same ones.
The longer run is documented in docs/security.md ("Hostile input").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from headwater.db.events import SYSTEM
from headwater.domain.settings import ProvisioningSettings
from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.services import csv_import, push_rules, sources, tokens
from headwater.testing.toolkit import (
    StubResolver,
    api_token,
    assign_group,
    assign_user,
    create_group,
    create_scim_app,
    create_user,
    make_runtime,
    push_group,
    record_import,
    record_task,
)
from headwater.testing.toolkit import create_app as create_bookmark_app

EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "15"))
RANDOM = os.environ.get("HEADWATER_FUZZ_RANDOM") == "1"
#: Ids the run creates are kept for later operations, by the prefix that tells their kind.
HARVESTED = {
    "0oa": "app_id",
    "00g": "group_id",
    "00u": "user_id",
    "gPm": "mapping_id",
    "gpr": "rule_id",
    "0sr": "source_id",
}
MAX_SEEDS = 12
#: Reads of an app checked after each operation's run.
APP_READS = (
    "",
    "/groups?limit=200",
    "/users?limit=500",
    "/group-push/mappings",
    "/group-push/rules",
    "/tasks",
    "/provisioning/settings",
    "/features",
    "/imports",
    "/unmanagedAccounts",
)
OKTA_ERROR = {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}

Seeds = dict[str, list[str]]


@pytest.fixture
def isolated(any_db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose downstream requests reach nothing: every address is denied and every
    name is unknown, whatever URL the fuzz stores."""
    runtime = make_runtime(any_db_url, tmp_path, outbound_deny="0.0.0.0/0,::/0")
    runtime.connectors.resolver = StubResolver({})
    yield runtime
    runtime.close()


def _seed(runtime: Runtime) -> Seeds:
    """Real ids for every kind of path parameter (a login also works as a user id)."""
    users = [create_user(runtime, f"seed{i}@example.com") for i in range(3)]
    staged = create_user(runtime, "staged@example.com", activate=False)
    groups = [create_group(runtime, "Seed0", users[:2]), create_group(runtime, "Seed1")]
    scim = create_scim_app(runtime, "http://127.0.0.1:9/scim/v2", "Seeded", enabled=False)
    bookmark = create_bookmark_app(runtime, "Bookmark", activate=False)
    assign_group(runtime, scim, groups[0], profile={"role": "staff"})
    assign_user(runtime, scim, users[2], profile={"role": "lead"})
    mapping = push_group(runtime, scim, groups[1])
    with runtime.database.transaction() as session:
        rule = push_rules.create_rule(
            session, SYSTEM, scim, push_rules.RuleSpec("Seed rule", "STARTS_WITH", "Seed")
        ).id
    tasks = [
        record_task(runtime, scim, "user", users[2]),
        record_task(runtime, scim, "push", mapping),
    ]
    imported = [record_import(runtime, scim, f"stray{i}") for i in range(2)]
    for i in range(2):
        api_token(runtime, f"spare{i}")
    with runtime.database.read() as session:
        token_ids = [row.id for row in tokens.list_tokens(session) if row.name.startswith("spare")]
    with runtime.database.transaction() as session:
        source = sources.create_source(session, SYSTEM, "Seed source")
        source_token, _ = sources.issue_token(session, SYSTEM, source.id)
        source_ids, token_ids = [source.id], [*token_ids, source_token.id]
    for i in range(2):
        create_user(runtime, f"held{i}@example.com")
    leaving = b"login,status\nheld0@example.com,DEPROVISIONED\nheld1@example.com,DEPROVISIONED\n"
    guard = ProvisioningSettings(mass_change_threshold=0.01, mass_change_minimum=1)
    held = csv_import.import_users(
        runtime.database, SYSTEM, leaving, csv_import.Options(guard=guard)
    ).held_rows
    return {
        "hold_id": [item.id for item in held if item.id],
        "user_id": [*users, staged, "seed1@example.com"],
        "group_id": groups,
        "app_id": [scim, bookmark],
        "mapping_id": [mapping],
        "rule_id": [rule],
        "task_id": tasks,
        "token_id": token_ids,
        "source_id": source_ids,
        "name": ["USER_PROVISIONING"],
        "import_id": [run for run, _ in imported],
        "account_id": [account for _, account in imported],
    }


def _order(operation: Any) -> tuple[int, int]:
    """Reads and writes first; then deletions, deepest path first; the caller's own token
    last of all (revoking it ends the run's authority)."""
    if operation.path.endswith("/api-tokens/current"):
        return (2, 0)
    if operation.method.upper() == "DELETE":
        return (1, -operation.path.count("/"))
    return (0, 0)


def _content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")
    return str(value[0] if isinstance(value, list) else value)


def _harvest(response: Any, seeds: Seeds) -> None:
    """Remember the id of what a successful request created."""
    if response.status_code not in (200, 201) or _content_type(response) != "application/json":
        return
    body = response.json()
    found = body.get("id") if isinstance(body, dict) else None
    if not isinstance(found, str) or found[:3] not in HARVESTED:
        return
    known = seeds[HARVESTED[found[:3]]]
    if found not in known and len(known) < MAX_SEEDS:
        known.append(found)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: Values a schema does not produce but a hostile client sends: text no database stores, JSON
#: nested deeper than anything can render, too many keys, numbers no double holds.
HOSTILE: list[Any] = [
    "\ud800",
    "x\udfffy",
    "a\x00b",
    {"\udc00": 1},
    _nested(300),
    _nested(20),
    {f"k{i}": i for i in range(1100)},
    2**80,
    "x" * 70_000,
]


def _objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object inside ``value`` (``value`` included), breadth first."""
    found, pending = [], [value]
    while pending:
        node = pending.pop(0)
        if isinstance(node, dict):
            found.append(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _tainted(value: Any, bad: str) -> Any:
    """``value`` with ``bad`` added to every string in it and every null made an object holding
    it: whichever field a route stores, it gets text no database stores."""
    if isinstance(value, str):
        return value + bad
    if value is None:
        return {"x": bad}
    if isinstance(value, dict):
        return {key: _tainted(item, bad) for key, item in value.items()}
    if isinstance(value, list):
        return [_tainted(item, bad) for item in value]
    return value


def _make_hostile(case: Any, data: Any) -> None:
    """Taint every string of the body, or put one hostile value somewhere in it (the body is
    sent as raw JSON bytes, since no encoder writes a lone surrogate); with no body, put a NUL
    in a query parameter."""
    objects = _objects(case.body) if not isinstance(case.body, bytes) else []
    if objects and data.draw(st.booleans()):
        case.body = _tainted(case.body, data.draw(st.sampled_from(["\ud800", "\x00"])))
    elif objects:
        target = data.draw(st.sampled_from(objects))
        key = data.draw(st.sampled_from([*target, "hostile"]))
        value = data.draw(st.sampled_from(HOSTILE))
        # Wrapped, it reaches a field that takes an object (a profile left null, say).
        target[key] = {"x": value} if data.draw(st.booleans()) else value
    elif case.query:
        case.query[data.draw(st.sampled_from(sorted(case.query)))] = "a\x00b"
    if objects:
        case.body = json.dumps(case.body).encode()


def _check(case: Any, data: Any, session: Any, token: str, seeds: Seeds, *, hostile: bool) -> None:
    """Send ``case``: with ``hostile``, at real ids and made hostile; else half the time at real
    ids (all of them: a nested resource needs every one) and half the time made hostile."""
    if case.path_parameters and (hostile or data.draw(st.booleans())):
        for name in case.path_parameters:
            if name in seeds:
                case.path_parameters[name] = data.draw(st.sampled_from(seeds[name]))
    if hostile or data.draw(st.booleans()):
        _make_hostile(case, data)
    response = case.call(session=session, headers={"Authorization": f"SSWS {token}"})
    assert response.status_code < 500, (case.as_curl_command(), response.text[:2000])
    if response.status_code >= 400:
        assert _content_type(response).startswith("application/json"), response.text[:2000]
        assert set(response.json()) == OKTA_ERROR, response.text[:2000]
    _harvest(response, seeds)


@pytest.mark.slow
def test_no_server_errors(isolated: Runtime, subtests: pytest.Subtests) -> None:
    runtime = isolated
    seeds = _seed(runtime)
    token = api_token(runtime, "fuzz")
    examples = EXAMPLES if runtime.database.is_sqlite else -(-EXAMPLES // 3)
    app = create_app(runtime, start_worker=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = sorted(
        # Every operation of our own schema loads (an Err would fail the test right here).
        (result.ok() for result in schema.get_all_operations()),  # type: ignore[union-attr]
        key=_order,
    )
    assert len(operations) >= 70
    with asgi.get_client(app) as session:  # type: ignore[arg-type]  # FastAPI is an ASGI app
        for operation in operations:
            with subtests.test(msg=operation.label):
                _fuzz(operation, session, token, seeds, examples, hostile=False)
                _fuzz(operation, session, token, seeds, -(-examples // 2), hostile=True)
                _reads_still_answer(session, token, seeds)


def _fuzz(
    operation: Any, session: Any, token: str, seeds: Seeds, examples: int, *, hostile: bool
) -> None:
    """One bounded Hypothesis run for one operation: valid and invalid requests, or (with
    ``hostile``) valid requests at real ids made hostile, to reach the code that stores."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    cases = (
        positive if hostile else st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))
    )

    @given(case=cases, data=st.data())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: Any) -> None:
        _check(case, data, session, token, seeds, hostile=hostile)

    run()


def _reads_still_answer(session: Any, token: str, seeds: Seeds) -> None:
    """What the operation stored must not break a later read: the lists and objects of every
    app (seeded or created) answer without a server error."""
    paths = ["/apps", "/users?limit=200", "/groups?limit=200", "/logs?limit=200"]
    for app_id in seeds["app_id"]:
        paths += [f"/apps/{app_id}{suffix}" for suffix in APP_READS]
    for user_id in seeds["user_id"]:
        paths += [f"/users/{user_id}", f"/users/{user_id}/appLinks"]
    for path in paths:
        response = session.get(
            f"http://testserver/api/v1{path}", headers={"Authorization": f"SSWS {token}"}
        )
        assert response.status_code < 500, (path, response.text[:2000])
