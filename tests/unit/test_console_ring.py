"""The console's decision ring: bounded, newest first, filterable, and counters that see
the whole 15 minutes however few records the ring keeps."""

from __future__ import annotations

from spillgate.server.decisions import DecisionRecord, DecisionRing, Filters, percentile

T0 = 1_700_000_040.0  # the start of a minute


def record(ts: float, n: int = 0, **kw: object) -> DecisionRecord:
    fields: dict[str, object] = {
        "ts": ts,
        "request_id": f"req-{n}",
        "key_id": "key_a",
        "key_name": "alice",
        "endpoint": "chat/completions",
        "model": "small",
        "route": "local",
        "kind": "local",
        "reason": "local",
        "status": 200,
        "ttft_ms": 10.0,
        "cost_usd": 0.0,
        "privacy": "may_spill",
        "explain": {"predicted_local_ttft_ms": 12.5},
    }
    fields.update(kw)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def test_the_ring_keeps_only_the_newest_and_lists_them_newest_first() -> None:
    ring = DecisionRing(size=3)
    for n in range(5):
        ring.add(record(T0 + n, n))
    assert [r.request_id for r in ring.recent()] == ["req-4", "req-3", "req-2"]
    assert ring.find("req-0") is None and ring.find("req-3") is not None


def test_filters_narrow_by_route_reason_key_and_model() -> None:
    ring = DecisionRing()
    ring.add(record(T0, 1))
    ring.add(record(T0, 2, route="oai/gpt", kind="cloud", reason="overload", key_name="bob"))
    ring.add(record(T0, 3, model="big"))
    assert [r.request_id for r in ring.recent(Filters(reason="overload"))] == ["req-2"]
    assert [r.request_id for r in ring.recent(Filters(key="bob"))] == ["req-2"]
    assert [r.request_id for r in ring.recent(Filters(key="key_a"))] == ["req-3", "req-2", "req-1"]
    assert [r.request_id for r in ring.recent(Filters(model="big", route="local"))] == ["req-3"]
    assert ring.recent(Filters(route="local"), limit=1)[0].request_id == "req-3"
    ring.add(record(T0, 4, key_id=None, key_name=None, route="none", kind="none", status=401))
    assert [r.request_id for r in ring.recent(Filters(key="anonymous"))] == ["req-4"]


def test_reason_counts_cover_15_minutes_beyond_the_ring_and_forget_older_ones() -> None:
    ring = DecisionRing(size=2)  # far fewer records than requests
    for minute in range(20):
        for n in range(3):
            ring.add(record(T0 + minute * 60 + n, reason="overload", kind="cloud"))
    now = T0 + 19 * 60 + 30
    # Minutes 5..19 are the last 15 (this one included): 15 x 3 requests.
    assert ring.reason_counts(now) == {("cloud", "overload"): 45}
    assert ring.reason_counts(now, minutes=1) == {("cloud", "overload"): 3}
    # Nothing new for a long while: the old minutes no longer count.
    assert ring.reason_counts(now + 3600) == {}


def test_per_second_counts_the_last_whole_seconds() -> None:
    ring = DecisionRing(size=1)
    for second in range(10):
        for _ in range(4):
            ring.add(record(T0 + second + 0.5))
    assert ring.per_second(T0 + 10.2, 10) == 4.0
    assert ring.per_second(T0 + 10.2, 5) == 4.0
    assert ring.per_second(T0 + 100, 10) == 0.0  # a slot from long ago is not counted


def test_ttft_percentiles_per_route_leave_out_refusals() -> None:
    ring = DecisionRing()
    for ms in range(1, 101):
        ring.add(record(T0, ms, ttft_ms=float(ms)))
    ring.add(record(T0, 999, route="none", kind="none", status=429, ttft_ms=None))
    ttft = ring.ttft_by_route()
    assert set(ttft) == {"local"}
    assert ttft["local"] == {"count": 100, "p50_ms": 50.0, "p99_ms": 99.0}
    assert percentile([5.0], 99) == 5.0


def test_the_json_holds_the_explanation_only_when_asked_and_in_plain_types() -> None:
    r = record(T0, explain={"targets": ("a", "b"), "nan": float("nan"), "n": 3})
    assert "explain" not in r.to_json()
    assert r.to_json(with_explain=True)["explain"] == {"targets": ["a", "b"], "nan": None, "n": 3}
