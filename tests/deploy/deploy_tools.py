"""Shared by the deployment checks: the repository's paths and the external tools.

The tools are installed by tests/deploy/install_tools.sh (run by `make test`); a missing
tool fails the check, with the command that installs it, instead of skipping it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from spillgate.server.config import Config, load

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "k8s" / "overlays"
LOCAL_TOOLS = ROOT / ".tools" / "bin"
K8S_SECRETS_EXAMPLE = DEPLOY / "k8s" / "secrets.env.example"


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


# -- the shipped Spillgate configurations ------------------------------------------------------

#: Where the Kubernetes overlays mount the Secret `spillgate-provider-keys` (api_key_file).
PROVIDER_KEYS_MOUNT = "/run/secrets/spillgate"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_KEY_FILE = re.compile(r"^[\s-]*api_key_file:\s*(\S+)", re.M)  # "- api_key_file:" too


def env_file(path: Path) -> dict[str, str]:
    """NAME=VALUE lines of an env file, comments and blank lines skipped."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def referenced_variables(config_text: str) -> set[str]:
    """The `${NAME}` a configuration needs (a commented-out line needs none)."""
    live = [line for line in config_text.splitlines() if not line.lstrip().startswith("#")]
    return set(_VARIABLE.findall("\n".join(live)))


def dummy_env(config_text: str, example: Path | None) -> dict[str, str]:
    """Each variable the configuration needs: the example's value where it gives one (URLs
    must parse), else a stand-in long enough for any secret (the admin token needs 16)."""
    given = env_file(example) if example else {}
    return {
        name: given.get(name) or f"dummy-{name.lower()}-0123456789abcdef"
        for name in referenced_variables(config_text)
    }


def checkable_copy(config_text: str, workdir: Path) -> Path:
    """The configuration with its provider key files moved into `workdir`, each created with
    a stand-in key, as Kubernetes would mount them; written to workdir/spillgate.yaml."""
    secrets = workdir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    text = config_text.replace(PROVIDER_KEYS_MOUNT, str(secrets))
    for path in _KEY_FILE.findall(text):
        assert path.startswith(str(secrets)), f"api_key_file {path} is not in the mounted Secret"
        Path(path).write_text("sk-dummy-provider-key\n")
    target = workdir / "spillgate.yaml"
    target.write_text(text)
    return target


def config_map_text(objects: list[dict[str, Any]]) -> str:
    """The spillgate.yaml of an overlay's generated ConfigMap."""
    maps = [o for o in objects if o["kind"] == "ConfigMap"]
    config_map = next(m for m in maps if m["metadata"]["name"].startswith("spillgate-config-"))
    return str(config_map["data"]["spillgate.yaml"])


def load_shipped(config_text: str, example: Path | None) -> Config:
    """A shipped configuration as the gateway loads it, its secrets stood in for."""
    with tempfile.TemporaryDirectory() as tmp:
        path = checkable_copy(config_text, Path(tmp))
        return load(path, dummy_env(config_text, example))
