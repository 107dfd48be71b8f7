"""The SCIM handlers do their (synchronous) database work in the threadpool, never on the event
loop: a SCIM write held in the middle of its work does not stop another request.

Proof without timing: the write is held in its service function, and only then the other
request is sent; the two meet at a ``threading.Barrier`` of two. Had the write run on the event
loop, the other request could not start until the write returned, the barrier would break, and
both would fail. The barrier's timeout only bounds how
long a broken build takes to fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.inbound.test_inbound_bulk import BULK_REQUEST, person, post_user
from tests.inbound.test_scim_users_groups import hire

from headwater.db import leases
from headwater.services import inbound

#: How long a broken build waits before it fails (the passing path never waits for it).
GIVE_UP = 30


def _meeting(
    barrier: threading.Barrier, original: Callable[..., Any], arrived: threading.Event | None = None
) -> Callable[..., Any]:
    def held(*args: Any, **kwargs: Any) -> Any:
        if arrived is not None:
            arrived.set()
        barrier.wait()
        return original(*args, **kwargs)

    return held


def _write(http: TestClient, kind: str, target: dict[str, Any] | None) -> Any:
    if kind == "create":
        return http.post("Users", json=person("robin.hale@example.com"))
    if kind == "bulk":
        body = {"schemas": [BULK_REQUEST], "Operations": [post_user("r", "robin.hale@example.com")]}
        return http.post("Bulk", json=body)
    assert target is not None
    if kind == "patch":
        patch = {"Operations": [{"op": "replace", "path": "title", "value": "CFO"}]}
        return http.patch(f"Users/{target['id']}", json=patch)
    return http.put(f"Users/{target['id']}", json=person("ann.lee@example.com", title="CFO"))


#: (the write held, the service function it is held in)
WRITES = [
    ("create", "create_user"),
    ("patch", "patch_user"),
    ("put", "replace_user"),
    ("bulk", "create_user"),
]


@pytest.mark.parametrize("other", ["health", "scim read"])
@pytest.mark.parametrize(("kind", "held_in"), WRITES, ids=[w[0] for w in WRITES])
def test_a_held_scim_write_does_not_block_other_requests(
    http: TestClient, monkeypatch: pytest.MonkeyPatch, kind: str, held_in: str, other: str
) -> None:
    target = hire(http, "ann.lee@example.com") if kind in ("patch", "put") else None
    # The token's first use records it (a write); done now, the two requests below only read it.
    assert http.get("ServiceProviderConfig").status_code == 200
    barrier = threading.Barrier(2, timeout=GIVE_UP)
    write_held = threading.Event()
    monkeypatch.setattr(inbound, held_in, _meeting(barrier, getattr(inbound, held_in), write_held))
    if other == "health":
        monkeypatch.setattr(leases, "workers", _meeting(barrier, leases.workers))
    else:
        monkeypatch.setattr(inbound, "list_users", _meeting(barrier, inbound.list_users))
    with ThreadPoolExecutor(2) as pool:
        write = pool.submit(_write, http, kind, target)
        # The other request starts only once the write is held in the middle of its work.
        assert write_held.wait(GIVE_UP)
        if other == "health":
            read = pool.submit(http.get, "http://testserver/health")
        else:
            read = pool.submit(http.get, "Users")
        written, answered = write.result(), read.result()
    assert not barrier.broken
    assert written.status_code in (200, 201), written.text
    if kind == "bulk":
        assert [op["status"] for op in written.json()["Operations"]] == ["201"]
    assert answered.status_code == 200, answered.text
