"""A throwaway Samba Active Directory domain controller, for the AD dialect's tests.

Each :class:`SambaDC` provisions a new domain (``HW.TEST``) into its own temporary folder,
runs ``samba`` in the foreground with only its LDAP service, and removes everything when
closed. Samba's LDAP ports are fixed (389 and 636), so each server listens on an address of its
own on the loopback interface: parallel test workers get one each (``address_for_worker``), and
the address is added to ``lo`` when it is missing (which needs the right to change interfaces).
Samba's server certificate is replaced by one from :func:`make_ca` for that address, so a
client verifies it as it would any directory's. The server runs in a process group of its own
and the whole group is stopped on close.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import ldap3
from ldap3.core import exceptions as lx

from headwater.connectors.ldap import close_quietly
from headwater.testing.slapd import make_ca

__all__ = ["SAMBA", "SAMBA_TOOL", "SambaDC", "address_for_worker", "samba_missing"]

SAMBA = os.environ.get("HEADWATER_SAMBA", "/usr/sbin/samba")
SAMBA_TOOL = os.environ.get("HEADWATER_SAMBA_TOOL", "/usr/bin/samba-tool")
REALM = "HW.TEST"
DOMAIN = "HW"
SUFFIX = "DC=hw,DC=test"
START_TIMEOUT = 90.0


def samba_missing() -> str | None:
    """Why a Samba AD DC cannot be started here, or None when it can."""
    for path in (SAMBA, SAMBA_TOOL):
        if not Path(path).is_file():
            return (
                f"{path} is not installed (Debian: apt-get install samba samba-ad-dc "
                "samba-ad-provision winbind)"
            )
    return None


def address_for_worker(worker: str | None = None) -> str:
    """A loopback address of its own for a pytest-xdist worker (``gw0`` -> 127.0.0.40...)."""
    name = worker if worker is not None else os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = "".join(c for c in name if c.isdigit()) or "0"
    return f"127.0.0.{40 + int(digits) % 200}"


def _ensure_address(address: str) -> bool:
    """Put ``address`` on ``lo`` if it is not there; True when it was added here."""
    shown = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if f"inet {address}/" in shown.stdout:
        return False
    added = subprocess.run(
        ["ip", "addr", "add", f"{address}/32", "dev", "lo"],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise RuntimeError(
            f"cannot add {address} to the loopback interface for Samba (its LDAP ports are "
            f"fixed, so each server needs an address of its own): {added.stderr.strip()}"
        )
    return True


class SambaDC:
    """One throwaway AD domain controller: ``url`` (LDAPS), ``bind_dn``/``password``,
    ``ca_pem``, and the domain's ``suffix``."""

    def __init__(
        self,
        address: str | None = None,
        *,
        password: str = "Hw-Admin-Passw0rd!",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.address = address or address_for_worker()
        self.suffix = SUFFIX
        self.bind_dn = f"CN=Administrator,CN=Users,{SUFFIX}"
        self.password = password
        self.start_timeout = start_timeout
        self.ca_pem: str | None = None
        self._folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._added_address = False

    @property
    def url(self) -> str:
        return f"ldaps://{self.address}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _provision(self, folder: Path) -> Path:
        result = subprocess.run(
            [
                SAMBA_TOOL,
                "domain",
                "provision",
                f"--targetdir={folder}",
                f"--realm={REALM}",
                f"--domain={DOMAIN}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--adminpass={self.password}",
                "--use-rfc2307",
                f"--option=interfaces={self.address}",
                "--option=bind interfaces only=yes",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"samba-tool domain provision failed:\n{result.stderr[-4000:]}")
        ca_pem, cert, key = make_ca(folder, "Headwater Samba test CA", address=self.address)
        self.ca_pem = ca_pem
        (folder / "ca.pem").write_text(ca_pem)
        (folder / "pid").mkdir(exist_ok=True)
        config = folder / "etc" / "smb.conf"
        lines = config.read_text().splitlines()
        extra = [
            "\tserver services = ldap",
            f"\tpid directory = {folder / 'pid'}",
            f"\tlog file = {folder / 'samba.log'}",
            "\ttls enabled = yes",
            f"\ttls certfile = {cert}",
            f"\ttls keyfile = {key}",
            f"\ttls cafile = {folder / 'ca.pem'}",
        ]
        kept = [
            line
            for line in lines
            if not line.strip().startswith(("server services", "log file", "pid directory"))
        ]
        at = kept.index("[global]") + 1
        config.write_text("\n".join([*kept[:at], *extra, *kept[at:]]) + "\n")
        return config

    def start(self) -> Self:
        """Provision a new domain and start the server; returns once LDAPS answers a bind."""
        if self.running:
            return self
        problem = samba_missing()
        if problem:
            raise RuntimeError(problem)
        self._added_address = _ensure_address(self.address) or self._added_address
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hw-samba-"))
            self._provision(self._folder)
        folder = self._folder
        self._output = open(folder / "samba.out", "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [SAMBA, "-i", "-s", str(folder / "etc" / "smb.conf")],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        problem = "no answer"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"samba exited at start:\n{self.log()[-4000:]}")
            try:
                with self.connect(timeout=2):
                    return
            except (lx.LDAPException, OSError) as exc:
                problem = str(exc)
                time.sleep(0.2)
        raise RuntimeError(f"samba did not answer LDAPS within {self.start_timeout:g} s: {problem}")

    def log(self) -> str:
        if self._folder is None:
            return ""
        parts = []
        for name in ("samba.out", "samba.log"):
            path = self._folder / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    @contextlib.contextmanager
    def connect(self, *, timeout: float = 10) -> Iterator[ldap3.Connection]:
        """A bound ldap3 connection as the domain's Administrator over LDAPS (for set-up and
        checks), closed on leaving. Range retrieval is left to the caller."""
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_data=self.ca_pem,
            valid_names=[self.address],
        )
        server = ldap3.Server(
            self.address,
            port=636,
            use_ssl=True,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=timeout,
        )
        conn = ldap3.Connection(
            server,
            user=self.bind_dn,
            password=self.password,
            raise_exceptions=True,
            receive_timeout=int(max(timeout, 10)),
            auto_range=False,
            return_empty_attributes=False,
        )
        try:
            conn.open()
            conn.bind()
        except BaseException:
            close_quietly(conn)
            raise
        try:
            yield conn
        finally:
            conn.unbind()

    def new_ou(self, prefix: str = "t") -> str:
        """A fresh organizational unit under the domain (a test's own corner), with ``people``,
        ``groups`` and ``disabled`` OUs inside; returns its DN."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        top = f"OU={name},{self.suffix}"
        with self.connect() as conn:
            conn.add(top, ["top", "organizationalUnit"], {"ou": name})
            for child in ("people", "groups", "disabled"):
                conn.add(f"OU={child},{top}", ["top", "organizationalUnit"], {"ou": child})
        return top

    def stop(self) -> None:
        """Stop the server and every process it forked (its whole process group)."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Children that outlived the leader are still in its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._output is not None:
            self._output.close()
            self._output = None

    def close(self) -> None:
        """Stop for good, remove the folder, and take away an address added here."""
        self.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if self._added_address:
            subprocess.run(
                ["ip", "addr", "del", f"{self.address}/32", "dev", "lo"],
                capture_output=True,
                check=False,
            )
            self._added_address = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
