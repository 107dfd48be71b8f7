"""``app_import``: import and match what an app already holds, on SQLite, against scim2-server.

The app is a scim2-server served in-process (no sockets; pages of at most 100 accounts, as the
app-import tests grant), pre-filled with N accounts: 80% carry the email of a directory user
(matched by the app's email rule), 20% belong to nobody (unmatched). Timed, each with a fresh
worker draining the queue as ``headwater worker`` does: the import (every account and group
read, matched and stored), then the confirmation (every match linked, nothing created
downstream). Baseline in the same run: reading every account with the same connector's paged
listing alone, nothing stored or matched. Figures: accounts/s, requests per account.

``python -m bench.app_import [--quick] [--accounts N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.common import SECRET_KEY, Context, Databases, Mode, Report
from bench.common import require_complete as require
from headwater.db import tables as t
from headwater.db.events import SYSTEM
from headwater.runtime import Runtime
from headwater.services import app_imports
from headwater.testing.toolkit import (
    InProcessScim,
    converge,
    create_scim_app,
    create_users,
    make_runtime,
    numbered_profile,
    run_async,
    scim_user,
)

__all__ = ["run"]

NAME = "app_import"
PAGE = 100
MATCHING_SHARE = 0.8


def _accounts(ctx: Context) -> int:
    return {"quick": 200, "default": 2_000}.get(ctx.mode.name, 10_000)


def _fill(downstream: InProcessScim, bodies: list[dict[str, Any]]) -> None:
    """Create the accounts in the server directly (as the app held them before Headwater)."""

    async def create_all() -> None:
        transport = httpx.ASGITransport(app=downstream.app)
        headers = downstream.scim.headers
        async with httpx.AsyncClient(transport=transport, headers=headers) as client:
            limit = asyncio.Semaphore(16)

            async def one(body: dict[str, Any]) -> None:
                async with limit:
                    response = await client.post(f"{downstream.base_url}/Users", json=body)
                    response.raise_for_status()

            await asyncio.gather(*(one(body) for body in bodies))

    run_async(create_all)


def _read_floor(downstream: InProcessScim, count: int) -> tuple[float, int]:
    """Seconds to read every account page by page with a bare connector, and how many."""

    async def read() -> int:
        connector = downstream.connector()
        try:
            seen, start = 0, 1
            while True:
                page = await connector.list_accounts(start, PAGE)
                seen += len(page.items)
                start += len(page.items)
                if not page.items or seen >= count:
                    return seen
        finally:
            await downstream.aclose()

    started = time.perf_counter()
    seen = run_async(read)
    return time.perf_counter() - started, seen


def _import_row(runtime: Runtime, app_id: str, import_id: str) -> t.AppImport:
    with runtime.database.read() as session:
        row = app_imports.get_import(session, app_id, import_id)
        session.expunge(row)
    return row


def _linked(runtime: Runtime, app_id: str) -> int:
    with runtime.database.read() as session:
        query = (
            select(func.count()).select_from(t.AppUserLink).where(t.AppUserLink.app_id == app_id)
        )
        return int(session.execute(query).scalar_one())


def run(ctx: Context, accounts: int | None = None) -> None:
    count = accounts or _accounts(ctx)
    matching = int(count * MATCHING_SHARE)
    report = ctx.report
    report.section(f"app_import: import and match an app holding {count:,} accounts (SQLite)")
    folder = ctx.data_dir(f"app-import-{count}")
    runtime = make_runtime(ctx.databases.sqlite(), folder, secret_key=SECRET_KEY)
    try:
        downstream = InProcessScim(max_results=PAGE).serve(runtime)
        create_users(runtime, matching, prefix="person")
        bodies = [
            scim_user(
                f"acct-{i:06d}",
                active=True,
                emails=[{"value": numbered_profile("person", i)["email"], "primary": True}],
            )
            for i in range(matching)
        ]
        bodies += [
            scim_user(f"stray-{i:06d}", active=True, emails=[{"value": f"s{i}@elsewhere.example"}])
            for i in range(count - matching)
        ]
        _fill(downstream, bodies)
        app_id = create_scim_app(runtime, downstream.base_url, "Legacy CRM")

        floor, seen = _read_floor(downstream, count)
        require("accounts read by the connector alone", seen, count, "accounts")
        downstream.transport.clear()

        with runtime.database.transaction() as session:
            import_id = app_imports.start_import(session, SYSTEM, app_id).id
        started_cpu, started = time.process_time(), time.perf_counter()
        converge(runtime, timeout=600)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        reads = len(downstream.transport.sent)
        row = _import_row(runtime, app_id, import_id)
        require("accounts read by the import", row.accounts_read, count, "accounts")
        require("accounts matched", row.matched, matching, "matches")
        require("accounts unmatched", row.unmatched, count - matching, "unmatched accounts")

        downstream.transport.clear()
        with runtime.database.transaction() as session:
            app_imports.confirm(session, SYSTEM, app_id, import_id)
        started = time.perf_counter()
        converge(runtime, timeout=600)
        confirm_s = time.perf_counter() - started
        confirm_requests = len(downstream.transport.sent)
        creates = downstream.transport.count("POST", resource="Users")
        require("accounts created downstream by the confirmation", creates, 0, "creates")
        require("accounts linked by the confirmation", _linked(runtime, app_id), matching, "links")

        report.row(
            NAME,
            f"import and match {count:,} accounts",
            f"{elapsed:7.2f} s  {count / elapsed:8.0f} accounts/s  cpu {cpu:.2f} s  "
            f"{reads} requests ({reads / count:.3f} per account)",
            accounts=count,
            wall_s=elapsed,
            cpu_s=cpu,
            accounts_per_s=count / elapsed,
            requests=reads,
            requests_per_account=reads / count,
        )
        report.row(
            NAME,
            f"confirm {matching:,} matches",
            f"{confirm_s:7.2f} s  {matching / confirm_s:8.0f} links/s  "
            f"{confirm_requests} requests ({confirm_requests / matching:.2f} per link), "
            f"{creates} creates",
            links=matching,
            wall_s=confirm_s,
            links_per_s=matching / confirm_s,
            requests=confirm_requests,
            requests_per_link=confirm_requests / matching,
        )
        report.row(
            NAME,
            "floor: paged listing alone",
            f"{floor:7.2f} s  {count / floor:8.0f} accounts/s",
            wall_s=floor,
        )
        report.ratio(
            NAME,
            "import and match / reading the accounts alone",
            elapsed / floor,
            "what matching and storing add to reading the app",
        )
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.app_import", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 accounts instead of 2,000")
    parser.add_argument("--accounts", type=int, help="accounts the app holds")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)), args.accounts)
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
