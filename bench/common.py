"""Shared helpers: run sizes, the report, wall and CPU meters, databases, request counting.

Setting up a world (runtimes, users and groups through the services, apps with a SCIM
connection, API clients, converging) uses the test toolkit, ``headwater.testing.toolkit``, so
benchmarks and tests build their worlds the same way. What is here is only what measuring
needs, on a machine where client, server and database share the same cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from headwater.db.engine import Database
from headwater.db.migrate import upgrade
from headwater.runtime import Runtime
from headwater.testing.scimserver import free_port
from headwater.testing.toolkit import numbered_profile, scim_user, wait_for

__all__ = [
    "DIGITS",
    "MIB",
    "PG_URL",
    "SECRET_KEY",
    "Context",
    "Databases",
    "IncompleteRun",
    "Meter",
    "Mode",
    "PostgresUnavailable",
    "Report",
    "RequestCounter",
    "RssSampler",
    "Usage",
    "analyze",
    "fmt_ms",
    "login_of",
    "median",
    "median_run",
    "peak_rss",
    "percentile",
    "pg_database",
    "require_complete",
    "scim_user_body",
]

PG_URL = os.environ.get(
    "HEADWATER_BENCH_PG_URL",
    os.environ.get(
        "HEADWATER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
)
#: One key for the whole run, so worker subprocesses can read what the bench process wrote.
SECRET_KEY = Fernet.generate_key().decode()
#: Digits in the numbered logins of seeded users (``user000042@example.com``).
DIGITS = 6
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- Run sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """Sizes of one run: ``quick`` (smoke test), ``default``, or ``full``."""

    name: str
    directory_users: tuple[int, ...]
    provision_users: int
    push_members: int
    worker_users: int
    worker_counts: tuple[int, ...]
    latency_changes: int
    #: Repetitions of the cheap per-request measurements.
    samples: int
    #: Repetitions of whole ``provision`` and ``push`` runs (the median run is reported).
    runs: int
    #: Databases of the ``provision`` benchmark (``workers`` covers PostgreSQL by default).
    provision_databases: tuple[str, ...]
    #: API reads and writes timed, quiet and under a sign-in flood (``signin``).
    signin_requests: int = 200

    @classmethod
    def pick(cls, *, quick: bool, full: bool) -> Mode:
        if quick:
            return cls(
                "quick", (500,), 200, 200, 200, (1, 2), 10, 20, 1, ("sqlite", "postgresql"), 30
            )
        if full:
            return cls(
                "full",
                (10_000, 100_000),
                100_000,
                100_000,
                20_000,
                (1, 2, 4),
                50,
                300,
                1,
                ("sqlite", "postgresql"),
            )
        return cls("default", (10_000,), 10_000, 10_000, 3_000, (1, 2, 4), 50, 300, 1, ("sqlite",))


# --- Statistics and formatting -----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


class IncompleteRun(RuntimeError):
    """A measured run did less work than asked (fewer accounts or members downstream, keys left
    pending, failed requests). Its wall time would flatter it, so the benchmark stops there:
    ``bench.run`` exits non-zero and no ratio of that benchmark is printed or recorded."""


def require_complete(what: str, done: int, asked: int, unit: str) -> None:
    """Raise IncompleteRun unless ``done == asked``."""
    if done != asked:
        raise IncompleteRun(
            f"{what}: the downstream holds {done:,} {unit}, {asked:,} were asked for; "
            "a run that does less work than asked is not comparable"
        )


class _Timed(Protocol):
    @property
    def usage(self) -> Usage: ...


TimedRun = TypeVar("TimedRun", bound=_Timed)


def median_run(runs: Sequence[TimedRun]) -> TimedRun:
    """The run with the median wall time (the upper of the two middle ones for an even count)."""
    return sorted(runs, key=lambda run: run.usage.wall)[len(runs) // 2]


class Report:
    """Prints figures and ratios as they come, and keeps them for ``--json``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.ratios: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", flush=True)

    def line(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def row(self, bench: str, name: str, text: str, **data: Any) -> None:
        """One measured figure: printed as ``text``, stored with ``data``."""
        print(f"  {name:<34} {text}", flush=True)
        self.rows.append({"bench": bench, "name": name, **data})

    def ratio(self, bench: str, name: str, value: float, explain: str) -> None:
        """A ratio against a baseline measured in the same run."""
        print(f"ratio {bench}: {name} = {value:.2f}x   ({explain})", flush=True)
        self.ratios.append({"bench": bench, "name": name, "value": value, "explain": explain})

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)

    def dump(self, path: Path, meta: dict[str, Any]) -> None:
        body = {"meta": meta, "rows": self.rows, "ratios": self.ratios, "notes": self.notes}
        path.write_text(json.dumps(body, indent=2, default=str))


# --- CPU and wall time -------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _postgres_cpu(database: str) -> float:
    """CPU seconds of the live PostgreSQL backends serving ``database`` (other databases on
    the same server, and the server's background processes, are left out)."""
    total = 0.0
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_bytes().strip() != b"postgres":
                continue
            if marker not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        total += _proc_cpu(int(entry.name))
    return total


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine, all cores (from ``/proc/stat``)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _CLK_TCK


@dataclass
class Usage:
    """Wall time and CPU seconds spent during one measured interval."""

    wall: float = 0.0
    #: This process, every thread (API, worker, bare client: whichever runs here).
    cpu_self: float = 0.0
    #: Named subprocesses (the SCIM server, worker processes).
    cpu_procs: dict[str, float] = field(default_factory=dict)
    cpu_postgres: float = 0.0
    cpu_machine: float = 0.0

    def describe(self) -> str:
        parts = [f"wall {self.wall:7.2f} s", f"cpu here {self.cpu_self:6.2f} s"]
        parts += [f"{name} {cpu:6.2f} s" for name, cpu in self.cpu_procs.items()]
        if self.cpu_postgres:
            parts.append(f"postgres {self.cpu_postgres:5.2f} s")
        parts.append(f"machine {self.cpu_machine:6.2f} s")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall": self.wall,
            "cpu_self": self.cpu_self,
            "cpu_procs": dict(self.cpu_procs),
            "cpu_postgres": self.cpu_postgres,
            "cpu_machine": self.cpu_machine,
        }


class Meter:
    """Measures wall time and CPU (here, in named processes, postgres, machine-wide)."""

    def __init__(self, pids: dict[str, int] | None = None, *, postgres: str | None = None) -> None:
        """``postgres``: the name of the database whose backends' CPU to count."""
        self.pids = dict(pids or {})
        self.postgres = postgres
        self.usage = Usage()

    def __enter__(self) -> Meter:
        self._procs = {name: _proc_cpu(pid) for name, pid in self.pids.items()}
        self._pg = _postgres_cpu(self.postgres) if self.postgres else 0.0
        self._machine = _machine_busy()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        usage = self.usage
        usage.wall = time.perf_counter() - self._wall
        usage.cpu_self = time.process_time() - self._cpu
        usage.cpu_machine = _machine_busy() - self._machine
        usage.cpu_procs = {
            name: _proc_cpu(pid) - self._procs[name] for name, pid in self.pids.items()
        }
        if self.postgres:
            usage.cpu_postgres = _postgres_cpu(self.postgres) - self._pg


# --- Memory ------------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20


def _rss(pid: int | None = None) -> int:
    """The resident set of a process now, in bytes (this one by default; 0 once it is gone)."""
    try:
        statm = Path(f"/proc/{pid or 'self'}/statm").read_text()
    except OSError:
        return 0
    return int(statm.split()[1]) * _PAGE


def peak_rss(pid: int) -> int:
    """The highest resident set a live process has had so far (``VmHWM``), in bytes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's resident set every ``interval`` seconds while active, in a thread.

    ``VmHWM`` is the peak over the process's whole life; sampling bounds the peak to the
    measured interval (the drain), and ``before`` gives what the process held when it began,
    so growth during the interval can be told from what setting up the world cost.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.before = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _take(self) -> None:
        self.peak = max(self.peak, _rss(self.pid))
        self.samples += 1

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> RssSampler:
        self.before = self.peak = _rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    @property
    def growth(self) -> int:
        """Bytes the peak exceeds the resident set at the start."""
        return self.peak - self.before

    def as_dict(self) -> dict[str, float]:
        return {
            "rss_before_mib": self.before / MIB,
            "rss_peak_mib": self.peak / MIB,
            "rss_growth_mib": self.growth / MIB,
            "rss_samples": self.samples,
        }

    def describe(self) -> str:
        return (
            f"peak RSS {self.peak / MIB:.0f} MiB, {self.growth / MIB:+.0f} MiB over "
            f"{self.before / MIB:.0f} MiB before ({self.samples} samples every "
            f"{self.interval:g} s)"
        )


# --- Databases ---------------------------------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be reached: the PostgreSQL parts are skipped."""


class Databases:
    """Fresh databases for one run: SQLite files, PostgreSQL copies of a migrated template."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._count = 0
        self._template: str | None = None
        self._pg_names: list[str] = []
        self._pg_error: str | None = None

    def _admin(self) -> Any:
        return create_engine(PG_URL, isolation_level="AUTOCOMMIT")

    def sqlite(self) -> str:
        self._count += 1
        return f"sqlite:///{self.work_dir / f'bench-{self._count}.db'}"

    def postgres(self) -> str:
        """A fresh, migrated database; raises PostgresUnavailable when there is no server."""
        if self._pg_error is not None:
            raise PostgresUnavailable(self._pg_error)
        engine = self._admin()
        try:
            with engine.connect() as conn:
                if self._template is None:
                    name = f"hw_bench_tpl_{os.getpid()}"
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                    self._pg_names.append(name)
                    database = Database(self._pg_url(name))
                    upgrade(database)
                    database.dispose()
                    self._template = name
                self._count += 1
                name = f"hw_bench_{os.getpid()}_{self._count}"
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'))
                self._pg_names.insert(0, name)
        except PostgresUnavailable:
            raise
        except Exception as exc:  # any failure to reach the server
            self._pg_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            raise PostgresUnavailable(self._pg_error) from exc
        finally:
            engine.dispose()
        return self._pg_url(name)

    @staticmethod
    def _pg_url(name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop one PostgreSQL database early (big runs), or forget a SQLite file."""
        if url.startswith("sqlite"):
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            return
        name = make_url(url).database
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()
        if name in self._pg_names:
            self._pg_names.remove(name)

    def close(self) -> None:
        if not self._pg_names:
            return
        engine = self._admin()
        try:
            with engine.connect() as conn:
                for name in self._pg_names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # cleanup must not hide the results
            print(f"warning: could not drop benchmark databases: {exc}", file=sys.stderr)
        finally:
            engine.dispose()
        self._pg_names.clear()


def pg_database(runtime: Runtime) -> str | None:
    """The PostgreSQL database name of a runtime (None on SQLite), for ``Meter``."""
    if runtime.database.dialect != "postgresql":
        return None
    return runtime.database.engine.url.database


# --- Seeded users ------------------------------------------------------------------------------


def login_of(prefix: str, index: int) -> str:
    """The login the toolkit's ``create_users(..., prefix=prefix, digits=DIGITS)`` gives."""
    return numbered_profile(prefix, index, digits=DIGITS)["login"]


def analyze(runtime: Runtime) -> None:
    """Refresh planner statistics after bulk loads (as autovacuum would, eventually)."""
    with runtime.database.engine.connect() as conn:
        if runtime.database.dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()


# --- Requests ----------------------------------------------------------------------------------


class RequestCounter:
    """A connector hook counting downstream requests by ``METHOD path-template``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures = 0

    def __call__(
        self, _app_id: str, method: str, path: str, status: int | None, _seconds: float
    ) -> None:
        self.counts[f"{method} {path}"] += 1
        if status is None or status >= 400:
            self.failures += 1

    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        return ", ".join(f"{key} {n}" for key, n in sorted(self.counts.items()))


def scim_user_body(login: str, user_id: str, last_name: str) -> dict[str, Any]:
    """The SCIM User Headwater sends for a seeded user (same shape, for the bare clients)."""
    return scim_user(
        login,
        externalId=user_id,
        name={"familyName": last_name, "givenName": "User"},
        displayName=f"User {last_name}",
        active=True,
        emails=[{"value": login, "type": "work", "primary": True}],
    )


@dataclass
class Context:
    """What every benchmark gets: the sizes, the report, databases and a scratch folder."""

    mode: Mode
    report: Report
    databases: Databases
    work_dir: Path

    def data_dir(self, name: str) -> Path:
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# --- A real API process -------------------------------------------------------------------------


def headwater_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``headwater`` subprocess on database ``url``: this checkout's
    sources first on its path, the benchmarks' secret key, then ``extra``."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env.update(
        HEADWATER_DATABASE_URL=url,
        HEADWATER_SECRET_KEY=SECRET_KEY,
        HEADWATER_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p),
        **extra,
    )
    return env


@contextmanager
def served_api(
    url: str, data_dir: Path, profile: Path | None = None, *, checkout: Path | None = None
) -> Iterator[tuple[str, int]]:
    """``headwater serve --no-worker`` on a free loopback port (under cProfile when ``profile``
    names the output file; from another checkout's sources when ``checkout`` names one);
    yields its base URL and process id."""
    port = free_port()
    env = headwater_env(url, data_dir, HEADWATER_LOG_LEVEL="ERROR")
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout / "src")
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    command = [sys.executable, *profiler, "-m", "headwater", "serve", "--no-worker"]
    command += ["--port", str(port)]
    log_path = data_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=checkout,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"headwater serve exited; see {log_path}")
        try:
            return httpx.get(base + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, "headwater serve to answer", timeout=60, interval=0.1)
        yield base, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
