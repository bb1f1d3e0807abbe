"""The Prometheus rules parse, behave as their unit tests say (promtool), and use only
metric names Spillgate exports or has agreed to export."""

from __future__ import annotations

import re

import yaml
from deploy_tools import DEPLOY, run, tool

from spillgate.server.observe import Metrics

PROMETHEUS = DEPLOY / "prometheus"
# Exported by features being merged (breakers, budgets, the ledger), under these names.
AGREED = {
    "spillgate_breaker_state",
    "spillgate_budget_remaining_usd",
    "spillgate_budget_limit_usd",
    "spillgate_ledger_backlog",
}


def test_the_rules_parse() -> None:
    result = run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_and_only_when_their_tests_say() -> None:
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
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


def test_the_rules_use_only_metrics_that_exist() -> None:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bspillgate_[a-z_]+", rule["expr"])
    }
    assert used, "the rules read no Spillgate metric"
    assert used <= exported | AGREED, sorted(used - exported - AGREED)
    assert {"spillgate_engine_up", "spillgate_decisions_total"} <= used
