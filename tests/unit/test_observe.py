"""Metrics children resolved through the cache read on /metrics as `labels()` would, and
the access log's direct line reads as the JSON formatter would have written it."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from prometheus_client import generate_latest

from spillgate.server import observe
from spillgate.server.observe import Metrics, _JsonFormatter


def test_a_cached_child_counts_under_the_labels_it_was_asked_for() -> None:
    m = Metrics()
    first = m.child(m.requests, "chat/completions", "local", "local", 200)
    assert m.child(m.requests, "chat/completions", "local", "local", 200) is first
    first.inc()
    m.requests.labels("chat/completions", "local", "local", "200").inc()
    m.child(m.tokens, "local", "prompt").inc(7)
    text = generate_latest(m.registry).decode()
    assert (
        'spillgate_requests_total{endpoint="chat/completions",reason="local",route="local",'
        'status="200"} 2.0' in text
    )
    assert 'spillgate_tokens_total{kind="prompt",route="local"} 7.0' in text


def test_the_access_line_is_the_formatters_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(observe, "_access_stream", stream)
    fields = {"request_id": "r-1", "status": 200, "ttft_ms": 12.345, "cost_usd": 0.0}
    fields |= {"key_id": None, "streamed": True}
    observe.write_access_line(fields)
    written = stream.getvalue()
    assert written.endswith("\n") and written.count("\n") == 1
    record = logging.makeLogRecord({"name": "spillgate.access", "levelname": "INFO"})
    record.msg, record.created = "request", orjson.loads(written)["ts"]
    record.__dict__.update(fields)
    assert written[:-1] == _JsonFormatter().format(record)
