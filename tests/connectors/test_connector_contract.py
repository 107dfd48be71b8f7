"""The engine's ``Connector`` port, held to one contract by every adapter behind it: the SCIM
connector against a real scim2-server, and the read-only connector previews use."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from headwater.connectors.scim import ScimConnector
from headwater.domain.downstream import AccountAttributes
from headwater.engine.ports import Connector
from headwater.engine.preview import DryRunRefused, ReadOnlyConnector
from headwater.testing.toolkit import InProcessScim

PORT_METHODS = sorted(
    name
    for name, member in inspect.getmembers(Connector, inspect.isfunction)
    if not name.startswith("_")
)


@pytest.fixture(params=["scim", "read-only"])
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Any, ScimConnector]]:
    inner = InProcessScim("contract.test").connector()
    connector: Any = inner if request.param == "scim" else ReadOnlyConnector(inner)
    yield request.param, connector, inner
    await connector.aclose()


def test_the_port_is_complete() -> None:
    """Everything the engine calls is in the port, including the connection test."""
    assert {"test_connection", "aclose", "find_user", "patch_members", "remove_members"} <= set(
        PORT_METHODS
    )


@pytest.mark.parametrize("cls", [ScimConnector, ReadOnlyConnector])
def test_adapters_implement_every_method_with_the_port_signature(cls: type) -> None:
    for name in PORT_METHODS:
        implemented = getattr(cls, name, None)
        assert implemented is not None, f"{cls.__name__} lacks {name}"
        assert inspect.iscoroutinefunction(implemented), f"{cls.__name__}.{name} is not async"
        wanted = list(inspect.signature(getattr(Connector, name)).parameters)
        got = list(inspect.signature(implemented).parameters)
        assert len(got) == len(wanted), f"{cls.__name__}.{name}{got} vs port {wanted}"


async def test_reads_behave_alike(adapter: tuple[str, Any, ScimConnector]) -> None:
    _, connector, inner = adapter
    assert isinstance(connector, Connector)
    await connector.test_connection()
    assert await connector.find_user("nobody@example.com") is None
    assert await connector.get_user("no-such-id") is None
    assert await connector.find_group("Nobody") is None
    assert await connector.get_group("no-such-id") is None
    made = await inner.create_user(AccountAttributes("taylor@example.com", "00u1"))
    group = await inner.create_group("Accounting")
    await inner.patch_members(group.id, add=[made.id], remove=[])
    found = await connector.find_user("taylor@example.com")
    assert found is not None and found.id == made.id
    read = await connector.get_group(group.id)
    assert read is not None and read.member_ids == frozenset({made.id})


async def test_writes_go_through_or_are_refused(adapter: tuple[str, Any, ScimConnector]) -> None:
    kind, connector, inner = adapter
    attrs = AccountAttributes("alex@example.com", "00u2")
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: connector.create_user(attrs),
        lambda: connector.create_group("Finance"),
    ]
    if kind == "read-only":
        for write in writes:
            with pytest.raises(DryRunRefused):
                await write()
        assert await inner.find_user("alex@example.com") is None
        assert await inner.find_group("Finance") is None
        return
    account = await connector.create_user(attrs)
    group = await connector.create_group("Finance")
    await connector.patch_members(group.id, add=[account.id], remove=[])
    await connector.rename_group(group.id, "Finance EMEA")
    await connector.remove_members(group.id, [account.id])
    await connector.set_active(account.id, False)
    renamed = await inner.get_group(group.id)
    assert renamed is not None
    assert renamed.display_name == "Finance EMEA" and not renamed.member_ids
    deactivated = await inner.get_user(account.id)
    assert deactivated is not None and not deactivated.active
    await connector.delete_group(group.id)
    await connector.delete_user(account.id)
    assert await inner.get_user(account.id) is None
