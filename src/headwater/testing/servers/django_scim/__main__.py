"""``python -m headwater.testing.servers.django_scim``: serve the Django SCIM project.

It makes a temporary folder for its SQLite database, creates the tables, and serves Django's
ASGI application under uvicorn until SIGTERM or SIGINT; the folder goes with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import tempfile
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"
# Idle keep-alive connections outlive any test (see headwater.testing.scimserver).
KEEP_ALIVE_SECONDS = 120


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m headwater.testing.servers.django_scim",
        description="Serve django-scim2's SCIM 2.0 views over SQLite under uvicorn.",
    )
    parser.add_argument("--host", default=LOOPBACK, help="listen address (default 127.0.0.1)")
    place = parser.add_mutually_exclusive_group(required=True)
    place.add_argument("--port", type=int, help="listen on this TCP port")
    place.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument(
        "--bearer-token", action="append", default=[], help="accepted token (repeatable)"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="django-scim-") as data_dir:
        os.environ["DJANGO_SCIM_DATA_DIR"] = data_dir
        os.environ["DJANGO_SCIM_BEARER_TOKENS"] = "\n".join(args.bearer_token)
        os.environ["DJANGO_SETTINGS_MODULE"] = "headwater.testing.servers.django_scim.settings"
        serve(args.host, args.port, args.fd, args.log_level)


def serve(host: str, port: int | None, fd: int | None, log_level: str) -> None:
    import uvicorn
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command

    application = get_asgi_application()  # sets Django up
    call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
    config = uvicorn.Config(
        application,
        host=host,
        port=port or 0,
        log_level=log_level,
        access_log=False,
        lifespan="off",  # Django's ASGI application has no lifespan protocol
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    if fd is None:
        server.run()
        return
    sock = socket.socket(fileno=fd)
    with contextlib.closing(sock):
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
