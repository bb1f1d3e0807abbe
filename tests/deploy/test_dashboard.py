"""The Grafana dashboard charts only metrics and labels the gateway exports, and its spill
panels compute what their titles say (the queries run by promtool on sample series)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from deploy_tools import DEPLOY, run, tool
from promql_check import problems, spillgate_metrics

DASHBOARD = DEPLOY / "grafana" / "spillgate-dashboard.json"


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def panel(title: str) -> dict[str, Any]:
    (found,) = [p for p in panels() if p["title"] == title]
    return found


def test_every_query_reads_exported_metrics_and_labels() -> None:
    for p in panels():
        for target in p["targets"]:
            assert problems(target["expr"]) == [], p["title"]


def test_the_panels_chart_spill_queues_breakers_and_gpus() -> None:
    used = {name for p in panels() for t in p["targets"] for name in spillgate_metrics(t["expr"])}
    assert {
        "spillgate_local_queue_depth",
        "spillgate_circuit_state",
        "spillgate_gpu_memory_used_bytes",
        "spillgate_gpu_memory_total_bytes",
        "spillgate_gpu_utilization_percent",
    } <= used
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    places = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels()]
    assert len(places) == len(set(places)), "two panels on the same spot"


def test_spill_ratio_by_reason_is_each_reasons_share_of_answered_requests(
    tmp_path: Path,
) -> None:
    (target,) = panel("Spill ratio by reason")["targets"]
    expr = target["expr"].replace('instance=~"$instance"', 'instance=~".*"')
    (total,) = panel("Spill ratio (share served by cloud targets)")["targets"]
    total_expr = total["expr"].replace('instance=~"$instance"', 'instance=~".*"')
    series = {
        # Per second, over two gateways: 6 local, 3 spilled on overload, 1 for a capability
        # gap; 2 refused (route none) are not answered requests.
        'spillgate_requests_total{instance="a", route="qwen", reason="local", status="200"}': 4,
        'spillgate_requests_total{instance="b", route="qwen", reason="local", status="200"}': 2,
        'spillgate_requests_total{instance="a", route="openai/gpt-4o-mini", reason="overload",'
        ' status="200"}': 2,
        'spillgate_requests_total{instance="b", route="openai/gpt-4o-mini", reason="overload",'
        ' status="200"}': 1,
        'spillgate_requests_total{instance="a", route="anthropic/claude-haiku-4-5",'
        ' reason="images_unsupported", status="200"}': 1,
        'spillgate_requests_total{instance="a", route="none", reason="local_capacity",'
        ' status="429"}': 2,
        'spillgate_served_requests_total{instance="a", kind="local"}': 4,
        'spillgate_served_requests_total{instance="b", kind="local"}': 2,
        'spillgate_served_requests_total{instance="a", kind="cloud"}': 3,
        'spillgate_served_requests_total{instance="b", kind="cloud"}': 1,
    }
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": s, "values": f"0+{60 * per_s}x10"} for s, per_s in series.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": '{reason="overload"}', "value": 0.3},
                            {"labels": '{reason="images_unsupported"}', "value": 0.1},
                        ],
                    },
                    {"expr": total_expr, "eval_time": "10m", "exp_samples": [{"value": 0.4}]},
                ],
            }
        ],
    }
    (tmp_path / "dashboard.test.yml").write_text(yaml.safe_dump(tests))
    result = run(tool("promtool"), "test", "rules", "dashboard.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
