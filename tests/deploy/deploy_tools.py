"""Shared by the deployment checks: the repository's paths and the external tools.

The tools are installed by tests/deploy/install_tools.sh (run by `make test`); a missing
tool fails the check, with the command that installs it, instead of skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "k8s" / "overlays"
LOCAL_TOOLS = ROOT / ".tools" / "bin"


def tool(name: str) -> str:
    local = LOCAL_TOOLS / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: run `bash tests/deploy/install_tools.sh`")
    return found


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120)


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of one overlay, as a list of objects."""
    result = run(tool("kubectl"), "kustomize", str(OVERLAYS / overlay))
    assert result.returncode == 0, f"{overlay} does not render:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def dockerfile_cmd(path: Path) -> list[str]:
    """The exec-form CMD of a Dockerfile."""
    import json

    lines = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1, f"{path.name} should have one CMD"
    return list(json.loads(lines[0].removeprefix("CMD ")))
