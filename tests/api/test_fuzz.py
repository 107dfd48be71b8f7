"""Schemathesis over the user and group operations of ``/openapi.json``: whatever a client
sends, valid or not, the answer is never a 5xx and every error is Okta's JSON error object.

Each operation gets its own bounded Hypothesis run (positive and negative data). Path ids are
drawn from real users and groups half the time, so lifecycle calls, membership edits and
updates reach the code behind the 404.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from headwater.runtime import Runtime
from headwater.server import create_app
from headwater.testing.toolkit import create_group, create_user

EXAMPLES = 25
FUZZED = r"^/api/v1/(users|groups)"


@pytest.fixture
def seeded(runtime: Runtime) -> dict[str, list[str]]:
    """A few real ids for path parameters (and a login, which also works as a user id)."""
    users = [create_user(runtime, f"seed{i}@example.com") for i in range(2)]
    groups = [create_group(runtime, "Seed0", [users[0]]), create_group(runtime, "Seed1")]
    return {"user_id": [*users, "seed1@example.com"], "group_id": groups}


def _check(case: Any, data: Any, session: Any, token: str, seeded: dict[str, list[str]]) -> None:
    for name, real in seeded.items():
        if name in (case.path_parameters or {}) and data.draw(st.booleans()):
            case.path_parameters[name] = data.draw(st.sampled_from(real))
    response = case.call(session=session, headers={"Authorization": f"SSWS {token}"})
    assert response.status_code < 500, (case.as_curl_command(), response.text)
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), response.text
        assert "errorCode" in response.json()


def test_no_server_errors(
    runtime: Runtime, api_token: str, seeded: dict[str, list[str]], subtests: pytest.Subtests
) -> None:
    app = create_app(runtime, start_worker=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex=FUZZED)
    # Deletions last, so the seeded users and groups serve the other operations first.
    operations = sorted(
        # Every operation of our own schema loads (an Err would fail the test right here).
        (result.ok() for result in schema.get_all_operations()),  # type: ignore[union-attr]
        key=lambda operation: operation.method.upper() == "DELETE",
    )
    assert len(operations) >= 20
    with asgi.get_client(app) as session:  # type: ignore[arg-type]  # FastAPI is an ASGI app
        for operation in operations:
            _fuzz(operation, session, api_token, seeded, subtests)


def _fuzz(
    operation: Any,
    session: Any,
    api_token: str,
    seeded: dict[str, list[str]],
    subtests: pytest.Subtests,
) -> None:
    """One bounded Hypothesis run of valid and invalid requests for one operation."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases, data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: Any) -> None:
        _check(case, data, session, api_token, seeded)

    with subtests.test(msg=operation.label):
        run()
