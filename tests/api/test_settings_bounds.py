"""Every provisioning setting has documented bounds: a value outside them is Okta's 400
naming the setting, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.domain.settings import BOUNDS, public_name
from headwater.runtime import Runtime
from headwater.testing.toolkit import assert_okta_error, create_app, ok

OUT_OF_BOUNDS: list[tuple[str, Any, str]] = [
    ("fullReconcileInterval", 86_400_000_000_000, "at most 31536000"),
    ("fullReconcileInterval", 8.64e13, "an integer"),
    ("fullReconcileInterval", 30, "0 (off) or at least 60"),
    ("fullReconcileInterval", -1, "at least 0"),
    ("maxConcurrency", 257, "at most 256"),
    ("maxConcurrency", 0, "at least 1"),
    ("rateLimitPerSecond", 10_001, "at most 10000"),
    ("rateLimitPerSecond", True, "a number"),
    ("massChangeThreshold", 1.5, "at most 1"),
    ("massChangeMinimum", -1, "at least 0"),
    ("massChangeMinimum", 10**9, "at most 1000000"),
    ("membershipBatchSize", 1001, "at most 1000"),
    ("connectTimeout", 0, "at least 1"),
    ("connectTimeout", 61, "at most 60"),
    ("requestTimeout", 601, "at most 600"),
    ("requestTimeout", "60", "a number"),
    ("userNameTemplate", "${source.login}" + "x" * 1100, "at most 1024 characters"),
]


@pytest.mark.parametrize(("name", "value", "why"), OUT_OF_BOUNDS)
def test_out_of_bounds_is_refused_and_nothing_changes(
    client: TestClient, runtime: Runtime, name: str, value: Any, why: str
) -> None:
    app_id = create_app(runtime)
    url = f"/api/v1/apps/{app_id}/provisioning/settings"
    before = ok(client.get(url))
    response = client.put(url, json={name: value})
    body = assert_okta_error(response, 400, "E0000001", f"{name}: must be")
    assert why in body["errorCauses"][0]["errorSummary"]
    assert ok(client.get(url)) == before


def test_every_numeric_setting_is_bounded_and_the_bounds_are_accepted(
    client: TestClient, runtime: Runtime
) -> None:
    app_id = create_app(runtime)
    url = f"/api/v1/apps/{app_id}/provisioning/settings"
    shown = ok(client.get(url))
    numeric = {
        k for k, v in shown.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    assert numeric == {public_name(name) for name in BOUNDS}
    for name, (low, high) in BOUNDS.items():
        for value in (low, high):
            if name == "full_reconcile_interval" and 0 < value < 60:
                continue
            ok(client.put(url, json={public_name(name): value}))
            assert ok(client.get(url))[public_name(name)] == value
