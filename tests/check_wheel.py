"""Check a built wheel: one `spillgate` namespace, no top-level `server`/`models` packages."""

from __future__ import annotations

import sys
import zipfile

REQUIRED = {
    "spillgate/__init__.py",
    "spillgate/protocol.py",
    "spillgate/server/app.py",
    "spillgate/server/privacy/scanner.py",
    "spillgate/models/engine.py",
    "spillgate/fallback/adapter.py",
}


def main(path: str) -> int:
    names = set(zipfile.ZipFile(path).namelist())
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    problems = []
    if tops != {"spillgate"}:
        problems.append(f"top-level entries besides spillgate/: {sorted(tops - {'spillgate'})}")
    missing = REQUIRED - names
    if missing:
        problems.append(f"missing from the wheel: {sorted(missing)}")
    entry = next((n for n in names if n.endswith("entry_points.txt")), None)
    if entry is None or b"spillgate = spillgate.server.cli:main" not in zipfile.ZipFile(path).read(
        entry
    ):
        problems.append("no `spillgate` console script")
    for p in problems:
        print(f"wheel check: {p}", file=sys.stderr)
    if not problems:
        print(f"wheel check: {path} ok ({len(names)} files, one `spillgate` namespace)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
