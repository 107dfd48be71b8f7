"""LDAP push: accounts and one group of all of them pushed into a throwaway slapd by the engine,
against a floor of the same LDAP writes sent by a bare ldap3 client (one add per entry, the
group's members in modify batches of the same size, one connection). Prints both, their ratio,
and the LDAP requests each sent.

    python -m bench.ldap [--users 10000] [--batch 100] [--concurrency 2] [--repeat 1]

Each round measures the floor and then Headwater, each against a fresh slapd; with
``--repeat`` the rounds alternate and the best of each is kept (the machine's load drifts).
Not part of ``bench.run``: it needs slapd (``apt-get install slapd``).
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ldap3

from headwater.testing.slapd import Slapd
from headwater.testing.toolkit import (
    assign_group,
    converge,
    create_group,
    create_ldap_app,
    create_users,
    make_runtime,
    push_group,
)

_COUNTED = ("search", "add", "modify", "modify_dn", "delete")


@contextmanager
def counted() -> Iterator[collections.Counter[str]]:
    """Count the LDAP requests ldap3 sends while inside (any connection, any thread)."""
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    originals = {name: getattr(ldap3.Connection, name) for name in _COUNTED}

    def wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: ldap3.Connection, *args: Any, **kwargs: Any) -> Any:
            with lock:
                counts[name] += 1
            return original(self, *args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(ldap3.Connection, name, wrapper(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(ldap3.Connection, name, original)


def engine_seconds(
    accounts: int, batch: int, concurrency: int
) -> tuple[float, collections.Counter[str]]:
    """Seconds from the assignment and push to a converged directory (worker drained)."""
    with tempfile.TemporaryDirectory() as folder, Slapd() as server:
        runtime = make_runtime(f"sqlite:///{Path(folder) / 'hw.db'}", Path(folder))
        try:
            users = create_users(runtime, accounts)
            group = create_group(runtime, "Everyone", users)
            app = create_ldap_app(
                runtime, server, membership_batch_size=batch, max_concurrency=concurrency
            )
            with counted() as counts:
                started = time.perf_counter()
                assign_group(runtime, app, group)
                push_group(runtime, app, group)
                converge(runtime, timeout=3600)
                took = time.perf_counter() - started
            with server.connect() as conn:
                entries = conn.extend.standard.paged_search(
                    server.people_base,
                    "(objectClass=inetOrgPerson)",
                    attributes=["uid"],
                    paged_size=1000,
                    generator=False,
                )
                found = len([e for e in entries if e.get("type") == "searchResEntry"])
                conn.search(server.groups_base, "(cn=Everyone)", attributes=["member"])
                members = len(conn.entries[0]["member"].values) if conn.entries else 0
            if found != accounts or members != accounts:
                raise SystemExit(f"{found} entries and {members} members of {accounts}")
            return took, counts
        finally:
            runtime.close()


def floor_seconds(accounts: int, batch: int) -> tuple[float, collections.Counter[str]]:
    """The same entries and memberships written by one bare, bound ldap3 connection."""
    with Slapd() as server, server.connect() as conn, counted() as counts:
        started = time.perf_counter()
        dns = []
        for i in range(accounts):
            uid = f"user{i:06d}@example.com"
            dn = f"uid={uid},{server.people_base}"
            conn.add(
                dn,
                ["top", "person", "organizationalPerson", "inetOrgPerson"],
                {"uid": uid, "cn": f"User {i}", "sn": f"{i}", "givenName": "User", "mail": uid},
            )
            dns.append(dn)
        group = f"cn=Everyone,{server.groups_base}"
        conn.add(group, ["top", "groupOfNames"], {"cn": "Everyone", "member": [""]})
        for start in range(0, len(dns), batch):
            change: list[tuple[str, list[str]]] = [(ldap3.MODIFY_ADD, dns[start : start + batch])]
            if start == 0:
                change.append((ldap3.MODIFY_DELETE, [""]))
            conn.modify(group, {"member": change})
        return time.perf_counter() - started, collections.Counter(counts)


def _requests(counts: collections.Counter[str]) -> str:
    return ", ".join(f"{counts[name]} {name}" for name in _COUNTED if counts[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", "--accounts", dest="users", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="members per modify")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="the app's maxConcurrency (LDAP operations)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best of each is kept")
    args = parser.parse_args()
    floors, engines = [], []
    for round_ in range(1, max(1, args.repeat) + 1):
        floor, floor_counts = floor_seconds(args.users, args.batch)
        engine, engine_counts = engine_seconds(args.users, args.batch, args.concurrency)
        floors.append(floor)
        engines.append(engine)
        print(f"round {round_}: bare {floor:.2f} s, headwater {engine:.2f} s")
    floor, engine = min(floors), min(engines)
    print(f"bare ldap3: {args.users} entries + group in {floor:.2f} s ({_requests(floor_counts)})")
    print(
        f"headwater:  {args.users} entries + group in {engine:.2f} s "
        f"({_requests(engine_counts)}; maxConcurrency {args.concurrency})"
    )
    print(f"ratio ldap: {engine:.2f} / {floor:.2f} = {engine / floor:.2f}x")


if __name__ == "__main__":
    main()
