"""Engine fixtures: a fresh in-process scim2-server that the runtime's connectors reach."""

from __future__ import annotations

import pytest

from headwater.runtime import Runtime
from headwater.testing.toolkit import InProcessScim


@pytest.fixture
def downstream(runtime: Runtime) -> InProcessScim:
    """An empty scim2-server at ``http://scim.test/v2``, served to ``runtime`` in process."""
    return InProcessScim().serve(runtime)
