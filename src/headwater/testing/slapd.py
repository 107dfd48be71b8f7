"""A throwaway OpenLDAP ``slapd`` on a loopback port, for tests, benchmarks and the demo.

Each :class:`Slapd` writes a ``slapd.conf`` and an empty mdb database in its own temporary
folder, starts ``slapd`` in the foreground on a free high port (privileged ports may not be
bindable here, and a system slapd on 389 is never touched), seeds the suffix with
``ou=people`` and ``ou=groups``, and removes everything when stopped for good. ``stop`` and
``start`` keep the database, so fault tests can take the directory away mid-run and bring it
back with its entries. The ``memberof`` and ``ppolicy`` overlays are loaded when the modules are
installed (Debian ships them in ``/usr/lib/ldap``); ``overlays`` says which were.

With ``tls`` a self-signed CA and a server certificate for ``127.0.0.1``/``localhost`` are made
at start, and the server also listens for LDAPS; ``ca_pem`` is the CA a client must trust.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import ldap3

__all__ = ["SLAPD", "DirectoryReader", "Slapd", "make_ca", "slapd_missing"]

SLAPD = os.environ.get("HEADWATER_SLAPD", "/usr/sbin/slapd")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0


def slapd_missing() -> str | None:
    """Why a slapd cannot be started here, or None when it can."""
    if not Path(SLAPD).is_file():
        return f"{SLAPD} is not installed (Debian: apt-get install slapd ldap-utils)"
    if not (SCHEMA_DIR / "inetorgperson.schema").is_file():
        return f"{SCHEMA_DIR} has no inetorgperson.schema"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _module(name: str) -> bool:
    return (MODULE_DIR / f"{name}.la").exists() or (MODULE_DIR / f"{name}.so").exists()


def make_ca(
    folder: Path, name: str = "Headwater test CA", *, address: str = LOOPBACK
) -> tuple[str, str, str]:
    """A self-signed CA and a server certificate for ``address`` (127.0.0.1 unless told) and
    localhost, written to ``folder``; returns (CA PEM, server certificate path, server key
    path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(address))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert_path = folder / "server.crt"
    key_path = folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_pem, str(cert_path), str(key_path)


class Slapd:
    """One throwaway directory server: ``url``, ``root_dn``/``root_password``, the two bases."""

    def __init__(
        self,
        *,
        suffix: str = "dc=example,dc=org",
        root_password: str = "hw-root-secret",
        tls: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.suffix = suffix
        self.root_dn = f"cn=admin,{suffix}"
        #: A service account's DN that may write everywhere once it is added (with a
        #: ``userPassword``): for tests that change a bind password under Headwater.
        self.service_dn = f"cn=headwater,{suffix}"
        self.root_password = root_password
        self.people_base = f"ou=people,{suffix}"
        self.groups_base = f"ou=groups,{suffix}"
        self.disabled_base = f"ou=disabled,{suffix}"
        self.tls = tls
        self.start_timeout = start_timeout
        self.ca_pem: str | None = None
        self.overlays: tuple[str, ...] = ()
        self._folder: Path | None = None
        self._port: int | None = None
        self._tls_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._seeded = False

    # -- where it is ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("slapd has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self._tls_port is None:
            raise RuntimeError("slapd was not started with tls=True")
        return f"ldaps://localhost:{self._tls_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- life -------------------------------------------------------------------------------

    def _write_config(self, folder: Path) -> Path:
        (folder / "db").mkdir(exist_ok=True)
        modules = [m for m in ("back_mdb", "memberof", "ppolicy") if _module(m)]
        self.overlays = tuple(m for m in modules if m != "back_mdb")
        schemas = ["core", "cosine", "inetorgperson", "nis"]
        lines = [f"include {SCHEMA_DIR / name}.schema" for name in schemas]
        lines += [
            f"pidfile {folder / 'slapd.pid'}",
            f"argsfile {folder / 'slapd.args'}",
            f"modulepath {MODULE_DIR}",
            *(f"moduleload {m}" for m in modules),
        ]
        if self.tls:
            self.ca_pem, cert, key = make_ca(folder)
            (folder / "ca.pem").write_text(self.ca_pem)
            lines += [
                f"TLSCACertificateFile {folder / 'ca.pem'}",
                f"TLSCertificateFile {cert}",
                f"TLSCertificateKeyFile {key}",
            ]
        lines += [
            "database mdb",
            "maxsize 268435456",
            f'suffix "{self.suffix}"',
            f'rootdn "{self.root_dn}"',
            f"rootpw {self.root_password}",
            f"directory {folder / 'db'}",
            "index objectClass eq",
            "index uid,cn,mail eq",
            "index entryUUID eq",
            "index member eq",
            "access to attrs=userPassword",
            f'    by dn.exact="{self.service_dn}" write',
            "    by self write",
            "    by anonymous auth",
            "    by * none",
            "access to *",
            f'    by dn.exact="{self.service_dn}" write',
            "    by * read",
        ]
        if "memberof" in self.overlays:
            lines += [
                "overlay memberof",
                "memberof-group-oc groupOfNames",
                "memberof-member-ad member",
                "memberof-refint true",
            ]
        if "ppolicy" in self.overlays:
            lines += ["overlay ppolicy"]
        config = folder / "slapd.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> Self:
        """Start slapd (a new database the first time, the same one after a ``stop``)."""
        if self.running:
            return self
        problem = slapd_missing()
        if problem:
            raise RuntimeError(problem)
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hw-slapd-"))
            self._write_config(self._folder)
            self._port = _free_port()
            if self.tls:
                self._tls_port = _free_port()
        folder = self._folder
        urls = f"ldap://{LOOPBACK}:{self.port}/"
        if self._tls_port is not None:
            urls += f" ldaps://{LOOPBACK}:{self._tls_port}/"
        self._output = open(folder / "slapd.log", "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [SLAPD, "-f", str(folder / "slapd.conf"), "-h", urls, "-d", "0"],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()
        if not self._seeded:
            self._seed()
            self._seeded = True
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"slapd exited at start:\n{self.log()[-4000:]}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen within {self.start_timeout:g} s")

    def log(self) -> str:
        if self._folder is None:
            return ""
        path = self._folder / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _seed(self) -> None:
        with self.connect() as conn:
            top = self.suffix.split(",")[0].split("=", 1)[1]
            conn.add(self.suffix, ["top", "dcObject", "organization"], {"o": top, "dc": top})
            for base in (self.people_base, self.groups_base, self.disabled_base):
                name = base.split(",")[0].split("=", 1)[1]
                conn.add(base, ["top", "organizationalUnit"], {"ou": name})

    @contextlib.contextmanager
    def connect(self) -> Iterator[ldap3.Connection]:
        """A bound, synchronous ldap3 connection as the root DN (for checks and set-up),
        closed on leaving."""
        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=5)
        conn = ldap3.Connection(
            server,
            user=self.root_dn,
            password=self.root_password,
            auto_bind=True,
            raise_exceptions=True,
            receive_timeout=10,
        )
        try:
            yield conn
        finally:
            conn.unbind()

    def stop(self) -> None:
        """Stop the server, keeping its database (``start`` brings it back as it was)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._output is not None:
            self._output.close()
            self._output = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop for good and remove the folder and its database."""
        self.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DirectoryReader:
    """What a :class:`Slapd` holds, read with a connection of its own (as the root DN), the
    way a test checks a downstream independently of the connector under test."""

    def __init__(self, server: Slapd) -> None:
        self.server = server

    def people(self) -> dict[str, dict[str, list[str]]]:
        """uid -> every attribute (operational too, and the DN as ``dn``) of each
        ``inetOrgPerson`` under the people and disabled bases; two entries with one uid fail."""
        found: dict[str, dict[str, list[str]]] = {}
        with self.server.connect() as conn:
            for base in (self.server.people_base, self.server.disabled_base):
                conn.search(base, "(objectClass=inetOrgPerson)", attributes=["*", "+"])
                for entry in conn.entries:
                    values = {k: [str(v) for v in entry[k].values] for k in entry.entry_attributes}
                    values["dn"] = [entry.entry_dn]
                    uid = values["uid"][0]
                    if uid in found:
                        raise AssertionError(f"two entries for {uid}")
                    found[uid] = values
        return found

    def active(self, uid: str) -> bool:
        """Not locked by ``pwdAccountLockedTime`` and not under the disabled base."""
        entry = self.people()[uid]
        moved = entry["dn"][0].lower().endswith("," + self.server.disabled_base.lower())
        return "pwdAccountLockedTime" not in entry and not moved

    def groups(self) -> dict[str, tuple[str, set[str]]]:
        """The RDN's cn -> (entryUUID, member uids; a DN naming no person stays a DN), of
        ``groupOfNames`` and ``groupOfUniqueNames`` entries alike."""
        uids = {p["dn"][0].lower(): uid for uid, p in self.people().items()}
        found: dict[str, tuple[str, set[str]]] = {}
        with self.server.connect() as conn:
            conn.search(
                self.server.groups_base,
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                attributes=["cn", "member", "uniqueMember", "entryUUID"],
            )
            for entry in conn.entries:
                name = entry.entry_dn.split(",")[0].split("=", 1)[1]
                held = [
                    str(m)
                    for attribute in ("member", "uniqueMember")
                    if attribute in entry.entry_attributes
                    for m in entry[attribute].values
                ]
                members = {uids.get(m.lower(), m) for m in held}
                found[name] = (str(entry["entryUUID"].value), members - {""})
        return found

    def members(self, name: str) -> set[str]:
        return self.groups()[name][1]
