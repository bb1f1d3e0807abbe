"""Which packages the wheel holds: every package under each source folder, in one namespace.

Four folders make one `spillgate` namespace: core/ is the root package, the other three sit
under it. pyproject.toml's `packages.find` names what it finds relative to `where`
(server/ledger would become a top-level `ledger`), so it cannot put sibling folders under a
prefix; here each folder's subpackages are found and given the prefix, so a new folder is in
the wheel without anyone listing it. Everything else about the project is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
#: Import name -> source folder. Never top-level `server` or `models`.
FOLDERS = {
    "spillgate": "core",
    "spillgate.server": "server",
    "spillgate.models": "models",
    "spillgate.fallback": "fallback",
}
NOT_DATA = {".py", ".pyc", ".pyo"}


def packages() -> dict[str, Path]:
    """Every package, namespace folders included, with the folder it is built from."""
    found: dict[str, Path] = {}
    for name, folder in FOLDERS.items():
        found[name] = ROOT / folder
        for sub in find_namespace_packages(ROOT / folder, exclude=["*__pycache__*"]):
            found[f"{name}.{sub}"] = ROOT / folder / sub.replace(".", "/")
    return found


def package_data(found: dict[str, Path]) -> dict[str, list[str]]:
    """Every file beside the code that the code reads at run time (prices.json, ...)."""
    data = {}
    for name, path in found.items():
        files = sorted(
            p.name
            for p in path.iterdir()
            if p.is_file() and p.suffix not in NOT_DATA and not p.name.startswith(".")
        )
        if files:
            data[name] = files
    return data


FOUND = packages()
setup(packages=list(FOUND), package_dir=FOLDERS, package_data=package_data(FOUND))
