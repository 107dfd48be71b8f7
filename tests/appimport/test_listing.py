"""The SCIM connector lists accounts and groups page by page (``ports.AccountLister``), within
the app's ``filter.maxResults``, with what matching reads: the primary email and the
externalId."""

from __future__ import annotations

from headwater.domain.capabilities import Capabilities
from headwater.engine.ports import AccountLister, Connector
from headwater.testing.toolkit import InProcessScim


async def test_accounts_and_groups_are_listed_in_pages() -> None:
    downstream = InProcessScim(max_results=5)
    for i in range(12):
        downstream.scim.create_user(
            f"user{i:02d}",
            externalId=f"hr-{i}",
            emails=[
                {"value": f"other{i}@example.com"},
                {"value": f"user{i}@example.com", "primary": True},
            ],
        )
    downstream.scim.create_group("Editors")
    connector = downstream.connector(capabilities=Capabilities(filter_max_results=5))
    try:
        assert isinstance(connector, AccountLister) and isinstance(connector, Connector)
        assert connector.listing_page_size == 5
        first = await connector.list_accounts(1, 100)
        assert first.total == 12 and len(first.items) == 5
        rest = await connector.list_accounts(11, 5)
        assert len(rest.items) == 2
        account = first.items[0]
        number = int(account.user_name.removeprefix("user"))
        assert account.email == f"user{number}@example.com"  # the primary one
        assert account.external_id == f"hr-{number}"
        assert account.active is True
        groups = await connector.list_groups(1, 5)
        assert [g.display_name for g in groups.items] == ["Editors"]
        sent = downstream.transport.requests("GET", resource="Users")
        assert all("count=5" in s.query for s in sent)
    finally:
        await downstream.aclose()
