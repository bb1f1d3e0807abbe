"""The dependency arrows of docs/ARCHITECTURE.md hold: server → models, fallback → core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from harness import ROOT

FORBIDDEN = {
    "core": ("spillgate.server", "spillgate.models", "spillgate.fallback"),
    "models": ("spillgate.server", "spillgate.fallback"),
    "fallback": ("spillgate.server", "spillgate.models"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_arrow_points_the_wrong_way(folder: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[folder])
    ]
    assert not wrong, wrong


def test_the_check_sees_imports() -> None:
    assert "spillgate.protocol" in _imports(ROOT / "models" / "engine.py")
