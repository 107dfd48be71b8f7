"""ScimConnector against the real scim2-server (in process); state is checked server-side."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from headwater.connectors.auth import BearerTokenAuth
from headwater.connectors.errors import (
    AppUnavailableError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from headwater.connectors.scim import ScimConnector
from headwater.domain.dialects import DialectName
from headwater.domain.downstream import AccountAttributes, RemoteAccount, RemoteGroup
from headwater.domain.settings import ProvisioningSettings
from headwater.testing.toolkit import InProcessScim, loopback_transport

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def alice(**changes: Any) -> AccountAttributes:
    values: dict[str, Any] = {
        "user_name": "alice@example.com",
        "external_id": "00u-alice",
        "given_name": "Alice",
        "family_name": "Liddell",
        "display_name": "Alice Liddell",
        "email": "alice@example.com",
        "title": "Engineer",
        "department": "R&D",
        "employee_number": "1001",
        "manager_id": "mgr-1",
        "extra": {"nickName": "Al", "password": "never-sent"},
    }
    values.update(changes)
    return AccountAttributes(**values)


async def make_users(scim: ScimConnector, count: int) -> list[str]:
    ids = []
    for n in range(count):
        account = await scim.create_user(AccountAttributes(f"user{n:03}", f"ext-{n}"))
        ids.append(account.id)
    return ids


# -- connection ------------------------------------------------------------------------------


async def test_connection_ok(scim: ScimConnector, harness: InProcessScim) -> None:
    await scim.test_connection()
    assert [s.path for s in harness.transport.sent] == ["/v2/ServiceProviderConfig", "/v2/Users"]


async def test_connection_with_bearer_token(harness: InProcessScim) -> None:
    harness.app.bearer_tokens = frozenset({"s3cret-token"})
    await harness.connector(auth=BearerTokenAuth("s3cret-token")).test_connection()

    for auth in (BearerTokenAuth("wrong-token"), None):
        with pytest.raises(AppUnavailableError, match="credentials rejected") as caught:
            await harness.connector(auth=auth).test_connection()
        assert caught.value.status == 401
        assert "token" not in str(caught.value).lower().replace("credentials", "")


async def test_bearer_token_enforced_on_every_call(harness: InProcessScim) -> None:
    harness.app.bearer_tokens = frozenset({"s3cret-token"})
    good = harness.connector(auth=BearerTokenAuth("s3cret-token"))
    created = await good.create_user(alice())
    assert harness.transport.sent[-1].headers["Authorization"] == "Bearer s3cret-token"
    bad = harness.connector(auth=BearerTokenAuth("stale"))
    with pytest.raises(AppUnavailableError) as caught:
        await bad.get_user(created.id)
    assert caught.value.status == 401
    assert "stale" not in caught.value.message


async def test_connection_base_url_not_found(harness: InProcessScim) -> None:
    scim = harness.connector(base_url="http://scim.test/wrong/prefix/")
    with pytest.raises(AppUnavailableError, match="check the base URL") as caught:
        await scim.test_connection()
    assert caught.value.status == 404


async def test_connection_falls_back_when_service_provider_config_is_missing(
    harness: InProcessScim,
) -> None:
    """An app without /ServiceProviderConfig is still usable when /Users answers."""
    inner = harness.transport

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(404)
        return await inner.handle_async_request(request)

    scim = ScimConnector(
        "http://scim.test/v2",
        auth=None,
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(handler),
    )
    async with scim:
        await scim.test_connection()
    assert [s.path for s in inner.sent] == ["/v2/Users"]
    assert inner.sent[0].query == "startIndex=1&count=1"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/scim/v2"
    settings = ProvisioningSettings(connect_timeout=5, request_timeout=5)
    async with ScimConnector(
        url, auth=None, settings=settings, transport=loopback_transport()
    ) as scim:
        with pytest.raises(AppUnavailableError, match="cannot connect"):
            await scim.test_connection()
        # Outside the probe, a refused connection is a blip worth retrying.
        with pytest.raises(TransientError, match="connection failed"):
            await scim.get_user("x")


# -- users -----------------------------------------------------------------------------------


async def test_create_user_sends_core_enterprise_and_extra(
    scim: ScimConnector, harness: InProcessScim
) -> None:
    account = await scim.create_user(alice())
    assert account == RemoteAccount(account.id, "alice@example.com", True)

    sent = harness.transport.sent[-1]
    assert sent.method == "POST" and sent.path == "/v2/Users"
    assert sent.headers["Content-Type"] == "application/scim+json"
    assert sent.headers["User-Agent"].startswith("Headwater SCIM Client/")
    assert "password" not in {key.lower() for key in sent.body}

    stored = harness.scim.get(f"Users/{account.id}")
    assert stored["userName"] == "alice@example.com"
    assert stored["externalId"] == "00u-alice"
    assert stored["name"] == {"givenName": "Alice", "familyName": "Liddell"}
    assert stored["displayName"] == "Alice Liddell"
    assert stored["emails"] == [{"value": "alice@example.com", "type": "work", "primary": True}]
    assert stored["title"] == "Engineer"
    assert stored["active"] is True
    assert stored["nickName"] == "Al"
    assert stored[ENTERPRISE] == {
        "employeeNumber": "1001",
        "department": "R&D",
        "manager": {"value": "mgr-1"},
    }
    assert "password" not in stored


async def test_create_minimal_inactive_user(scim: ScimConnector, harness: InProcessScim) -> None:
    account = await scim.create_user(AccountAttributes("bob", "00u-bob", active=False))
    assert account.active is False
    stored = harness.scim.get(f"Users/{account.id}")
    assert ENTERPRISE not in stored
    assert stored["active"] is False


async def test_create_duplicate_user_conflicts(scim: ScimConnector) -> None:
    await scim.create_user(alice())
    with pytest.raises(ConflictError, match="HTTP 409") as caught:
        await scim.create_user(alice(external_id="other"))
    assert caught.value.status == 409
    # scim2-server compares userName case-insensitively (caseExact false in RFC 7643).
    with pytest.raises(ConflictError):
        await scim.create_user(alice(user_name="ALICE@example.com"))


async def test_find_user(scim: ScimConnector) -> None:
    created = await scim.create_user(alice())
    await scim.create_user(AccountAttributes("alice@example.org", "x2"))
    assert await scim.find_user("alice@example.com") == created
    assert await scim.find_user("Alice@Example.com") == created  # server matches caseless
    assert await scim.find_user("nobody@example.com") is None


async def test_find_user_escapes_filter_value(scim: ScimConnector, harness: InProcessScim) -> None:
    tricky = 'o"brien\\admin'
    created = await scim.create_user(AccountAttributes(tricky, "x1"))
    await scim.create_user(AccountAttributes("o", "x2"))
    assert await scim.find_user(tricky) == created
    assert await scim.find_user('o" or userName eq "o') is None
    query = harness.transport.sent[-1].query
    assert "%20eq%20" in query and "+" not in query


async def test_get_user(scim: ScimConnector) -> None:
    created = await scim.create_user(alice())
    assert await scim.get_user(created.id) == created
    assert await scim.get_user("no-such-id") is None


async def test_replace_user_puts_full_resource(scim: ScimConnector, harness: InProcessScim) -> None:
    created = await scim.create_user(alice())
    changed = alice(
        user_name="alice.l@example.com",
        title=None,
        department="Ops",
        manager_id=None,
        active=False,
        extra={},
    )
    result = await scim.replace_user(created.id, changed)
    assert result == RemoteAccount(created.id, "alice.l@example.com", False)

    sent = harness.transport.sent[-1]
    assert sent.method == "PUT" and sent.path == f"/v2/Users/{created.id}"
    assert sent.body["active"] is False
    stored = harness.scim.get(f"Users/{created.id}")
    assert stored["userName"] == "alice.l@example.com"
    assert "title" not in stored  # PUT replaces: what is omitted is cleared
    assert "nickName" not in stored
    assert stored[ENTERPRISE] == {"employeeNumber": "1001", "department": "Ops"}

    with pytest.raises(NotFoundError):
        await scim.replace_user("no-such-id", changed)


async def test_patch_user_replaces_attributes(scim: ScimConnector, harness: InProcessScim) -> None:
    created = await scim.create_user(alice())
    changed = alice(given_name="Alicia", department="Ops", email="al@example.com", active=False)
    result = await scim.patch_user(created.id, changed)
    assert result is None  # scim2-server answers PATCH with 204 No Content

    operations = harness.transport.sent[-1].body["Operations"]
    assert {op["op"] for op in operations} == {"replace"}
    paths = {op["path"] for op in operations}
    assert {"active", "name.givenName", f"{ENTERPRISE}:department", "emails"} <= paths
    assert not any("password" in path.lower() for path in paths)

    stored = harness.scim.get(f"Users/{created.id}")
    assert stored["name"]["givenName"] == "Alicia"
    assert stored["name"]["familyName"] == "Liddell"
    assert stored[ENTERPRISE]["department"] == "Ops"
    assert stored[ENTERPRISE]["manager"] == {"value": "mgr-1"}
    assert stored["emails"] == [{"value": "al@example.com", "type": "work", "primary": True}]
    assert stored["active"] is False

    with pytest.raises(NotFoundError):
        await scim.patch_user("no-such-id", changed)


async def test_set_active(scim: ScimConnector, harness: InProcessScim) -> None:
    created = await scim.create_user(alice())
    await scim.set_active(created.id, False)
    assert harness.transport.sent[-1].body["Operations"] == [
        {"op": "replace", "path": "active", "value": False}
    ]
    assert await scim.get_user(created.id) == RemoteAccount(created.id, created.user_name, False)
    await scim.set_active(created.id, True)
    assert harness.scim.get(f"Users/{created.id}")["active"] is True
    with pytest.raises(NotFoundError):
        await scim.set_active("no-such-id", True)


async def test_delete_user_tolerates_missing(scim: ScimConnector) -> None:
    created = await scim.create_user(alice())
    await scim.delete_user(created.id)
    assert await scim.get_user(created.id) is None
    await scim.delete_user(created.id)  # already gone: fine


# -- groups ----------------------------------------------------------------------------------


async def test_create_find_get_group(scim: ScimConnector, harness: InProcessScim) -> None:
    group = await scim.create_group("Engineering")
    assert group.display_name == "Engineering"
    # scim2-server omits an empty members list: absent is unknown, never read as empty.
    assert group.member_ids is None
    assert harness.transport.sent[-1].body["members"] == []

    assert await scim.get_group(group.id) == group
    assert await scim.find_group("Engineering") == group
    assert await scim.find_group("engineering") == group  # displayName is caseless too
    assert await scim.find_group("Sales") is None
    assert await scim.get_group("no-such-id") is None


async def test_members_absent_is_unknown_whatever_the_dialect_says(
    harness: InProcessScim,
) -> None:
    scim = harness.connector(ProvisioningSettings())
    group = await scim.create_group("Quiet")
    fetched = await scim.get_group(group.id)
    assert fetched is not None and fetched.member_ids is None
    (user,) = await make_users(scim, 1)
    await scim.patch_members(group.id, add=[user], remove=[])
    fetched = await scim.get_group(group.id)
    # Members that are present always count, whatever the setting.
    assert fetched is not None and fetched.member_ids == frozenset({user})


async def test_patch_members_batches(scim: ScimConnector, harness: InProcessScim) -> None:
    group = await scim.create_group("Big")
    members = [f"member-{n:03}" for n in range(250)]  # scim2-server does not check references
    harness.transport.clear()

    assert await scim.patch_members(group.id, add=members, remove=[]) == 3
    sizes = [len(s.body["Operations"][0]["value"]) for s in harness.transport.sent]
    assert sizes == [100, 100, 50]
    fetched = await scim.get_group(group.id)
    assert fetched is not None and fetched.member_ids == frozenset(members)

    harness.transport.clear()
    removed, added = members[:120], ["new-1", "new-2", "new-3"]
    assert await scim.patch_members(group.id, add=added, remove=removed) == 2
    first, second = (s.body["Operations"] for s in harness.transport.sent)
    assert len(first) == 100 and {op["op"] for op in first} == {"remove"}
    assert first[0] == {"op": "remove", "path": 'members[value eq "member-000"]'}
    assert [op["op"] for op in second] == ["remove"] * 20 + ["add"]  # removals first
    assert second[-1]["value"] == [{"value": v} for v in added]

    fetched = await scim.get_group(group.id)
    assert fetched is not None
    assert fetched.member_ids == frozenset(members[120:] + added)


async def test_patch_members_noop_and_missing_group(scim: ScimConnector) -> None:
    group = await scim.create_group("G")
    assert await scim.patch_members(group.id, add=[], remove=[]) == 0
    # scim2-server accepts removing a member the group does not have.
    assert await scim.patch_members(group.id, add=[], remove=["ghost"]) == 1
    with pytest.raises(NotFoundError):
        await scim.patch_members("no-such-id", add=["x"], remove=[])


async def test_patch_members_batch_size_setting(harness: InProcessScim) -> None:
    scim = harness.connector(ProvisioningSettings(membership_batch_size=2))
    group = await scim.create_group("Small batches")
    assert await scim.patch_members(group.id, add=["a", "b", "c"], remove=["x"]) == 2


async def test_replace_members_with_patch(scim: ScimConnector, harness: InProcessScim) -> None:
    group = await scim.create_group("Replace")
    await scim.patch_members(group.id, add=["old-1", "old-2"], remove=[])
    members = [f"m{n}" for n in range(250)]
    harness.transport.clear()

    assert await scim.replace_members(group.id, "Replace", members) == 3
    ops = [s.body["Operations"] for s in harness.transport.sent]
    assert [op[0]["op"] for op in ops] == ["replace", "add", "add"]
    assert [len(op[0]["value"]) for op in ops] == [100, 100, 50]
    fetched = await scim.get_group(group.id)
    assert fetched is not None and fetched.member_ids == frozenset(members)

    assert await scim.replace_members(group.id, "Replace", []) == 1
    fetched = await scim.get_group(group.id)
    assert fetched is not None and fetched.member_ids is None  # emptied: scim2-server omits it


async def test_replace_members_with_put(harness: InProcessScim) -> None:
    scim = harness.connector(ProvisioningSettings(dialect=DialectName.PUT_ONLY_GROUPS))
    group = await scim.create_group("Put")
    await scim.patch_members(group.id, add=["old"], remove=[])
    harness.transport.clear()

    assert await scim.replace_members(group.id, "Put renamed", ["a", "b", "a"]) == 1
    sent = harness.transport.sent[-1]
    assert sent.method == "PUT" and sent.body["members"] == [{"value": "a"}, {"value": "b"}]
    assert await scim.get_group(group.id) == RemoteGroup(
        group.id, "Put renamed", frozenset({"a", "b"})
    )

    assert await scim.replace_members(group.id, "Put renamed", []) == 1
    fetched = await scim.get_group(group.id)
    assert fetched is not None and fetched.member_ids is None


async def test_rename_group(scim: ScimConnector, harness: InProcessScim) -> None:
    group = await scim.create_group("Before")
    await scim.patch_members(group.id, add=["keep"], remove=[])
    await scim.rename_group(group.id, "After")
    assert harness.transport.sent[-1].method == "PATCH"
    assert await scim.get_group(group.id) == RemoteGroup(group.id, "After", frozenset({"keep"}))


async def test_rename_group_in_put_mode_keeps_the_members(harness: InProcessScim) -> None:
    """A PUT-only app is renamed with a PUT that carries the members it holds now."""
    scim = harness.connector(ProvisioningSettings(dialect=DialectName.PUT_ONLY_GROUPS))
    group = await scim.create_group("Before")
    await scim.replace_members(group.id, "Before", ["keep"])
    harness.transport.clear()
    await scim.rename_group(group.id, "After")
    assert [r.method for r in harness.transport.sent] == ["GET", "PUT"]
    assert await scim.get_group(group.id) == RemoteGroup(group.id, "After", frozenset({"keep"}))


async def test_remove_members_in_put_mode_puts_the_rest(harness: InProcessScim) -> None:
    scim = harness.connector(ProvisioningSettings(dialect=DialectName.PUT_ONLY_GROUPS))
    group = await scim.create_group("Team")
    await scim.replace_members(group.id, "Team", ["a", "b"])
    await scim.remove_members(group.id, ["a"])
    assert await scim.get_group(group.id) == RemoteGroup(group.id, "Team", frozenset({"b"}))
    await scim.remove_members("gone", ["b"])  # a group that is gone holds nobody


async def test_delete_group_tolerates_missing(scim: ScimConnector) -> None:
    group = await scim.create_group("Doomed")
    await scim.delete_group(group.id)
    assert await scim.get_group(group.id) is None
    await scim.delete_group(group.id)


async def test_duplicate_group_name_is_allowed_by_scim2_server(scim: ScimConnector) -> None:
    """RFC 7643 gives Group.displayName no uniqueness, and scim2-server follows it."""
    first = await scim.create_group("Twin")
    second = await scim.create_group("Twin")
    assert first.id != second.id
    assert await scim.find_group("Twin") in (first, second)


# -- plumbing --------------------------------------------------------------------------------


async def test_on_request_hook(harness: InProcessScim) -> None:
    calls: list[tuple[str, str, int | None, float]] = []
    scim = harness.connector(on_request=lambda *args: calls.append(args))
    created = await scim.create_user(alice())
    await scim.get_user(created.id)
    await scim.get_user("missing")
    assert [(m, p, s) for m, p, s, _ in calls] == [
        ("POST", "/Users", 201),
        ("GET", "/Users/{id}", 200),
        ("GET", "/Users/{id}", 404),
    ]
    assert all(seconds >= 0 for *_, seconds in calls)


async def test_failing_hook_does_not_break_calls(harness: InProcessScim) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics down")

    scim = harness.connector(on_request=broken)
    assert await scim.get_user("missing") is None


async def test_rejected_attributes_are_permanent(scim: ScimConnector) -> None:
    """scim2-server answers 400 to an attribute outside its schemas: a task, not a retry."""
    with pytest.raises(PermanentError, match=r"HTTP 400: invalidSyntax: .*unknownAttr") as caught:
        await scim.create_user(alice(extra={"unknownAttr": 1}))
    assert caught.value.status == 400


async def test_email_is_sent_verbatim(scim: ScimConnector, harness: InProcessScim) -> None:
    """scim2-models' Email would normalise and refuse reserved domains; the mapping wins."""
    created = await scim.create_user(alice(email="Alice@CORP.local"))
    stored = harness.scim.get(f"Users/{created.id}")
    assert stored["emails"][0]["value"] == "Alice@CORP.local"


async def test_repr_hides_credentials(harness: InProcessScim) -> None:
    scim = harness.connector(
        auth=BearerTokenAuth("tok-123"), base_url="http://user:pw@scim.test/v2"
    )
    assert "tok-123" not in repr(scim) and "pw" not in repr(scim)


async def test_extra_cannot_override_structure(scim: ScimConnector, harness: InProcessScim) -> None:
    created = await scim.create_user(
        alice(extra={"id": "forged", "schemas": "nonsense", "PASSWORD": "x", "nickName": "Al"})
    )
    assert created.id != "forged"
    body = harness.transport.sent[-1].body
    assert "id" not in body and "PASSWORD" not in body
    assert body["schemas"][0] == "urn:ietf:params:scim:schemas:core:2.0:User"


async def test_a_server_that_never_answers_times_out_within_the_request_timeout() -> None:
    """It accepts the connection and the request, then says nothing: the app's total request
    timeout ends the call, as a transient failure."""

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = ProvisioningSettings(connect_timeout=1, request_timeout=1)
    try:
        async with ScimConnector(
            f"http://127.0.0.1:{port}/scim/v2",
            auth=None,
            settings=settings,
            transport=loopback_transport(),
        ) as scim:
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransientError, match="no answer within 1 s"):
                await scim.get_user("x")
            assert asyncio.get_running_loop().time() - started < 3
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_cookies_an_app_sets_are_sent_back(harness: InProcessScim) -> None:
    """The client reads cookies only from responses that set one (to spare the rest the
    cost), and still sends back what an app set, as any HTTP client would (a load balancer's
    affinity cookie); requests go to the app's base URL however they are built."""
    inner = harness.transport
    seen: list[tuple[str, str | None]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("cookie")))
        response = await inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/Users"):
            response.headers["Set-Cookie"] = "affinity=node-2; Path=/"
        return response

    scim = ScimConnector(
        "http://scim.test/v2/",
        auth=None,
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(handler),
    )
    async with scim:
        await scim.create_user(alice())
        assert await scim.find_user("alice@example.com") is not None
        created = await scim.create_user(alice(user_name="bob@example.com", external_id="00u-b"))
        await scim.get_user(created.id)
    assert [path for path, _ in seen] == [
        "/v2/Users",
        "/v2/Users",
        "/v2/Users",
        f"/v2/Users/{created.id}",
    ]
    assert [cookie for _, cookie in seen] == [None, None, "affinity=node-2", "affinity=node-2"]
