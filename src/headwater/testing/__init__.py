"""Test tools: real SCIM 2.0 downstreams and a fault-injecting proxy to put in front of them.

They live in the package (not under ``tests/``) so that unit, engine, end-to-end and
benchmark suites, and the subprocesses they start, can all import the same tools.

Names are re-exported lazily: ``python -m headwater.testing.scimserver`` must not find
its own module already imported by this package (runpy warns about that).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.testing.faultproxy import (
        FaultProxy,
        FaultProxyThread,
        FaultRule,
        LoggedRequest,
    )
    from headwater.testing.scimserver import (
        LOOPBACK_ALLOW,
        ScimApplication,
        ScimServerProcess,
        free_port,
        in_process_app,
    )
    from headwater.testing.servers import (
        SERVER_NAMES,
        DjangoScimProcess,
        ScimmyProcess,
        server_process,
    )

__all__ = [
    "LOOPBACK_ALLOW",
    "SERVER_NAMES",
    "DjangoScimProcess",
    "FaultProxy",
    "FaultProxyThread",
    "FaultRule",
    "LoggedRequest",
    "ScimApplication",
    "ScimServerProcess",
    "ScimmyProcess",
    "free_port",
    "in_process_app",
    "server_process",
]

_HOMES = {
    "FaultProxy": "faultproxy",
    "FaultProxyThread": "faultproxy",
    "FaultRule": "faultproxy",
    "LoggedRequest": "faultproxy",
    "LOOPBACK_ALLOW": "scimserver",
    "ScimApplication": "scimserver",
    "ScimServerProcess": "scimserver",
    "free_port": "scimserver",
    "in_process_app": "scimserver",
    "SERVER_NAMES": "servers",
    "DjangoScimProcess": "servers",
    "ScimmyProcess": "servers",
    "server_process": "servers",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
