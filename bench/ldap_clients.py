"""LDAP client libraries compared: ldap3 (the connector's, on threads) against bonsai (a C
extension over libldap with an asyncio API), each sending the connector's account pattern to a
throwaway slapd: a search by ``uid``, then an add, per account, on 2 connections at once.
Prints wall time and this process's CPU per account for each, and their ratios.

    python -m bench.ldap_clients [--users 2000] [--rounds 2]

Not part of ``bench.run``: it needs slapd and bonsai, which builds from source only with the
OpenLDAP and SASL headers (``apt-get install libldap2-dev libsasl2-dev``, then
``pip install bonsai==1.5.5``). Rounds alternate the two libraries; the ratios are the medians
of each round's pair (the machine's load drifts between rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from headwater.testing.slapd import Slapd

__all__ = ["main"]

#: Connections used at once by each library (the bench/ldap.py default concurrency).
LANES = 2


def _attributes(uid: str) -> dict[str, Any]:
    return {"uid": uid, "cn": uid, "sn": "Bench", "mail": f"{uid}@example.com"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_ldap3(server: Slapd, prefix: str, users: int) -> None:
    def lane(numbers: range) -> None:
        with server.connect() as conn:
            for number in numbers:
                uid = f"{prefix}{number:06d}"
                conn.search(server.people_base, f"(uid={uid})", attributes=["entryUUID"])
                conn.add(f"uid={uid},{server.people_base}", ["inetOrgPerson"], _attributes(uid))

    with ThreadPoolExecutor(LANES) as pool:
        list(pool.map(lane, [range(k, users, LANES) for k in range(LANES)]))


def with_bonsai(server: Slapd, prefix: str, users: int) -> None:
    import bonsai  # type: ignore[import-not-found]  # optional: see the module docstring

    async def run() -> None:
        client = bonsai.LDAPClient(server.url)
        client.set_credentials("SIMPLE", user=server.root_dn, password=server.root_password)

        async def lane(numbers: range) -> None:
            async with client.connect(is_async=True) as conn:
                for number in numbers:
                    uid = f"{prefix}{number:06d}"
                    scope = bonsai.LDAPSearchScope.ONELEVEL
                    await conn.search(server.people_base, scope, f"(uid={uid})", ["entryUUID"])
                    entry = bonsai.LDAPEntry(f"uid={uid},{server.people_base}")
                    entry["objectClass"] = ["top", "inetOrgPerson"]
                    for name, value in _attributes(uid).items():
                        entry[name] = value
                    await conn.add(entry)

        await asyncio.gather(*(lane(range(k, users, LANES)) for k in range(LANES)))

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ldap_clients")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    clients: dict[str, Callable[[Slapd, str, int], None]] = {
        "ldap3": with_ldap3,
        "bonsai": with_bonsai,
    }
    rounds: list[dict[str, tuple[float, float]]] = []
    with Slapd() as server:
        for round_number in range(args.rounds):
            measured: dict[str, tuple[float, float]] = {}
            for name, send in clients.items():
                cpu, began = _cpu(), time.perf_counter()
                send(server, f"{name[0]}{round_number}u", args.users)
                wall, used = time.perf_counter() - began, (_cpu() - cpu) * 1000 / args.users
                print(f"{name} round {round_number + 1}: {wall:.2f} s, {used:.3f} ms cpu/account")
                measured[name] = (wall, used)
            rounds.append(measured)
    walls = [r["bonsai"][0] / r["ldap3"][0] for r in rounds]
    cpus = [r["bonsai"][1] / r["ldap3"][1] for r in rounds]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"ratio ldap_clients: wall bonsai / ldap3 = {wall:.2f}x (median of the rounds)")
    print(f"ratio ldap_clients: client cpu bonsai / ldap3 = {cpu:.2f}x (median of the rounds)")


if __name__ == "__main__":
    main()
