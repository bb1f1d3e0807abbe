"""Every Spillgate configuration this repository ships passes `spillgate config check`, run
as a user runs it, with the variables it refers to set and its key files where they are
mounted; and says the same thing as the files it must agree with (vLLM's arguments, the
image, the env files that feed it)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_tools import (
    DEPLOY,
    K8S_SECRETS_EXAMPLE,
    OVERLAYS,
    ROOT,
    checkable_copy,
    config_map_text,
    container,
    dockerfile_cmd,
    dummy_env,
    env_file,
    load_shipped,
    one,
    referenced_variables,
    render,
)

from spillgate.models.cpu_model import CPU_ENGINE_ARGS, CPU_ENGINE_ENV, SERVED_NAME
from spillgate.models.load import max_num_seqs_from_args
from spillgate.server.config import Config

OVERLAY_NAMES = sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


@dataclass(frozen=True)
class Shipped:
    name: str
    text: str
    #: The env file (or Secret example) that sets its `${NAME}`s; None: it needs none.
    env_example: Path | None

    def load(self) -> Config:
        return load_shipped(self.text, self.env_example)


def shipped(name: str) -> Shipped:
    """A shipped configuration; an overlay's is the one its rendered ConfigMap carries."""
    if name in OVERLAY_NAMES:
        return Shipped(name, config_map_text(render(name)), K8S_SECRETS_EXAMPLE)
    compose, systemd = DEPLOY / "compose", DEPLOY / "systemd"
    files = {
        "compose": (compose / "spillgate.yaml", compose / "spillgate.env.example"),
        "systemd": (systemd / "spillgate.yaml", systemd / "spillgate.env"),
        "docker-cpu": (DEPLOY / "docker" / "spillgate-cpu.yaml", None),
    }
    path, example = files[name]
    return Shipped(name, path.read_text(), example)


ALL = ["compose", "systemd", "docker-cpu", *OVERLAY_NAMES]
WITH_CLOUD = ["compose", "systemd", *OVERLAY_NAMES]


def config_check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
    )


@pytest.mark.parametrize("name", ALL)
def test_every_shipped_configuration_passes_config_check(name: str, tmp_path: Path) -> None:
    config = shipped(name)
    path = checkable_copy(config.text, tmp_path)
    result = config_check(path, dummy_env(config.text, config.env_example))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid;"), result.stdout


@pytest.mark.parametrize("name", ALL)
def test_the_env_file_beside_a_configuration_names_every_variable_it_needs(name: str) -> None:
    config = shipped(name)
    needed = referenced_variables(config.text)
    given = set(env_file(config.env_example)) if config.env_example else set()
    assert needed <= given, f"not in {config.env_example}: {sorted(needed - given)}"


def test_config_check_refuses_a_missing_variable_or_key_file(tmp_path: Path) -> None:
    config = shipped("cluster")
    path = checkable_copy(config.text, tmp_path)
    env = dummy_env(config.text, config.env_example)
    del env["SPILLGATE_LEDGER_URL"]
    result = config_check(path, env)
    assert result.returncode == 2
    assert "not set: SPILLGATE_LEDGER_URL" in result.stderr

    (tmp_path / "secrets" / "openai-api-key").unlink()
    result = config_check(path, dummy_env(config.text, config.env_example))
    assert result.returncode == 2
    assert "providers[0]" in result.stderr and "`api_key_file` cannot be read" in result.stderr


@pytest.mark.parametrize("name", WITH_CLOUD)
def test_routes_try_the_local_model_first_then_cloud_targets(name: str) -> None:
    config = shipped(name).load()
    assert config.providers and config.routes
    local = {n for engine in config.engines for n in engine.model_names}
    for route, entries in config.routes.items():
        first, *rest = entries
        assert first in local, f"routes.{route} starts with {first}, not a local model"
        assert rest and all(config.cloud_target(e) for e in rest), f"routes.{route}: {rest}"
    assert config.admin.token and config.auth.enabled
    assert config.privacy.detect and config.privacy.policy == "keep-local"


@pytest.mark.parametrize("name", WITH_CLOUD)
def test_each_engine_admits_as_many_requests_as_vllm_runs(name: str) -> None:
    config = shipped(name).load()
    (engine,) = config.engines
    args = engine.args
    if engine.discover is not None:  # the cluster: vLLM's arguments are the engine pods'
        objects = render(name)
        args = container(one(objects, "Deployment", "vllm-engine"), "vllm")["args"]
    max_num_seqs = max_num_seqs_from_args(args)
    assert max_num_seqs is not None, f"{name}: no --max-num-seqs in {args}"
    assert engine.scheduling.max_concurrency == max_num_seqs
    # vLLM answers requests with tools only with a tool-call parser.
    tools = engine.scheduling.capabilities.tools
    assert tools == ("--enable-auto-tool-choice" in args), f"{name}: tools={tools}, args {args}"


def test_the_ledger_is_sqlite_on_one_box_and_shared_databases_in_the_cluster() -> None:
    for name in ("compose", "systemd", "single-node"):
        config = shipped(name).load()
        assert config.ledger.url == f"sqlite:///{config.home}/ledger.sqlite3"
        assert config.limits.redis_url is None  # one gateway: in-process limits
    for name in ("cluster", "cluster-prometheus-adapter"):
        config = shipped(name).load()
        assert config.ledger.url and config.ledger.url.startswith("postgresql://")
        assert config.limits.redis_url and config.limits.redis_url.startswith("redis://")


def test_cpu_demo_runs_the_embedded_model_as_serve_would() -> None:
    (engine,) = shipped("cpu-demo").load().engines
    dockerfile = (ROOT / "Dockerfile.cpu").read_text()
    assert "ENV SPILLGATE_HOME=/var/lib/spillgate" in dockerfile
    assert engine.model == f"/var/lib/spillgate/models/{SERVED_NAME}"  # ensure_cpu_model's
    assert engine.model_names[0] == SERVED_NAME
    n = len(CPU_ENGINE_ARGS)
    assert any(engine.args[i : i + n] == CPU_ENGINE_ARGS for i in range(len(engine.args)))
    assert engine.env == CPU_ENGINE_ENV


def test_the_cpu_image_bakes_its_configuration_where_its_cmd_reads_it() -> None:
    cmd = dockerfile_cmd(ROOT / "Dockerfile.cpu")
    target = cmd[cmd.index("--config") + 1]
    copies = [
        line.split()[1:]
        for line in (ROOT / "Dockerfile.cpu").read_text().splitlines()
        if line.startswith("COPY deploy/")
    ]
    assert [["deploy/docker/spillgate-cpu.yaml", target]] == copies
    config = shipped("docker-cpu").load()
    # No engines and no routes: `serve` adds the embedded CPU model.
    assert config.engines == [] and config.routes == {}
    # A demo without keys: said in the file, and nothing there can spend money.
    assert config.auth.enabled is False and config.providers == []
