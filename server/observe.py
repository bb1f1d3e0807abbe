"""Metrics (Prometheus text on /metrics) and the JSON-lines access log."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, TextIO, TypeVar

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from spillgate.scrub import scrub

access_log = logging.getLogger("spillgate.access")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

M = TypeVar("M", bound=MetricWrapperBase)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[MetricWrapperBase, tuple[object, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "spillgate_requests",
            "Requests answered, by endpoint, route (target), reason and HTTP status.",
            ["endpoint", "route", "reason", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "spillgate_decisions", "Routing decisions by reason.", ["reason"], registry=r
        )
        self.duration = Histogram(
            "spillgate_request_duration_seconds",
            "Time from request arrival to the last byte sent.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "spillgate_time_to_first_byte_seconds",
            "Time from request arrival to the first byte of the answer.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "spillgate_gateway_overhead_seconds",
            "The gateway's own time before the upstream call: parsing, decision.",
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "spillgate_tokens", "Tokens by route and kind.", ["route", "kind"], registry=r
        )
        self.engine_up = Gauge(
            "spillgate_engine_up", "1 when a local engine is healthy.", ["engine"], registry=r
        )
        self.engine_in_flight = Gauge(
            "spillgate_engine_in_flight",
            "Requests Spillgate has in flight at a local engine.",
            ["engine"],
            registry=r,
        )
        self.engine_restarts = Gauge(
            "spillgate_engine_restarts", "Restarts of a supervised engine.", ["engine"], registry=r
        )
        self.cost = Counter(
            "spillgate_cost_usd",
            "What cloud requests cost in USD at list prices, by route (target).",
            ["route"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "spillgate_circuit_state",
            "Circuit breaker of a cloud target: 0 closed, 1 half-open, 2 open.",
            ["target"],
            registry=r,
        )
        # -- keys, limits, budgets, ledger ----------------------------------------------------
        self.served = Counter(
            "spillgate_served_requests",
            "Requests a target answered, by kind (local or cloud): the spill ratio's parts.",
            ["kind"],
            registry=r,
        )
        self.auth_failures = Counter(
            "spillgate_auth_failures", "Requests refused for a missing or bad API key.", registry=r
        )
        self.rate_limited = Counter(
            "spillgate_rate_limited_requests",
            "Requests refused with 429 for a key's limit, by limit (rpm or tpm).",
            ["limit"],
            registry=r,
        )
        self.limits_redis_up = Gauge(
            "spillgate_limits_redis_up",
            "1 while rate limits are shared through Redis; 0 while they fell back in-process.",
            registry=r,
        )
        self.limits_fallbacks = Counter(
            "spillgate_limits_redis_fallbacks",
            "Redis calls that failed, so a rate limit was counted in-process instead.",
            registry=r,
        )
        self.budget_remaining = Gauge(
            "spillgate_key_budget_remaining_usd",
            "Cloud budget left to a key, by key id and period (day or month). By id, not name:"
            " a name may be a person's email address.",
            ["key_id", "period"],
            registry=r,
        )
        self.ledger_backlog = Gauge(
            "spillgate_ledger_backlog_records",
            "Ledger records written ahead to the spool that the database does not have yet.",
            registry=r,
        )
        self.ledger_db_up = Gauge(
            "spillgate_ledger_db_up", "1 while the ledger database takes writes.", registry=r
        )
        self.ledger_write_failures = Counter(
            "spillgate_ledger_write_failures",
            "Batches the ledger database did not take (retried from the spool).",
            registry=r,
        )
        self.ledger_spool_errors = Counter(
            "spillgate_ledger_spool_errors",
            "Records that could not be written to the spool (disk full): lost.",
            registry=r,
        )
        self.gpu_memory_used = Gauge(
            "spillgate_gpu_memory_used_bytes", "GPU memory in use (pynvml).", ["gpu"], registry=r
        )
        self.gpu_memory_total = Gauge(
            "spillgate_gpu_memory_total_bytes", "GPU memory in all (pynvml).", ["gpu"], registry=r
        )
        self.gpu_utilization = Gauge(
            "spillgate_gpu_utilization_percent",
            "GPU utilisation (pynvml): context only, a busy GPU may still have batch room.",
            ["gpu"],
            registry=r,
        )
        self.local_queue = Gauge(
            "spillgate_local_queue_depth",
            "Requests waiting in Spillgate's queue for a local engine.",
            ["engine"],
            registry=r,
        )
        self.usage_anomalies = Counter(
            "spillgate_usage_anomalies",
            "Answers whose upstream reported usage that is not a token count (`invalid`: "
            "counted as 0) or none at all (`missing`: the relayed tokens counted instead), "
            "by route.",
            ["route", "problem"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "spillgate_upstream_errors",
            "Upstream failures before the first byte, by target and status.",
            ["route", "status"],
            registry=r,
        )
        self.egress = Counter(
            "spillgate_egress",
            "Bodies the egress guard checked before a cloud target, by target and verdict "
            "(clean, redacted, unscanned: sent; refused: kept on the box).",
            ["route", "verdict"],
            registry=r,
        )
        self.asyncio_tasks = Gauge(
            "spillgate_asyncio_tasks",
            "asyncio tasks alive in the gateway's event loop, counted at scrape time.",
            registry=r,
        )
        self.asyncio_tasks.set_function(_asyncio_tasks)
        self.privacy_scan_failures = Counter(
            "spillgate_privacy_scan_failures",
            "Privacy scans that failed or ran out of time (counted as findings), by where.",
            ["where"],
            registry=r,
        )

    def child(self, metric: M, *values: object) -> M:
        """`metric.labels(*values)`, resolved once per label values: prometheus_client
        checks and converts the values and takes a lock at every call, ~2% of a streamed
        request's CPU. For label values from a bounded set (endpoints, routes, reasons,
        statuses) of a metric whose children are never removed."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


def _asyncio_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop: no loop to count in
        return 0.0


#: Where the access log writes its lines directly once setup_logging chose the JSON format.
_access_stream: TextIO | None = None


def setup_logging(level: str) -> None:
    global _access_stream
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _access_stream = sys.stderr if access_log.isEnabledFor(logging.INFO) else None
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and any `extra` fields."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Upstream error text and tracebacks may quote a key this gateway holds.
        return scrub(orjson.dumps(line, default=str).decode())


def write_access_line(fields: dict[str, Any]) -> None:
    """One request's JSON line, in the format of _JsonFormatter, without building a
    LogRecord: this runs once per request, on the hot path (docs/performance.md)."""
    if _access_stream is None:
        access_log.info("request", extra=fields)
        return
    line = {"ts": round(time.time(), 3), "level": "info", "logger": access_log.name}
    line["msg"] = "request"
    line.update(fields)
    _access_stream.write(orjson.dumps(line, default=str).decode() + "\n")


def now() -> float:
    return time.perf_counter()
