"""What reaches the scheduler from outside the decision: each engine's GPUs, the prompt
prefix's affinity key, the reserve as the store computes it, and `route --explain`."""

from __future__ import annotations

from typing import Any

import pytest

from spillgate.models.engine import LocalEngine
from spillgate.models.gpu import GpuState
from spillgate.protocol import Endpoint
from spillgate.server.admission import ANONYMOUS_KEY, PRIORITY_LOCAL_ONLY
from spillgate.server.cli_route import render
from spillgate.server.config import from_dict
from spillgate.server.features import PREFIX_BYTES, prompt_prefix
from spillgate.server.monitor import busiest_utilization, engine_gpus
from spillgate.server.runtime import ArrivalRate, RuntimeStore


def gpu(index: int, busy_pct: int) -> GpuState:
    return GpuState(index, "H100", f"GPU-{index}abc", 1, 2, busy_pct, 0.0)


GPUS = (gpu(0, 10), gpu(1, 90), gpu(2, 40))


def test_an_engine_sees_the_busiest_of_the_gpus_it_may_use() -> None:
    assert busiest_utilization(engine_gpus(GPUS, {"CUDA_VISIBLE_DEVICES": "0,2"})) == 0.4
    assert busiest_utilization(engine_gpus(GPUS, {"CUDA_VISIBLE_DEVICES": "GPU-1"})) == 0.9
    assert busiest_utilization(engine_gpus(GPUS, {})) == 0.9  # unset: every GPU
    assert busiest_utilization(engine_gpus(GPUS, {"CUDA_VISIBLE_DEVICES": ""})) is None
    assert busiest_utilization(engine_gpus((), {})) is None  # no GPU here


def test_the_prefix_is_the_prompts_first_kb_in_order() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ]
    }
    assert prompt_prefix(chat, Endpoint.CHAT) == b"systembe briefuserhi"
    long = {"messages": [{"role": "user", "content": "x" * 5000}, {"role": "user"}]}
    assert prompt_prefix(long, Endpoint.CHAT) == b"user" + b"x" * (PREFIX_BYTES - 4)
    assert prompt_prefix({"prompt": "once"}, Endpoint.COMPLETIONS) == b"once"
    assert prompt_prefix({"input": ["a", "b"]}, Endpoint.EMBEDDINGS) == b"a"


def _store() -> tuple[RuntimeStore, LocalEngine]:
    engines = [{"name": "e", "url": "http://127.0.0.1:9/v1", "served_model_names": ["m"],
                "scheduling": {"max_concurrency": 16}}]  # fmt: skip
    engine = LocalEngine("e", "http://127.0.0.1:9/v1", None, served_models=frozenset({"m"}))
    return RuntimeStore(from_dict({"engines": engines})), engine


def test_measured_private_arrivals_reserve_slots_in_the_snapshot_and_the_queue() -> None:
    store, engine = _store()
    assert store.local_state(engine, now=0.0).reserve == 0
    runtime = store.engine(engine)
    for t in range(60):
        runtime.note_private_arrival(float(t))
    runtime.observe_private(10.0)
    state = store.local_state(engine, now=60.0)
    assert state.reserve >= 1 and store.reserve(engine, ANONYMOUS_KEY, now=60.0) == state.reserve
    assert state.private_arrivals_per_s > 0 and state.private_hold_s == 10.0


def _answer(**numbers: Any) -> dict[str, Any]:
    local = {
        "name": "e", "ready": True, "in_flight": 15, "running": 15, "waiting": 0, "queued": 0,
        "max_concurrency": 16, "decode_tokens_per_s": 30.0, "capabilities": {"max_context": 4096},
        "reserve": 2, "private_arrivals_per_s": 0.031, "prefill_tokens_per_s": 812.4,
        "prefill_measured": True, "prefill_backlog_tokens": 1200, "kv_cache_usage": 0.42,
        "gpu_utilization": None,
    }  # fmt: skip
    return {
        "model": "m",
        "decision": {"reason": "overload", "targets": ["oai", "e"],
                     "predicted_local_ttft_ms": 4000.0, "numbers": numbers},
        "features": {"prompt_tokens": 10, "prompt_tokens_max": 40, "max_tokens": 20,
                     "privacy": "may_spill", "cloud_budget_ok": True, "latency_budget_ms": 2000,
                     "needs_tools": False, "needs_images": False, "needs_json_schema": False},
        "local": [local], "cloud": [], "gpus": [],
    }  # fmt: skip


def test_route_explain_shows_the_reserve_the_prefill_rate_and_the_pick() -> None:
    text = render(_answer(engine="e", picked="least_wait", reserve=2, reserve_applied=True))
    assert (
        "reserve    2 of 16 slots kept for requests that may not spill "
        "(0.031 req/s measured); applied to this request"
    ) in text
    assert "prefill 812 tok/s measured, backlog 1200 tokens, KV cache 42% used" in text
    assert "GPU" not in text.split("load")[1].split("\n")[0], "no GPU known: not shown"
    assert "picked     e by least predicted wait" in text
    private = render(_answer(engine="e", picked="affinity", reserve=2, reserve_applied=False))
    assert "not applied to this request" in private and "by prefix affinity" in private


def test_the_arrival_rate_reads_a_steady_rate_from_the_first_minutes() -> None:
    """One arrival every 4 s for 4 minutes under a 10-minute window reads about 0.25/s, not
    the third of it a plain decayed count would give before a whole window has passed."""
    rate = ArrivalRate(window_s=600.0)
    assert rate.at(0.0) == 0.0
    for i in range(60):
        rate.note(4.0 * i)
    assert rate.at(240.0) == pytest.approx(0.25, rel=0.05)
    assert rate.at(240.0 + 1800.0) < 0.02  # then it decays when arrivals stop
    assert rate.at(240.0 + 3 * 3600.0) == 0.0  # and reads none once it has faded


def test_one_private_request_long_ago_reserves_nothing() -> None:
    rate = ArrivalRate(window_s=600.0)
    rate.note(0.0)
    assert rate.at(60.0) > 0
    assert rate.at(600.0) == 0.0 and rate.faded(600.0)  # e^-1 of one arrival: under 0.5


def test_a_first_arrival_is_not_read_as_a_burst() -> None:
    rate = ArrivalRate(window_s=600.0)
    rate.at(0.0)
    rate.note(1.0)
    assert rate.at(1.0) < 1 / 25  # read over at least MIN_OBSERVED_S, not one second


def test_one_keys_private_load_reserves_against_other_keys_only_up_to_its_share() -> None:
    """A tenant's on-prem marks keep slots from its own plain requests in full, and from
    other tenants' only up to the share the private lane gives it, less what it holds."""
    store, engine = _store()  # 16 slots, a key's share 0.25: 4 slots
    runtime = store.engine(engine)
    for t in range(60):
        runtime.note_private_arrival(float(t), "marks-everything")
    runtime.observe_private(10.0)  # ten Erlangs: more than its share
    own = store.reserve(engine, "marks-everything", now=60.0)
    other = store.reserve(engine, "someone-else", now=60.0)
    assert own > 4 and other == 4
    for _ in range(3):
        assert runtime.queue.try_acquire("marks-everything", PRIORITY_LOCAL_ONLY)
    assert store.reserve(engine, "someone-else", now=60.0) == 1  # it holds 3 of its 4
    assert store.reserve(engine, "marks-everything", now=60.0) == own


def test_a_new_keys_first_private_request_is_read_over_the_time_watched() -> None:
    """A key's first private request an hour after the engine was first seen is one
    request in an hour, not a burst of one in the last half-minute."""
    store, engine = _store()
    store.local_state(engine, now=0.0)
    runtime = store.engine(engine)
    runtime.note_private_arrival(3600.0, "new-tenant")
    assert runtime.private_rate(3600.0) < 2 / 600  # about 1 / window, not 1 / 30 s
