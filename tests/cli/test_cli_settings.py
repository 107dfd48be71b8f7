"""A setting Headwater cannot start with ends every command with one line on stderr naming the
setting (never its secret value), a non-zero status and no traceback: a database URL with a
missing folder, an unreachable server or an unknown scheme, a malformed secret key or key file,
and any value out of bounds or garbled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from headwater.testing import free_port
from headwater.testing.toolkit import Cli

GARBLED_KEY = "not-a-fernet-key-but-a-secret-0123456789"
COMMANDS = [
    ("serve",),
    ("worker",),
    ("token", "list"),
    ("token", "create", "--name", "ops", "--role", "SUPER_ADMIN"),
    ("admin", "list"),
    ("users", "list"),
    ("apps", "list"),
    ("plan", "app"),
]


def _cases(tmp: Path) -> list[tuple[dict[str, str | None], str]]:
    """(environment changes, what the line must say)."""
    closed = free_port()  # nothing listens there
    data_file = tmp / "a-file"
    data_file.write_text("")
    keyed = tmp / "keyed"
    keyed.mkdir()
    (keyed / "secret.key").write_text("garbage\n")
    return [
        (
            {"HEADWATER_DATABASE_URL": f"sqlite:///{tmp / 'missing' / 'hw.db'}"},
            "HEADWATER_DATABASE_URL: the folder",
        ),
        (
            {"HEADWATER_DATABASE_URL": f"postgresql://postgres:pw-7731@127.0.0.1:{closed}/x"},
            "HEADWATER_DATABASE_URL: cannot connect to postgresql+psycopg://postgres:***@",
        ),
        ({"HEADWATER_DATABASE_URL": "mysql://u@db/hw"}, "scheme 'mysql' is not supported"),
        ({"HEADWATER_DATABASE_URL": "::nonsense::"}, "HEADWATER_DATABASE_URL: is not a database"),
        ({"HEADWATER_SECRET_KEY": GARBLED_KEY}, "HEADWATER_SECRET_KEY: must be a Fernet key"),
        (
            {"HEADWATER_SECRET_KEY": None, "HEADWATER_DATA_DIR": str(keyed)},
            "secret.key' is not a Fernet key",
        ),
        (
            {"HEADWATER_DATABASE_URL": None, "HEADWATER_DATA_DIR": str(data_file / "data")},
            "HEADWATER_DATA_DIR: cannot create the folder",
        ),
        ({"HEADWATER_WORKER_LANES": "1000"}, "HEADWATER_WORKER_LANES: Input should be less"),
        (
            {"HEADWATER_WORKER_BATCHES_PER_APP": "9"},
            "HEADWATER_WORKER_BATCHES_PER_APP: Input should be less than or equal to 8",
        ),
        (
            {"HEADWATER_WORKER_BATCHES_PER_APP": "0"},
            "HEADWATER_WORKER_BATCHES_PER_APP: Input should be greater than or equal to 1",
        ),
        ({"HEADWATER_LEASE_SECONDS": "1e999"}, "HEADWATER_LEASE_SECONDS: "),
        ({"HEADWATER_API_THREADS": "0"}, "HEADWATER_API_THREADS: Input should be greater"),
        ({"HEADWATER_API_THREADS": "257"}, "HEADWATER_API_THREADS: Input should be less"),
        ({"HEADWATER_EMBEDDED_WORKER": "maybe"}, "HEADWATER_EMBEDDED_WORKER: Input should be"),
        ({"HEADWATER_LOG_LEVEL": "LOUD"}, "HEADWATER_LOG_LEVEL: Input should be"),
        ({"HEADWATER_HEADER_TIMEOUT_SECONDS": "0"}, "HEADWATER_HEADER_TIMEOUT_SECONDS: "),
        ({"HEADWATER_METRICS_TOKEN": "short"}, "HEADWATER_METRICS_TOKEN: must be 16 to 256"),
        ({"HEADWATER_OUTBOUND_ALLOW": "10.0.0.0/8,not a host"}, "HEADWATER_OUTBOUND_ALLOW: "),
        (
            {"HEADWATER_WORKER_LANES": "0", "HEADWATER_LOG_FORMAT": "xml"},
            "HEADWATER_WORKER_LANES: Input should be greater than or equal to 1; "
            "HEADWATER_LOG_FORMAT: ",
        ),
    ]


def _one_clear_line(stderr: str, stdout: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    for secret in (GARBLED_KEY, "pw-7731"):
        assert secret not in lines[0]
    assert "Traceback" not in stderr + stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_setting_in_one_line(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    for changes, expected in _cases(tmp_path):
        result = cli(*command, env=changes)
        assert result.exit_code == 1, (changes, result.stdout, result.stderr)
        _one_clear_line(result.stderr, result.stdout, expected)


@pytest.mark.parametrize(
    ("command", "changes", "expected"),
    [
        (
            "serve",
            {"HEADWATER_DATABASE_URL": "sqlite:////nonexistent-folder/hw.db"},
            "the folder '/nonexistent-folder' of the SQLite file does not exist",
        ),
        ("worker", {"HEADWATER_SECRET_KEY": GARBLED_KEY}, "HEADWATER_SECRET_KEY: must be"),
    ],
)
def test_a_real_process_says_it_in_one_line(
    cli_env: dict[str, str | None], command: str, changes: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({k: v for k, v in cli_env.items() if v is not None})
    env.update(changes)
    done = subprocess.run(
        [sys.executable, "-m", "headwater", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    _one_clear_line(done.stderr, done.stdout, expected)


def test_a_good_key_and_url_still_start(cli: Cli, tmp_path: Path) -> None:
    """The checks refuse only what is wrong: a fresh folder, key and URL work."""
    data = tmp_path / "fresh"
    env = {
        "HEADWATER_DATA_DIR": str(data),
        "HEADWATER_DATABASE_URL": None,
        "HEADWATER_SECRET_KEY": Fernet.generate_key().decode(),
    }
    result = cli("token", "list", env=env)
    assert result.exit_code == 0, result.stderr
    assert (data / "headwater.db").exists()


def test_status_refuses_a_bad_setting_in_one_line(cli: Cli, tmp_path: Path) -> None:
    """``status`` opens no runtime (it only reads), so it checks on its own path."""
    for changes, expected in [
        ({"HEADWATER_DATABASE_URL": "mysql://u@db/hw"}, "scheme 'mysql' is not supported"),
        (
            {"HEADWATER_DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'hw.db'}"},
            "HEADWATER_DATABASE_URL: the folder",
        ),
        ({"HEADWATER_WORKER_LANES": "-3"}, "HEADWATER_WORKER_LANES: Input should be greater"),
    ]:
        result = cli("status", env=changes)
        assert result.exit_code == 1, (changes, result.stdout, result.stderr)
        _one_clear_line(result.stderr, result.stdout, expected)
