"""The Prometheus rules parse, behave as their unit tests say (promtool), and read only
metrics and labels the gateway exports."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_tools import DEPLOY, run, tool
from promql_check import problems, spillgate_metrics

PROMETHEUS = DEPLOY / "prometheus"


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_rules_parse() -> None:
    result = run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_and_only_when_their_tests_say() -> None:
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    alerts = {r["alert"] for r in rules()}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested


def test_the_prometheus_config_parses() -> None:
    result = run(
        tool("promtool"), "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_read_only_metrics_and_labels_the_gateway_exports() -> None:
    for rule in rules():
        assert problems(rule["expr"]) == [], rule["alert"]
    used = {name for rule in rules() for name in spillgate_metrics(rule["expr"])}
    assert {
        "spillgate_engine_up",
        "spillgate_served_requests_total",
        "spillgate_circuit_state",
        "spillgate_key_budget_remaining_usd",
        "spillgate_ledger_backlog_records",
    } <= used


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("spillgate_breaker_state == 2", "spillgate_breaker_state is not exported"),
        ('spillgate_circuit_state{provider="openai"} == 2', "has no label 'provider'"),
        ("sum by (model) (rate(spillgate_requests_total[5m]))", "the label 'model'"),
    ],
)
def test_the_check_catches_a_name_or_label_the_gateway_does_not_export(
    expr: str, problem: str
) -> None:
    assert any(problem in found for found in problems(expr))
