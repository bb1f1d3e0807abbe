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
#: The package each source folder is (setup.py's `package_dir`): core/ is `spillgate` itself.
PACKAGES = {
    "core": "spillgate",
    "server": "spillgate.server",
    "models": "spillgate.models",
    "fallback": "spillgate.fallback",
}


def _package(path: Path, root: Path) -> str:
    """The dotted package `path` belongs to, which a relative import counts from."""
    folder, *subfolders = path.relative_to(root).parent.parts
    return ".".join([PACKAGES[folder], *subfolders])


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, relative imports resolved to absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            parts = _package(path, root).split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            if node.module:
                names.add(f"{base}.{node.module}")
            else:  # `from . import x`: x may be a module of the package
                names.update(f"{base}.{alias.name}" for alias in node.names)
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


def test_the_check_resolves_relative_imports(tmp_path: Path) -> None:
    # A wrong arrow written as a relative import is still a wrong arrow.
    (tmp_path / "fallback" / "kit").mkdir(parents=True)
    (tmp_path / "core").mkdir()
    provider = tmp_path / "fallback" / "kit" / "retry.py"
    provider.write_text(
        "from . import sse_split\nfrom .. import adapter\nfrom ..adapter import Call\n"
        "from ...server.gateway import Gateway\nfrom ...models import engine\n"
    )
    package_init = tmp_path / "fallback" / "kit" / "__init__.py"
    package_init.write_text("from .retry import backoff\n")
    core = tmp_path / "core" / "errors.py"
    core.write_text("from .server import app\n")
    assert _imports(provider, tmp_path) == {
        "spillgate.fallback.kit.sse_split",
        "spillgate.fallback.adapter",
        "spillgate.server.gateway",
        "spillgate.models",
    }
    assert _imports(package_init, tmp_path) == {"spillgate.fallback.kit.retry"}
    assert _imports(core, tmp_path) == {"spillgate.server"}
    wrong = {n for n in _imports(provider, tmp_path) if n.startswith(FORBIDDEN["fallback"])}
    assert wrong == {"spillgate.server.gateway", "spillgate.models"}
