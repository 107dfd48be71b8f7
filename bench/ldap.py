"""LDAP push: accounts and one group of all of them pushed into a throwaway slapd by the engine,
against a floor of the same LDAP writes sent by a bare ldap3 client (one add per entry, the
group's members in modify batches of the same size). Prints both and their ratio.

    python -m bench.ldap [--accounts 1000] [--batch 100]

Not part of ``bench.run`` yet: it needs slapd (``apt-get install slapd``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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


def engine_seconds(accounts: int, batch: int) -> float:
    """Seconds from the assignment and push to a converged directory (worker drained)."""
    with tempfile.TemporaryDirectory() as folder, Slapd() as server:
        runtime = make_runtime(f"sqlite:///{Path(folder) / 'hw.db'}", Path(folder))
        try:
            users = create_users(runtime, accounts)
            group = create_group(runtime, "Everyone", users)
            app = create_ldap_app(runtime, server, membership_batch_size=batch, max_concurrency=4)
            started = time.perf_counter()
            assign_group(runtime, app, group)
            push_group(runtime, app, group)
            converge(runtime, timeout=3600)
            took = time.perf_counter() - started
            with server.connect() as conn:
                conn.search(server.people_base, "(objectClass=inetOrgPerson)", attributes=["uid"])
                if len(conn.entries) != accounts:
                    raise SystemExit(f"only {len(conn.entries)} of {accounts} entries")
            return took
        finally:
            runtime.close()


def floor_seconds(accounts: int, batch: int) -> float:
    """The same entries and memberships written by one bare, bound ldap3 connection."""
    with Slapd() as server, server.connect() as conn:
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
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    floor = floor_seconds(args.accounts, args.batch)
    engine = engine_seconds(args.accounts, args.batch)
    print(f"bare ldap3: {args.accounts} entries + group in {floor:.2f} s")
    print(f"headwater:  {args.accounts} entries + group in {engine:.2f} s")
    print(f"ratio ldap: {engine:.2f} / {floor:.2f} = {engine / floor:.2f}x")


if __name__ == "__main__":
    main()
