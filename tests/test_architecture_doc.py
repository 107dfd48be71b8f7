"""docs/architecture.md's code map names every package and top-level module of the source, and
nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "headwater"


def _mapped() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    code_map = text.split("## Code map", 1)[1]
    return set(re.findall(r"`headwater\.([a-z_]+)`", code_map))


def _present() -> set[str]:
    packages = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in SOURCE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return packages | modules


def test_the_code_map_matches_the_source() -> None:
    mapped, present = _mapped(), _present()
    assert mapped - present == set(), "the code map names what does not exist"
    assert present - mapped == set(), "the code map leaves these out"
