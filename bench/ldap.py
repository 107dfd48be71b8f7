"""LDAP push: accounts and one group of all of them pushed into a throwaway slapd by the engine,
against two floors sent by a bare ldap3 client on one connection: the writes alone (one add per
entry, the group's members in modify batches of the same size), and the same plus what linking
needs (a look-up search per 100 names before their adds, the new entry's id from each add's
Post-Read control), which are the operations Headwater sends but for resolving member DNs.
A third floor sends the linking floor's look-ups and adds on as many connections as the app's
``maxConcurrency`` gives Headwater (the stricter comparison). Prints each, the ratios, and the
LDAP requests each sent.

    python -m bench.ldap [--users 10000] [--batch 100] [--concurrency 8] [--repeat 1]

Each round measures the floors and then Headwater, each against a fresh slapd; with
``--repeat`` the rounds alternate and the best of each is kept (the machine's load drifts).
Not part of ``bench.run``: it needs slapd (``apt-get install slapd``)."""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import ldap3
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.conv import escape_filter_chars

from headwater.connectors import ldap_wire
from headwater.domain.settings import ProvisioningSettings
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
_POST_READ = "1.3.6.1.1.13.2"
#: Names per look-up search (the connector's default ``lookupBatchSize``).
LOOKUP_BATCH = 100


@contextmanager
def counted() -> Iterator[collections.Counter[str]]:
    """Count the LDAP requests sent while inside (any connection, any thread)."""
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
    # The connector's adds and many-valued searches bypass ldap3's (they are encoded by hand).
    by_hand = {name: getattr(ldap_wire, name) for name in ("add", "search")}
    for name, original in by_hand.items():
        setattr(ldap_wire, name, wrapper(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(ldap3.Connection, name, original)
        for name, original in by_hand.items():
            setattr(ldap_wire, name, original)


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


def floor_seconds(
    accounts: int, batch: int, *, linking: bool = False, connections: int = 1
) -> tuple[float, collections.Counter[str]]:
    """The same entries and memberships written by a bare, bound ldap3 client.

    ``linking``: also what any provisioner that links rather than duplicates must send, as
    Headwater does: before each ``LOOKUP_BATCH`` adds, one search for those names (the filter
    Headwater's batched look-up sends), and each add asks for the new entry's ``entryUUID``
    with the Post-Read control (the id a link keys on). Without it: the writes alone.
    ``connections``: the look-ups and adds spread over that many connections, each in a thread
    of its own taking the next hundred names (as Headwater's ``maxConcurrency`` does); the
    group's modifies go one after another on one connection in every case."""
    attributes = ["entryUUID", "uid", "pwdAccountLockedTime"]
    read = [post_read_control(attributes)] if linking else None  # built once, as Headwater does
    uids = [f"user{i:06d}@example.com" for i in range(accounts)]
    starts = iter(range(0, accounts, LOOKUP_BATCH))
    taking = threading.Lock()

    def lane(conn: ldap3.Connection, people: str) -> None:
        while True:
            with taking:
                start = next(starts, None)
            if start is None:
                return
            chunk = uids[start : start + LOOKUP_BATCH]
            if linking:
                terms = "".join(f"(uid={escape_filter_chars(u)})" for u in chunk)
                conn.search(people, f"(&(objectClass=*)(|{terms}))", attributes=attributes)
                if conn.entries:
                    raise SystemExit("the floor's directory is not empty")
            for offset, uid in enumerate(chunk):
                i = start + offset
                conn.add(
                    f"uid={uid},{people}",
                    ["top", "person", "organizationalPerson", "inetOrgPerson"],
                    {"uid": uid, "cn": f"User {i}", "sn": f"{i}", "givenName": "User", "mail": uid},
                    controls=read,
                )
                if linking and not conn.result.get("controls", {}).get(_POST_READ):
                    raise SystemExit("slapd sent no Post-Read answer")

    with Slapd() as server, ExitStack() as stack, counted() as counts:
        conns = [stack.enter_context(server.connect()) for _ in range(max(1, connections))]
        started = time.perf_counter()
        if len(conns) == 1:
            lane(conns[0], server.people_base)
        else:
            with ThreadPoolExecutor(max_workers=len(conns)) as pool:
                for done in [pool.submit(lane, conn, server.people_base) for conn in conns]:
                    done.result()
        dns = [f"uid={uid},{server.people_base}" for uid in uids]
        conn = conns[0]
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
        "--concurrency",
        type=int,
        default=ProvisioningSettings().max_concurrency,
        help="the app's maxConcurrency (LDAP operations); default: an app's own default",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds; the best of each is kept, and each round's own ratio printed",
    )
    args = parser.parse_args()
    floors, linked, wide, engines = [], [], [], []
    lanes = max(1, args.concurrency)
    for round_ in range(1, max(1, args.repeat) + 1):
        floor, floor_counts = floor_seconds(args.users, args.batch)
        link, link_counts = floor_seconds(args.users, args.batch, linking=True)
        spread, _ = floor_seconds(args.users, args.batch, linking=True, connections=lanes)
        engine, engine_counts = engine_seconds(args.users, args.batch, args.concurrency)
        floors.append(floor)
        linked.append(link)
        wide.append(spread)
        engines.append(engine)
        print(
            f"round {round_}: bare writes {floor:.2f} s, bare linking {link:.2f} s, "
            f"bare linking on {lanes} connections {spread:.2f} s, headwater {engine:.2f} s"
        )
    floor, link, spread, engine = min(floors), min(linked), min(wide), min(engines)
    print(f"bare ldap3, writes only: {floor:.2f} s ({_requests(floor_counts)})")
    print(f"bare ldap3, linking:     {link:.2f} s ({_requests(link_counts)}, Post-Read on adds)")
    print(f"bare ldap3, linking on {lanes} connections: {spread:.2f} s")
    print(
        f"headwater:               {engine:.2f} s "
        f"({_requests(engine_counts)}; maxConcurrency {args.concurrency})"
    )
    print(f"ratio ldap: {engine:.2f} / {link:.2f} = {engine / link:.2f}x (the linking floor)")
    print(f"ratio ldap-writes: {engine:.2f} / {floor:.2f} = {engine / floor:.2f}x (writes only)")
    print(
        f"ratio ldap-same-concurrency: {engine:.2f} / {spread:.2f} = {engine / spread:.2f}x "
        f"(the linking floor on {lanes} connections, as many as Headwater's)"
    )
    if len(engines) > 1:
        # A round's floor and Headwater run back to back: the machine's drift disturbs a
        # round's own ratio least.
        rounds = [e / w for e, w in zip(engines, wide, strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in rounds)
        print(
            f"ratio ldap-same-concurrency by round: {listed}; "
            f"median {statistics.median(rounds):.2f}x"
        )


if __name__ == "__main__":
    main()
