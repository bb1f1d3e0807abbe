"""The systemd unit for a bare GPU box passes `systemd-analyze verify`, and its
configuration and environment file load."""

from __future__ import annotations

import configparser

from deploy_tools import DEPLOY, load_shipped, run, tool

SYSTEMD = DEPLOY / "systemd"
EXEC = "/opt/spillgate/venv/bin/spillgate"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / "spillgate.service")
    return parser


def test_the_unit_verifies() -> None:
    result = run(tool("systemd-analyze"), "verify", "--man=no", str(SYSTEMD / "spillgate.service"))
    # The one complaint expected here: the virtualenv of the install steps is not on this
    # machine. A misspelt key or a bad value would add its own line.
    complaints = [
        line
        for line in result.stderr.splitlines()
        if line and f"Command {EXEC} is not executable" not in line
    ]
    assert complaints == []


def test_the_unit_runs_the_documented_install() -> None:
    service = unit()["Service"]
    assert service["ExecStart"] == f"{EXEC} serve --config /etc/spillgate/spillgate.yaml"
    assert service["EnvironmentFile"] == "/etc/spillgate/spillgate.env"
    assert service["User"] == "spillgate"
    assert service["KillMode"] == "mixed"  # the gateway stops its own engines
    text = (SYSTEMD / "spillgate.service").read_text()
    assert "Environment=SPILLGATE_HOME=/var/lib/spillgate" in text
    assert "StateDirectory=spillgate" in text


def test_the_configuration_keeps_its_state_where_the_unit_does() -> None:
    # config check on this file with its env file: tests/deploy/test_shipped_configs.py
    config = load_shipped((SYSTEMD / "spillgate.yaml").read_text(), SYSTEMD / "spillgate.env")
    text = (SYSTEMD / "spillgate.service").read_text()
    assert f"Environment=SPILLGATE_HOME={config.home}" in text
    assert config.ledger.url == f"sqlite:///{config.home}/ledger.sqlite3"
    (engine,) = config.engines
    assert engine.model and engine.startup_timeout_s >= 1800
