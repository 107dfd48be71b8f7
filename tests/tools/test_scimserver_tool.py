"""The real SCIM downstream: subprocess under uvicorn, package CLI, and in-process ASGI app."""

from __future__ import annotations

import socket

import httpx
import pytest

from headwater.testing.scimserver import ScimServerProcess, free_port, in_process_app
from headwater.testing.toolkit import SCIM_HEADERS, scim_user, unique


def test_subprocess_serves_scim(
    scim_server: ScimServerProcess, server_client: httpx.Client
) -> None:
    assert scim_server.running
    assert scim_server.base_url == f"http://127.0.0.1:{scim_server.port}/v2"
    config = server_client.get("/ServiceProviderConfig")
    assert config.status_code == 200
    assert config.json()["patch"]["supported"] is True

    name = unique("alice")
    created = server_client.post("/Users", json=scim_user(name))
    assert created.status_code == 201
    assert created.headers["location"].startswith(scim_server.base_url)
    found = server_client.get("/Users", params={"filter": f'userName eq "{name}"'})
    assert found.json()["totalResults"] == 1
    # Duplicates are refused by the real server, which is what idempotency tests rely on.
    assert server_client.post("/Users", json=scim_user(name)).status_code == 409


def test_subprocess_keeps_connections_alive(
    scim_server: ScimServerProcess, server_client: httpx.Client
) -> None:
    peers = set()
    for _ in range(3):
        response = server_client.get("/ServiceProviderConfig")
        stream = response.extensions["network_stream"]
        peers.add(stream.get_extra_info("client_addr"))
    assert len(peers) == 1


@pytest.mark.parametrize("backend", ["uvicorn", "cli"])
def test_bearer_token_and_stop(backend: str) -> None:
    server = ScimServerProcess(bearer_token="s3cret", backend=backend)  # type: ignore[arg-type]
    with server:
        url = f"{server.base_url}/Users"
        refused = httpx.get(url)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].lower().startswith("bearer")
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # The discovery endpoint needs no credentials (RFC 7643 section 5).
        assert httpx.get(f"{server.base_url}/ServiceProviderConfig").status_code == 200
        pid = server.pid
    assert pid is not None
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=1)


def test_start_failure_reports_child_output() -> None:
    server = ScimServerProcess(extra_args=["--no-such-option"])
    with pytest.raises(RuntimeError, match="unrecognized arguments: --no-such-option"):
        server.start()
    assert not server.running


def test_package_reexports() -> None:
    import headwater.testing as tools

    assert tools.ScimServerProcess is ScimServerProcess
    assert set(tools.__all__) >= {"FaultProxy", "FaultProxyThread", "in_process_app"}
    with pytest.raises(AttributeError):
        _ = tools.nothing_here


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_in_process_app_with_asgi_transport() -> None:
    app = in_process_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://scim.test/v2", headers=SCIM_HEADERS
    ) as client:
        created = await client.post("/Users", json=scim_user("bob"))
        assert created.status_code == 201
        user_id = created.json()["id"]
        fetched = await client.get(f"/Users/{user_id}")
        assert fetched.json()["userName"] == "bob"
    assert [r.id for r in app.storage.resources] == [user_id]

    # Every call returns a fresh, empty server.
    transport = httpx.ASGITransport(app=in_process_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://scim.test/v2") as client:
        assert (await client.get("/Users")).json()["totalResults"] == 0


async def test_in_process_app_bearer_token() -> None:
    transport = httpx.ASGITransport(app=in_process_app(bearer_token="tok"))
    async with httpx.AsyncClient(transport=transport, base_url="http://scim.test/v2") as client:
        assert (await client.get("/Users")).status_code == 401
        ok = await client.get("/Users", headers={"Authorization": "Bearer tok"})
        assert ok.status_code == 200
