"""The expression package imports only the standard library, lark and ``headwater.errors``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import headwater.domain.expressions as package

ALLOWED = {"lark", "headwater.errors"}


def test_imports_are_pure() -> None:
    root = Path(package.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (
                    top in sys.stdlib_module_names
                    or top in ALLOWED
                    or name in ALLOWED
                    or name.startswith("headwater.domain.expressions")
                ), f"{path.name} imports {name}"
