"""The sans-IO core must not do IO, read clocks or draw randomness: checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import coordinator.core

FORBIDDEN = frozenset(
    {"asyncio", "httpx", "time", "random", "os", "socket", "yaml", "subprocess", "threading"}
)
CORE = Path(coordinator.core.__file__).parent


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def offences(tree: ast.AST) -> list[str]:
    """Every forbidden import, and every call of ``time.<anything>``, with its line."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"{node.lineno}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if node.level == 0 and root in FORBIDDEN:
                out.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and func.value.id == "time":
                out.append(f"{node.lineno}: time.{func.attr}()")
            if isinstance(func, ast.Name) and func.id == "__import__":
                out.append(f"{node.lineno}: __import__()")
    return out


def test_core_has_modules() -> None:
    names = {p.name for p in core_modules()}
    assert {"topology.py", "rows.py", "matrix.py", "quorum.py", "timers.py"} <= names


def test_no_module_of_the_core_does_io_or_reads_a_clock() -> None:
    found = {
        str(path.relative_to(CORE)): bad
        for path in core_modules()
        if (bad := offences(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    }
    assert found == {}


def test_the_checker_catches_offences() -> None:
    src = "import os.path\nfrom time import monotonic\nimport time\nx = time.monotonic()\n"
    found = offences(ast.parse(src))
    assert len(found) == 4
    assert offences(ast.parse("from . import time\nimport timeit\n")) == []
