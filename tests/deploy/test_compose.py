"""The compose example parses (Debian's docker-compose, the Compose Specification's own
parser) and wires the gateway, Prometheus and Grafana to the files this repository ships."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import DEPLOY, ROOT, dockerfile_cmd, run, tool

from spillgate.server.config import ConfigError, interpolate

COMPOSE = DEPLOY / "compose"


def compose_config(tmp_path: Path) -> dict[str, Any]:
    """`docker-compose config` on a copy, with spillgate.env made from its example."""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    shutil.copy(ROOT / "Dockerfile.gpu", tmp_path)
    compose = tmp_path / "deploy" / "compose"
    shutil.copy(compose / "spillgate.env.example", compose / "spillgate.env")
    result = run(tool("docker-compose"), "-f", str(compose / "compose.yaml"), "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_compose_file_parses_and_runs_spillgate_on_the_gpu(tmp_path: Path) -> None:
    config = compose_config(tmp_path)
    assert set(config["services"]) == {"spillgate", "prometheus", "grafana"}
    gateway = config["services"]["spillgate"]
    assert gateway["build"]["dockerfile"] == "Dockerfile.gpu"
    (device,) = gateway["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gateway["shm_size"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    # The configuration is mounted where the image's CMD reads it.
    cmd = dockerfile_cmd(ROOT / "Dockerfile.gpu")
    config_path = cmd[cmd.index("--config") + 1]
    assert Path(mounts[config_path]) == tmp_path / "deploy" / "compose" / "spillgate.yaml"
    assert mounts["/models"] == "models" and mounts["/var/lib/spillgate"] == "spillgate-data"
    # Provider keys come from the env file, read into the service's environment.
    example = (COMPOSE / "spillgate.env.example").read_text()
    names = {line.split("=")[0] for line in example.splitlines() if "=" in line}
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= names <= gateway["environment"].keys()


def test_prometheus_loads_the_alerts_and_grafana_the_dashboard(tmp_path: Path) -> None:
    services = compose_config(tmp_path)["services"]
    prometheus = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (rules,) = scrape["rule_files"]
    assert Path(prometheus[rules]) == tmp_path / "deploy" / "prometheus" / "alerts.yml"
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["spillgate:8000"]

    grafana = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provisioning = Path(grafana["/etc/grafana/provisioning"])
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "spillgate.yaml").read_text())[
        "providers"
    ]
    dashboard_dir = provider["options"]["path"]
    (dashboard,) = [target for target in grafana if target.startswith(dashboard_dir + "/")]
    assert Path(grafana[dashboard]) == tmp_path / "deploy" / "grafana" / "spillgate-dashboard.json"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["uid"] == "prometheus"


def test_a_commented_out_setting_needs_no_variable_but_a_live_one_does() -> None:
    text = "server:\n  port: 8000\n# providers:\n#   - api_key: ${OPENAI_API_KEY}\n"
    assert interpolate(text, {}) == text
    with pytest.raises(ConfigError, match="not set: OPENAI_API_KEY"):
        interpolate(text.replace("#   - api_key", "providers:\n  - api_key"), {})
