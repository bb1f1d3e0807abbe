"""Metrics children resolved through the cache read on /metrics as `labels()` would."""

from __future__ import annotations

from prometheus_client import generate_latest

from spillgate.server.observe import Metrics


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
