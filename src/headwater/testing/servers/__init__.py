"""Real SCIM 2.0 servers to provision into, each a loopback subprocess, chosen by name.

* ``"scim2-server"``: the Python ``scim2-server`` package
  (:class:`headwater.testing.scimserver.ScimServerProcess`), base URL ``.../v2``.
* ``"django-scim2"``: django-scim2's stock views and adapters in a minimal Django project
  over SQLite (:class:`DjangoScimProcess`, package ``.django_scim``), base URL ``.../scim/v2``.
* ``"scimmy"``: the Node packages scimmy and scimmy-routers with in-memory handlers
  (:class:`ScimmyProcess`, folder ``scimmy/``; needs ``node`` and ``npm ci`` there), base URL
  ``.../scim/v2``.

``docs/compatibility.md`` says what each does differently, and ``tests/tools/`` pins it down.
A test parametrised over :data:`SERVER_NAMES` gets a stopped server from :func:`server_process`
(or a started one from ``headwater.testing.toolkit.scim_server``).

Submodules are imported lazily: ``python -m headwater.testing.servers.django_scim`` imports
this package first, and the scim2-server runner is only loaded when asked for.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol, Self, get_args

from headwater.testing.servers.process import (
    SCIMMY_DIR,
    DjangoScimProcess,
    ScimmyProcess,
    ServerProcess,
    scimmy_missing,
)

__all__ = [
    "SCIMMY_DIR",
    "SERVER_NAMES",
    "DjangoScimProcess",
    "ScimServer",
    "ScimmyProcess",
    "ServerName",
    "ServerProcess",
    "auth_headers",
    "scimmy_missing",
    "server_process",
]

ServerName = Literal["scim2-server", "django-scim2", "scimmy"]
#: Every server a test can provision into, in the order a matrix lists them.
SERVER_NAMES: tuple[ServerName, ...] = get_args(ServerName)


class ScimServer(Protocol):
    """What every runner offers (``ScimServerProcess`` and :class:`ServerProcess` alike)."""

    bearer_token: str | None

    @property
    def base_url(self) -> str: ...

    @property
    def origin(self) -> str: ...

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    def output(self) -> str: ...

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def server_process(name: str, *, bearer_token: str | None = None, bulk: bool = False) -> ScimServer:
    """A runner (not yet started) for the server called ``name``, one of :data:`SERVER_NAMES`;
    ``bulk`` makes scim2-server announce SCIM Bulk (scimmy always does, django-scim2 never).

    Use it as a context manager: ``with server_process("scimmy", bearer_token=t) as server:``.
    """
    if name == "scim2-server":
        from headwater.testing.scimserver import ScimServerProcess

        return ScimServerProcess(bearer_token=bearer_token, extra_args=["--bulk"] if bulk else ())
    if name == "django-scim2":
        return DjangoScimProcess(bearer_token=bearer_token)
    if name == "scimmy":
        return ScimmyProcess(bearer_token=bearer_token)
    raise ValueError(f"unknown SCIM server {name!r}; choose one of {', '.join(SERVER_NAMES)}")


def auth_headers(server: ScimServer) -> dict[str, str]:
    """The ``Authorization`` header a client of ``server`` needs (none without a token)."""
    return {"Authorization": f"Bearer {server.bearer_token}"} if server.bearer_token else {}
