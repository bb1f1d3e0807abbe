"""The Grafana dashboard only charts metrics the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from spillgate.server.observe import Metrics

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "spillgate-dashboard.json"
)


def test_every_dashboard_query_names_an_exported_metric() -> None:
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    # From the families, not the samples: a labelled metric has no sample until it is used.
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"spillgate_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard charts nothing"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
