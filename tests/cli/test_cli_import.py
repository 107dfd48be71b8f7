"""``headwater import``: docs/csv-import.md followed word for word (each command of its "Try
it" section prints exactly the block under it), and the exit statuses."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

from headwater.testing.toolkit import Cli, create_users

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "csv-import.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _steps() -> list[tuple[str, str]]:
    """(command, expected stdout) for each ``sh`` block followed by a ``text`` block."""
    blocks = FENCE.findall(DOC.read_text())
    steps = []
    for (kind, body), (next_kind, expected) in itertools.pairwise(blocks):
        if kind == "sh" and next_kind == "text":
            steps.append((body.strip(), expected))
    return steps


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_page_is_followed_word_for_word(cli: Cli) -> None:
    steps = _steps()
    assert len(steps) == 4
    for command, expected in steps:
        words = shlex.split(command)
        assert words[0] == ".venv/bin/headwater", command
        args = [str(ROOT / word) if word.startswith("docs/") else word for word in words[1:]]
        result = cli(*args)
        assert _lines(result.stdout) == _lines(expected), command
        rejected = "rejected  │ 0 " not in expected
        assert result.exit_code == (1 if rejected else 0), (command, result.stderr)


def test_a_file_without_the_match_column_stops_before_writing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,firstName\nx@example.com,X\n")
    result = cli("import", "users", str(path), "--no-progress")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: header: the match key column 'login' is missing"
    result = cli("import", "users", str(path), "--match", "phone", "--no-progress")
    assert result.exit_code == 1
    assert "--match must be one of login, email, employeeNumber" in result.stderr


def test_held_rows_are_listed_approved_and_rejected(cli: Cli, tmp_path: Path) -> None:
    runtime = cli.runtime()
    try:
        create_users(runtime, 12, prefix="p", digits=1, start=1)
    finally:
        runtime.close()
    path = tmp_path / "leavers.csv"
    rows = [f"p{n}@example.com,DEPROVISIONED" for n in range(1, 12)]
    path.write_text("\n".join(["login,status", *rows]) + "\n")
    imported = cli("import", "users", str(path), "--source", "HR", "--no-progress")
    assert imported.exit_code == 1
    assert "11 held" in imported.stdout and "headwater import approve" in imported.stderr
    listed = cli.ok("import", "holds")
    hold_ids = re.findall(r"\b(imh\w+)\b", listed)
    assert len(hold_ids) == 11 and "p1@example.com" in listed and "HR" in listed
    assert cli.ok("import", "approve", hold_ids[0]).strip() == f"{hold_ids[0]}: approved"
    assert cli.ok("import", "reject", hold_ids[1], hold_ids[2]).count("rejected") == 2
    again = cli("import", "approve", hold_ids[0], "imhNoSuchHold", hold_ids[3])
    assert again.exit_code == 1
    assert f"{hold_ids[3]}: approved" in again.stdout
    assert "already decided: APPROVED" in again.stderr and "imhNoSuchHold" in again.stderr
    assert len(re.findall(r"\bimh\w+", cli.ok("import", "holds", "--status", "approved"))) == 2
    assert len(re.findall(r"\bimh\w+", cli.ok("import", "holds"))) == 7
    bad = cli("import", "holds", "--status", "maybe")
    assert bad.exit_code == 1 and "status: one of HELD" in bad.stderr
