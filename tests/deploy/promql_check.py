"""What the alerts, the dashboard and the engine autoscalers may read: the metrics the gateway
exports (from spillgate/server/observe.py itself, so a renamed or relabelled metric fails
these checks) and their labels."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from spillgate.server.observe import Metrics

#: Labels Prometheus adds to every scraped series (static configs, Kubernetes pod discovery).
TARGET_LABELS = frozenset({"instance", "job", "namespace", "pod"})
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
_SELECTOR = re.compile(r"\b(spillgate_[a-z_]+)\s*(?:\{([^}]*)\})?")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def exported() -> dict[str, frozenset[str]]:
    """Every series name the gateway exports, with the labels its samples carry."""
    names: dict[str, frozenset[str]] = {}
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client keeps a metric's declared labels in `_labelnames` only: a
        # labelled metric has no sample to read them from until it is used.
        labels = frozenset(metric._labelnames)
        for suffix in _SUFFIXES[metric._type]:
            names[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def problems(expr: str) -> list[str]:
    """What in a PromQL expression reads a Spillgate metric or label that does not exist."""
    known = exported()
    found: list[str] = []
    used_labels: set[str] = set()
    for name, matchers in _SELECTOR.findall(expr):
        if name not in known:
            found.append(f"{name} is not exported")
            continue
        used_labels |= known[name]
        for label in _MATCHER.findall(matchers):
            if label not in known[name] | TARGET_LABELS:
                found.append(f"{name} has no label {label!r}")
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in used_labels | TARGET_LABELS:
                found.append(f"no metric in the expression has the label {label!r}")
    return found


def spillgate_metrics(expr: str) -> set[str]:
    return {name for name, _ in _SELECTOR.findall(expr)}
