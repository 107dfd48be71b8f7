"""The fault proxy in front of a real scim2-server, observed by plain httpx clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from headwater.testing.faultproxy import FaultProxy, FaultProxyThread
from headwater.testing.scimserver import ScimServerProcess, free_port
from headwater.testing.toolkit import (
    ERROR_SCHEMA,
    PATCH_SCHEMA,
    SCIM_HEADERS,
    ScimReader,
    scim_group,
    scim_patch_members,
    scim_user,
    unique,
)

TRANSPORT_LOSS = (httpx.ReadError, httpx.RemoteProtocolError)


# -- passthrough ------------------------------------------------------------------------


def test_passthrough_create_and_get(
    proxy: FaultProxyThread, client: httpx.Client, scim: ScimReader
) -> None:
    assert proxy.base_url == f"http://127.0.0.1:{proxy.port}/v2"
    name = unique("pass")
    created = client.post("/Users", json=scim_user(name))
    assert created.status_code == 201
    # The Host header is kept, so the server's URLs point back at the proxy.
    location = created.headers["location"]
    assert location.startswith(proxy.base_url)
    # uvicorn answers chunked; the proxy re-frames with Content-Length.
    assert "transfer-encoding" not in created.headers
    assert int(created.headers["content-length"]) == len(created.content)

    fetched = client.get(location)
    assert fetched.status_code == 200
    assert fetched.json()["userName"] == name
    assert fetched.headers["etag"] == created.headers["etag"]
    assert scim.user(name) is not None

    deleted = client.delete(location)
    assert deleted.status_code == 204
    assert client.get(location).status_code == 404
    # All of it over one kept-alive client connection.
    assert {entry.connection for entry in proxy.requests()} == {1}


def test_passthrough_chunked_request_body(client: httpx.Client, proxy: FaultProxyThread) -> None:
    name = unique("chunked")

    def chunks() -> Iterator[bytes]:
        data = json.dumps(scim_user(name)).encode()
        yield data[:10]
        yield data[10:]

    created = client.post("/Users", content=chunks())
    assert created.status_code == 201
    assert proxy.requests("POST")[0].json()["userName"] == name


def test_upstream_down_answers_502() -> None:
    with FaultProxyThread(f"http://127.0.0.1:{free_port()}/v2") as proxy:
        response = httpx.get(f"{proxy.base_url}/Users", timeout=5)
        assert response.status_code == 502
        (entry,) = proxy.requests()
        assert entry.forwarded and entry.upstream_status is None
        assert entry.error is not None and "unreachable" in entry.error


# -- status faults ----------------------------------------------------------------------


def test_status_answers_without_forwarding(
    proxy: FaultProxyThread, client: httpx.Client, scim: ScimReader
) -> None:
    rule = proxy.status(503, method="POST", path=r"/Users$")
    name = unique("status")
    response = client.post("/Users", json=scim_user(name))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/scim+json"
    error = response.json()
    assert error["schemas"] == [ERROR_SCHEMA]
    assert error["status"] == "503"
    # Rules filter on method and path: reads still pass.
    assert client.get("/Users").status_code == 200
    assert scim.user(name) is None
    assert rule.hits == 1
    (post,) = proxy.requests("POST")
    assert (post.fault, post.forwarded, post.status) == ("status:503", False, 503)


def test_status_custom_body(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.status(500, body="boom", headers={"X-Fault": "yes"})
    response = client.get("/Users")
    assert (response.status_code, response.text, response.headers["x-fault"]) == (
        500,
        "boom",
        "yes",
    )


def test_retry_after_seconds_and_http_date(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.status(429, retry_after=3, times=1)
    when = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    proxy.status(503, retry_after=when, times=1)
    proxy.status(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", times=1)

    first = client.get("/Users")
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    second = client.get("/Users")
    assert second.status_code == 503
    assert email.utils.parsedate_to_datetime(second.headers["retry-after"]) == when
    third = client.get("/Users")
    assert third.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert client.get("/Users").status_code == 200


def test_status_after_upstream_hides_a_success(
    proxy: FaultProxyThread, client: httpx.Client, scim: ScimReader
) -> None:
    proxy.status(500, method="POST", after_upstream=True, times=1)
    name = unique("lost")
    assert client.post("/Users", json=scim_user(name)).status_code == 500
    assert scim.user(name) is not None
    (entry,) = proxy.requests("POST")
    assert entry.forwarded and entry.upstream_status == 201 and entry.status == 500


# -- transport faults -------------------------------------------------------------------


def test_reset_raises_transport_error(
    proxy: FaultProxyThread, client: httpx.Client, scim: ScimReader
) -> None:
    assert client.get("/ServiceProviderConfig").status_code == 200  # a kept-alive connection
    proxy.reset(method="POST", times=1)
    name = unique("reset")
    with pytest.raises(TRANSPORT_LOSS):
        client.post("/Users", json=scim_user(name))
    assert scim.user(name) is None
    # The client recovers on a new connection.
    assert client.post("/Users", json=scim_user(name)).status_code == 201
    reset, retried = proxy.requests("POST")
    assert (reset.fault, reset.forwarded, reset.status) == ("reset", False, None)
    assert retried.connection != reset.connection and retried.upstream_status == 201


def test_reset_after_upstream_creates_then_drops(
    proxy: FaultProxyThread, client: httpx.Client, scim: ScimReader
) -> None:
    proxy.reset(method="POST", after_upstream=True, times=1)
    name = unique("ambiguous")
    with pytest.raises(TRANSPORT_LOSS):
        client.post("/Users", json=scim_user(name))
    assert scim.user(name) is not None
    # A naive retry is the duplicate the request log lets tests catch.
    assert client.post("/Users", json=scim_user(name)).status_code == 409
    forwarded = [e.json()["userName"] for e in proxy.requests("POST", r"/Users$", forwarded=True)]
    assert forwarded == [name, name]


def test_delay_exceeds_client_timeout(proxy: FaultProxyThread) -> None:
    proxy.delay(1.0, path=r"/Users$", times=1)
    with httpx.Client(base_url=proxy.base_url, timeout=0.15) as impatient:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/Users")
        assert time.monotonic() - started < 0.9
        assert impatient.get("/Users").status_code == 200
    assert proxy.requests()[0].fault == "delay:1"


def test_delay_after_upstream_times_out_a_success(
    proxy: FaultProxyThread, scim: ScimReader
) -> None:
    proxy.delay(0.5, method="POST", after_upstream=True, times=1)
    name = unique("slowack")
    with (
        httpx.Client(base_url=proxy.base_url, timeout=0.25) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/Users", json=scim_user(name))
    assert scim.user(name) is not None


def test_short_delay_only_slows(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.delay(0.2, times=1)
    started = time.monotonic()
    assert client.get("/Users").status_code == 200
    assert time.monotonic() - started >= 0.2
    (entry,) = proxy.requests()
    assert entry.forwarded and entry.upstream_status == 200
    assert entry.duration is not None and entry.duration >= 0.2


def test_delayed_requests_wait_together(proxy: FaultProxyThread) -> None:
    """A delay holds each request on its own: 32 delayed requests are all in the proxy at
    once (a far-away app with concurrency 32), not waiting one after another."""
    proxy.delay(2.0, path=r"/ServiceProviderConfig$")

    async def send_all() -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=proxy.base_url, limits=limits, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.get("/ServiceProviderConfig") for _ in range(32))
            )
        assert all(answer.status_code == 200 for answer in answers)

    asyncio.run(send_all())
    entries = proxy.requests()
    assert len(entries) == 32 and all(entry.fault == "delay:2" for entry in entries)
    # Every request arrived before the first one was answered.
    assert max(e.time for e in entries) < min(e.time + (e.duration or 0) for e in entries)


def test_malformed_json(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.malformed_json(method="GET", path=r"/Users/", times=1)
    created = client.post("/Users", json=scim_user(unique("malformed")))
    broken = client.get(created.headers["location"])
    assert broken.status_code == 200
    assert broken.headers["content-type"] == "application/scim+json"
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    assert client.get(created.headers["location"]).json()["id"] == created.json()["id"]


# -- reject_members ---------------------------------------------------------------------


def test_reject_members_only_for_patch_adding_them(
    proxy: FaultProxyThread, client: httpx.Client, server_client: httpx.Client
) -> None:
    good = client.post("/Users", json=scim_user(unique("good"))).json()["id"]
    bad = client.post("/Users", json=scim_user(unique("bad"))).json()["id"]
    team = client.post("/Groups", json=scim_group(unique("team"))).json()["id"]
    proxy.reject_members([bad])

    assert client.patch(f"/Groups/{team}", json=scim_patch_members(add=[good])).status_code in (
        200,
        204,
    )
    refused = client.patch(f"/Groups/{team}", json=scim_patch_members(add=[good, bad]))
    assert refused.status_code == 400
    assert refused.json()["scimType"] == "invalidValue"
    assert bad in refused.json()["detail"]
    pathless = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "Add", "value": {"members": [{"value": bad}]}}],
    }
    assert client.patch(f"/Groups/{team}", json=pathless).status_code == 400
    removal = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "remove", "path": f'members[value eq "{bad}"]'}],
    }
    assert client.patch(f"/Groups/{team}", json=removal).status_code in (200, 204)
    # Other methods carrying the member are not affected.
    assert client.post("/Groups", json=scim_group(unique("other"), [bad])).status_code == 201

    members = server_client.get(f"/Groups/{team}").json().get("members", [])
    assert [m["value"] for m in members] == [good]
    assert proxy.count("PATCH", forwarded=False) == 2
    outcomes = [e.outcome for e in proxy.requests("PATCH")]
    assert outcomes[1:3] == ["reject_members:400", "reject_members:400"]
    assert outcomes[0] in ("200", "204") and outcomes[3] in ("200", "204")


def test_reject_members_custom_status(proxy: FaultProxyThread, client: httpx.Client) -> None:
    team = client.post("/Groups", json=scim_group(unique("team"))).json()["id"]
    proxy.reject_members(["nobody"], status=409)
    assert (
        client.patch(f"/Groups/{team}", json=scim_patch_members(add=["nobody"])).status_code == 409
    )


# -- outages ----------------------------------------------------------------------------


def test_outage_reset_then_recovery(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.outage_start()
    assert proxy.in_outage
    for _ in range(2):
        with pytest.raises(TRANSPORT_LOSS):
            client.get("/Users")
    proxy.outage_end()
    assert client.get("/Users").status_code == 200
    assert [e.outcome for e in proxy.requests()] == ["outage:reset", "outage:reset", "200"]


def test_timed_outage_503(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.status(500)  # an outage wins over rules
    proxy.outage(0.3, mode="503")
    assert client.get("/Users").status_code == 503
    time.sleep(0.35)
    assert not proxy.in_outage
    proxy.clear()
    assert client.get("/Users").status_code == 200


def test_outage_rejects_unknown_mode(proxy: FaultProxyThread) -> None:
    with pytest.raises(ValueError):
        proxy.outage_start(mode="refuse")  # type: ignore[arg-type]


# -- counts, probabilities, seeds -------------------------------------------------------


def test_times_counts_matching_requests(proxy: FaultProxyThread, client: httpx.Client) -> None:
    rule = proxy.status(503, method="GET", times=2)
    client.post("/Users", json=scim_user(unique("times")))  # not matching, not counted
    codes = [client.get("/Users").status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]
    assert (rule.hits, rule.remaining, rule.exhausted) == (2, 0, True)


def test_first_matching_rule_wins_and_remove(proxy: FaultProxyThread, client: httpx.Client) -> None:
    first = proxy.status(502, path=r"/Users$")
    proxy.status(504)
    assert client.get("/Users").status_code == 502
    assert client.get("/Groups").status_code == 504
    proxy.remove(first)
    assert client.get("/Users").status_code == 504
    proxy.clear()
    assert proxy.rules == []
    assert client.get("/Users").status_code == 200


def outcomes(scim_server: ScimServerProcess, seed: int, rule_seed: int | None) -> list[int]:
    with FaultProxyThread(scim_server.base_url, seed=seed) as proxy:
        proxy.status(500, probability=0.5, seed=rule_seed)
        with httpx.Client(base_url=proxy.base_url) as http:
            return [http.get("/ServiceProviderConfig").status_code for _ in range(24)]


def test_probability_is_repeatable_with_a_seed(scim_server: ScimServerProcess) -> None:
    first = outcomes(scim_server, seed=7, rule_seed=None)
    assert set(first) == {200, 500}
    assert outcomes(scim_server, seed=7, rule_seed=None) == first
    assert outcomes(scim_server, seed=8, rule_seed=None) != first
    # A rule's own seed makes it independent from the proxy's.
    assert outcomes(scim_server, seed=1, rule_seed=42) == outcomes(scim_server, 2, 42)


def test_probability_bounds(proxy: FaultProxyThread, client: httpx.Client) -> None:
    proxy.status(500, probability=0.0)
    assert client.get("/Users").status_code == 200
    with pytest.raises(ValueError):
        proxy.status(500, probability=1.5)


def mixed_run(scim_server: ScimServerProcess, seed: int) -> list[str]:
    with FaultProxyThread(scim_server.base_url) as proxy:
        rule = proxy.mixed(0.6, seed, client_timeout=0.5, max_delay=0.1)
        with httpx.Client(base_url=proxy.base_url, timeout=0.5) as http:
            for _ in range(30):
                try:
                    response = http.get("/ServiceProviderConfig")
                except TRANSPORT_LOSS:
                    continue
                if response.status_code == 429:
                    assert response.headers["retry-after"] in ("0", "1")
        assert rule.hits == len([e for e in proxy.requests() if e.fault])
        return [e.outcome for e in proxy.requests()]


def test_mixed_faults_are_varied_bounded_and_repeatable(scim_server: ScimServerProcess) -> None:
    run = mixed_run(scim_server, seed=3)
    assert len(run) == 30
    kinds = {o.split(":")[0] if o.startswith("delay") else o for o in run}
    assert kinds <= {"200", "status:500", "status:503", "status:429", "reset", "delay"}
    assert {"200", "reset", "delay"} <= kinds
    assert all(float(o.split(":")[1]) <= 0.1 for o in run if o.startswith("delay"))
    assert mixed_run(scim_server, seed=3) == run


def test_mixed_delays_stay_below_the_client_timeout(
    proxy: FaultProxyThread, client: httpx.Client
) -> None:
    proxy.mixed(1.0, 5, client_timeout=0.2, max_delay=10, kinds=["delay"])
    for _ in range(5):
        assert client.get("/ServiceProviderConfig", timeout=0.2).status_code == 200
    delays = [float(e.outcome.split(":")[1]) for e in proxy.requests()]
    assert len(delays) == 5 and max(delays) <= 0.16
    with pytest.raises(ValueError):
        proxy.mixed(0.5, kinds=["teapot"])


# -- request log ------------------------------------------------------------------------


def test_request_log(proxy: FaultProxyThread, client: httpx.Client) -> None:
    before = time.time()
    name = unique("logged")
    proxy.status(503, method="POST", times=1)
    client.post("/Users", json=scim_user(name))
    client.post("/Users", json=scim_user(name))
    client.get("/Users", params={"filter": f'userName eq "{name}"'})

    entries = proxy.requests()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert all(before <= e.time <= time.time() and e.done for e in entries)
    refused, created, listed = entries
    assert (refused.method, refused.path, refused.fault, refused.forwarded) == (
        "POST",
        "/v2/Users",
        "status:503",
        False,
    )
    assert json.loads(refused.body)["userName"] == name
    assert refused.header("content-type") == SCIM_HEADERS["Content-Type"]
    assert (created.forwarded, created.upstream_status, created.outcome) == (True, 201, "201")
    assert listed.query.startswith("filter=")

    assert proxy.count("POST", r"/Users$") == 2
    assert proxy.count("POST", r"/Users$", forwarded=True) == 1
    assert proxy.count("get") == 1
    assert proxy.count(path_regex=r"/Groups") == 0
    proxy.clear_log()
    assert proxy.requests() == []


# -- hosting: async, thread, subprocess clients -------------------------------------------


async def test_async_proxy(aproxy: FaultProxy, scim_server: ScimServerProcess) -> None:
    assert aproxy.base_url.endswith("/v2")
    async with httpx.AsyncClient(base_url=aproxy.base_url, headers=SCIM_HEADERS) as client:
        created = await client.post("/Users", json=scim_user(unique("async")))
        assert created.status_code == 201
        aproxy.reset(times=1)
        with pytest.raises(TRANSPORT_LOSS):
            await client.get("/Users")
        aproxy.delay(1.0, times=1)
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/Users", timeout=0.1)
        assert (await client.get("/Users")).status_code == 200
    assert [e.outcome for e in aproxy.requests()][:3] == ["201", "reset", "delay:1"]


async def test_async_proxy_stop_cancels_in_flight_requests(
    scim_server: ScimServerProcess,
) -> None:
    proxy = await FaultProxy(scim_server.base_url).start()
    proxy.delay(30)
    async with httpx.AsyncClient(base_url=proxy.base_url) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/Users", timeout=0.1)
        started = time.monotonic()
        await proxy.stop()
        assert time.monotonic() - started < 1
    with pytest.raises(RuntimeError):
        _ = proxy.base_url


def test_thread_proxy_serves_a_subprocess_client(proxy: FaultProxyThread) -> None:
    proxy.status(418, times=1)
    script = (
        "import httpx, sys; "
        "print(httpx.get(sys.argv[1]).status_code, httpx.get(sys.argv[1]).status_code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, f"{proxy.base_url}/ServiceProviderConfig"],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    assert out.stdout.split() == ["418", "200"]


def test_thread_proxy_stop_joins_its_thread(scim_server: ScimServerProcess) -> None:
    proxy = FaultProxyThread(scim_server.base_url).start()
    assert any(t.name == "faultproxy" for t in threading.enumerate())
    proxy.delay(30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{proxy.base_url}/Users", timeout=0.1)
    proxy.stop()
    assert not any(t.name == "faultproxy" for t in threading.enumerate())
    proxy.stop()  # idempotent


# -- vendor behaviours ----------------------------------------------------------------------


def test_aws_identity_center_behaviours(
    proxy: FaultProxyThread, client: httpx.Client, server_client: httpx.Client
) -> None:
    users = [client.post("/Users", json=scim_user(unique("aws"))).json()["id"] for _ in range(3)]
    team = client.post("/Groups", json=scim_group(unique("aws-team"))).json()["id"]
    proxy.vendor("aws-identity-center")
    assert client.patch(f"/Groups/{team}", json=scim_patch_members(add=users)).status_code in (
        200,
        204,
    )
    # Members are hidden on read, one group or a list; the server still holds them.
    assert "members" not in client.get(f"/Groups/{team}").json()
    assert all("members" not in g for g in client.get("/Groups").json()["Resources"])
    assert len(server_client.get(f"/Groups/{team}").json()["members"]) == 3
    replace = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "members", "value": [{"value": users[0]}]}],
    }
    refused = client.patch(f"/Groups/{team}", json=replace)
    assert (refused.status_code, refused.json()["scimType"]) == (400, "invalidValue")
    remove_all = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove", "path": "members"}]}
    assert client.patch(f"/Groups/{team}", json=remove_all).status_code == 400
    many = scim_patch_members(add=[f"m{n}" for n in range(101)])
    capped = client.patch(f"/Groups/{team}", json=many)
    assert (capped.status_code, capped.json()["scimType"]) == (400, "tooMany")
    assert len(server_client.get(f"/Groups/{team}").json()["members"]) == 3


def test_put_only_groups_answer_501_to_patch(
    proxy: FaultProxyThread, client: httpx.Client, server_client: httpx.Client
) -> None:
    team = client.post("/Groups", json=scim_group(unique("put-team"))).json()["id"]
    proxy.vendor("put-only-groups")
    refused = client.patch(f"/Groups/{team}", json=scim_patch_members(add=["x"]))
    assert refused.status_code == 501
    body = scim_group("renamed by put", ["x"])
    assert client.put(f"/Groups/{team}", json={"id": team, **body}).status_code == 200
    assert server_client.get(f"/Groups/{team}").json()["displayName"] == "renamed by put"
    with pytest.raises(ValueError, match="unknown vendor"):
        proxy.vendor("nobody")
