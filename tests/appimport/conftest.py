"""App import fixtures: a fresh in-process scim2-server that the runtime's connectors reach,
granting pages of at most 100 resources (so a 1,000-account import reads ten pages)."""

from __future__ import annotations

import pytest

from headwater.runtime import Runtime
from headwater.testing.toolkit import InProcessScim


@pytest.fixture
def downstream(runtime: Runtime) -> InProcessScim:
    """An empty scim2-server at ``http://scim.test/v2`` with ``filter.maxResults`` 100."""
    return InProcessScim(max_results=100).serve(runtime)
