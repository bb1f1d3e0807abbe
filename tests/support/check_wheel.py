"""What a built wheel must hold, read from the source tree rather than from a list: every
module and data file under core/, server/, models/ and fallback/, in the one `spillgate`
namespace, nothing beside it, and the `spillgate` console script.

`python tests/support/check_wheel.py WHEEL` checks the archive; tests/gateway/test_packaging.py also
installs it into a fresh virtualenv and runs it.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Source folder -> import name. Restated here rather than read from setup.py, so that the
#: check does not trust what it checks.
NAMESPACE = {
    "core": "spillgate",
    "server": "spillgate.server",
    "models": "spillgate.models",
    "fallback": "spillgate.fallback",
}
NOT_SHIPPED = {".pyc", ".pyo"}


def _shipped(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix not in NOT_SHIPPED
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
    )


def source_files() -> dict[str, Path]:
    """Path inside the wheel -> source file, for every file the wheel must carry."""
    files = {}
    for folder, name in NAMESPACE.items():
        for path in sorted((ROOT / folder).rglob("*")):
            if _shipped(path):
                inside = path.relative_to(ROOT / folder).as_posix()
                files[f"{name.replace('.', '/')}/{inside}"] = path
    return files


def source_modules() -> list[str]:
    """The import name of every module in the source tree (packages by their __init__)."""
    modules = []
    for inside in source_files():
        if inside.endswith(".py"):
            parts = inside.removesuffix(".py").split("/")
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def unmapped_folders() -> list[str]:
    """Top-level source folders that are packages but that NAMESPACE does not know."""
    return sorted(
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in NAMESPACE and not p.parent.name.startswith(".")
    )


def problems(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        scripts = archive.read(entry).decode() if entry else ""
    found = []
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    if tops != {"spillgate"}:
        found.append(f"top-level entries besides spillgate/: {sorted(tops - {'spillgate'})}")
    missing = sorted(set(source_files()) - names)
    if missing:
        found.append(f"missing from the wheel: {missing}")
    if unmapped := unmapped_folders():
        found.append(f"source folders this check does not map into `spillgate`: {unmapped}")
    if "spillgate = spillgate.server.cli:main" not in scripts:
        found.append("no `spillgate` console script")
    return found


def main(path: str) -> int:
    found = problems(Path(path))
    for problem in found:
        print(f"wheel check: {problem}", file=sys.stderr)
    if not found:
        print(f"wheel check: {path} ok ({len(source_files())} source files, one namespace)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
