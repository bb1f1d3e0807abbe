"""The pure decision: every reason code, and private requests never reaching a cloud target."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spillgate.server.config_routing import EngineRoutingConfig, SchedulerConfig
from spillgate.server.features import DEFAULT_MAX_TOKENS
from spillgate.server.scheduler import (
    Capabilities,
    CloudState,
    LocalState,
    Privacy,
    Reason,
    RequestFeatures,
    Tuning,
    decide,
    erlang_b,
    predict_ttft_ms,
    prefix_key,
    reserve_slots,
)

ENGINE = LocalState(
    "gpu0",
    ready=True,
    capabilities=Capabilities(tools=True, images=False, json_schema=True, max_context=4096),
    max_concurrency=4,
    prefill_tokens_per_s=1000.0,
    decode_tokens_per_s=20.0,
    mean_output_tokens=100.0,
)
CHEAP = CloudState(
    "mini", True, Capabilities(images=True), ttft_ms=500, input_price=0.15, output_price=0.6
)
PRICEY = CloudState(
    "big", True, Capabilities(images=True), ttft_ms=400, input_price=2.5, output_price=10.0
)
SLOW = CloudState(
    "slow", True, Capabilities(images=True), ttft_ms=9000, input_price=0.01, output_price=0.01
)


def busy(engine: LocalState, outstanding: int) -> LocalState:
    return LocalState(
        **{**{f: getattr(engine, f) for f in engine.__slots__}, "in_flight": outstanding}
    )


def features(**kw) -> RequestFeatures:
    base = {"prompt_tokens": 100, "prompt_tokens_max": 400, "max_tokens": 100}
    pinned = {"latency_budget_ms": 2000, "prediction_margin": 1.0}
    return RequestFeatures(model="m", **{**base, **pinned, **kw})


def test_the_inputs_default_to_what_the_configuration_defaults_to() -> None:
    # A request or engine state made without a configuration decides as a configured one.
    request, scheduler = RequestFeatures(model="m"), SchedulerConfig()
    assert request.latency_budget_ms == scheduler.latency_budget_ms == 5000
    assert request.prediction_margin == scheduler.prediction_margin == 2
    assert request.max_tokens == DEFAULT_MAX_TOKENS
    engine, settings = LocalState("e", True, Capabilities()), EngineRoutingConfig()
    assert engine.prefill_tokens_per_s == settings.prefill_tokens_per_s
    assert engine.decode_tokens_per_s == settings.decode_tokens_per_s
    assert engine.max_concurrency == 256


def test_idle_engine_serves_locally_with_clouds_behind_it() -> None:
    d = decide(features(), [ENGINE], [PRICEY, CHEAP])
    assert d.reason is Reason.LOCAL
    assert d.targets == ("gpu0", "mini", "big")  # fallbacks cheapest first
    assert d.predicted_local_ttft_ms == pytest.approx(1000 * (100 / 1000 + 1 / 20))


def test_prediction_grows_with_the_queue() -> None:
    idle = predict_ttft_ms(ENGINE, 100)
    full = predict_ttft_ms(busy(ENGINE, 4), 100)
    deeper = predict_ttft_ms(busy(ENGINE, 12), 100)
    assert idle < full < deeper
    # 9 ahead of us on 4 slots, each slot busy 100 tokens x 50 ms = 5 s.
    assert deeper == pytest.approx(1000 * (9 * 5.0 / 4 + 0.1 + 0.05))


def test_overload_spills_to_the_cheapest_cloud_in_time_keeping_local_last() -> None:
    d = decide(features(), [busy(ENGINE, 8)], [PRICEY, SLOW, CHEAP])
    assert d.reason is Reason.OVERLOAD
    assert d.targets == ("mini", "big", "gpu0")  # `slow` cannot answer in time
    assert d.predicted_local_ttft_ms > 2000


def test_overload_with_no_cloud_in_time_stays_local() -> None:
    d = decide(features(), [busy(ENGINE, 8)], [SLOW])
    assert d.reason is Reason.LOCAL and d.targets[0] == "gpu0"


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"prompt_tokens_max": 4000}, Reason.CONTEXT_TOO_LONG),
        ({"needs_tools": True}, None),
        ({"needs_images": True}, Reason.IMAGES_UNSUPPORTED),
    ],
)
def test_capability_gaps_go_to_a_capable_cloud(kw: dict, reason: Reason | None) -> None:
    d = decide(features(**kw), [ENGINE], [CHEAP])
    if reason is None:
        assert d.reason is Reason.LOCAL
    else:
        assert d.reason is reason and d.targets == ("mini",)


def test_tools_and_json_schema_gaps() -> None:
    plain = LocalState("cpu", True, Capabilities(tools=False, json_schema=False, max_context=2048))
    assert decide(features(needs_tools=True), [plain], [CHEAP]).reason is Reason.TOOLS_UNSUPPORTED
    d = decide(features(needs_json_schema=True), [plain], [CHEAP])
    assert d.reason is Reason.JSON_SCHEMA_UNSUPPORTED


def test_model_not_hosted_locally_spills() -> None:
    d = decide(features(), [], [CHEAP])
    assert d.reason is Reason.MODEL_NOT_LOCAL and d.targets == ("mini",)


def test_local_down_spills_at_once() -> None:
    down = LocalState("gpu0", False, ENGINE.capabilities)
    d = decide(features(), [down], [CHEAP])
    assert d.reason is Reason.LOCAL_DOWN and d.targets == ("mini",)


def test_private_request_overloaded_is_kept_local_and_queued() -> None:
    d = decide(features(privacy=Privacy.LOCAL_ONLY), [busy(ENGINE, 8)], [CHEAP, PRICEY])
    assert d.reason is Reason.KEPT_LOCAL_PRIVATE
    assert d.targets == ("gpu0",) and d.must_queue


def test_private_request_with_a_gap_gets_no_target() -> None:
    d = decide(features(privacy=Privacy.LOCAL_ONLY, needs_images=True), [ENGINE], [CHEAP])
    assert d.targets == () and d.reason is Reason.IMAGES_UNSUPPORTED
    assert d.explain["blocked"] == "private"


def test_private_request_with_local_down_waits_for_local() -> None:
    down = LocalState("gpu0", False, ENGINE.capabilities)
    d = decide(features(privacy=Privacy.LOCAL_ONLY), [down], [CHEAP])
    assert d.targets == () and d.must_queue


def test_spent_budget_keeps_it_local() -> None:
    d = decide(features(cloud_budget_ok=False), [busy(ENGINE, 8)], [CHEAP])
    assert d.reason is Reason.KEPT_LOCAL_BUDGET and d.targets == ("gpu0",)


def test_redact_then_spill_marks_the_spill() -> None:
    d = decide(features(privacy=Privacy.REDACT_TO_SPILL), [busy(ENGINE, 8)], [CHEAP])
    assert d.reason is Reason.SPILLED_REDACTED and d.redact and d.targets[0] == "mini"


def test_open_breaker_target_is_skipped() -> None:
    broken = CloudState("mini", False, Capabilities(images=True), input_price=0.1, output_price=0.1)
    d = decide(features(), [busy(ENGINE, 8)], [broken, PRICEY])
    assert d.targets[0] == "big"


def test_least_loaded_replica_wins() -> None:
    a, b = (
        busy(ENGINE, 3),
        LocalState(
            **{**{f: getattr(ENGINE, f) for f in ENGINE.__slots__}, "name": "gpu1", "in_flight": 0}
        ),
    )
    assert decide(features(), [a, b], []).targets == ("gpu1",)


def test_power_of_two_choices_among_many_replicas_never_picks_the_worst() -> None:
    replicas = [busy(ENGINE, n) for n in (20, 0, 5)]
    replicas = [
        LocalState(**{**{f: getattr(r, f) for f in r.__slots__}, "name": f"r{i}"})
        for i, r in enumerate(replicas)
    ]
    picked = {decide(features(tiebreak=t), replicas, []).targets[0] for t in range(50)}
    assert "r0" not in picked  # the most loaded of three never wins a pair
    assert picked == {"r1", "r2"}


@given(
    privacy=st.sampled_from(list(Privacy)),
    outstanding=st.integers(0, 50),
    ready=st.booleans(),
    prompt=st.integers(0, 10_000),
    images=st.booleans(),
    tools=st.booleans(),
    budget_ok=st.booleans(),
)
def test_a_local_only_request_never_lists_a_cloud_target(
    privacy: Privacy,
    outstanding: int,
    ready: bool,
    prompt: int,
    images: bool,
    tools: bool,
    budget_ok: bool,
) -> None:
    engine = busy(LocalState("gpu0", ready, ENGINE.capabilities, max_concurrency=4), outstanding)
    f = RequestFeatures(
        model="m",
        prompt_tokens=prompt,
        prompt_tokens_max=prompt,
        needs_images=images,
        needs_tools=tools,
        privacy=privacy,
        cloud_budget_ok=budget_ok,
    )
    d = decide(f, [engine], [CHEAP, PRICEY, SLOW])
    clouds = {"mini", "big", "slow"}
    if privacy is Privacy.LOCAL_ONLY or not budget_ok:
        assert not clouds & set(d.targets)


# -- a gap nothing on the route can fill: a 400, not a 503 to retry ---------------


def test_a_gap_with_no_cloud_target_is_the_gap_not_no_target() -> None:
    d = decide(features(needs_images=True), [ENGINE], [])
    assert d.targets == () and d.reason is Reason.IMAGES_UNSUPPORTED
    assert d.explain["blocked"] == "no_target_able"


def test_a_gap_no_cloud_target_has_the_capability_for_is_the_gap() -> None:
    text_only = CloudState("text", True, Capabilities(images=False))
    d = decide(features(needs_images=True), [ENGINE], [text_only])
    assert d.reason is Reason.IMAGES_UNSUPPORTED and d.explain["blocked"] == "no_target_able"
    tools_off = CloudState("plain", True, Capabilities(tools=False))
    cloud_only = decide(features(needs_tools=True), [], [tools_off])
    assert cloud_only.reason is Reason.TOOLS_UNSUPPORTED


def test_a_context_gap_says_the_window_it_overran() -> None:
    d = decide(features(max_tokens=5000), [ENGINE], [])
    assert d.reason is Reason.CONTEXT_TOO_LONG and d.explain["max_context"] == 4096


def test_a_gap_only_a_paused_cloud_target_can_fill_is_worth_a_retry() -> None:
    paused = CloudState("mini", False, Capabilities(images=True))
    d = decide(features(needs_images=True), [ENGINE], [paused])
    assert d.targets == () and d.reason is Reason.NO_TARGET


def test_a_private_gap_stays_a_gap_while_the_cloud_is_paused() -> None:
    paused = CloudState("mini", False, Capabilities(images=True))
    d = decide(features(needs_images=True, privacy=Privacy.LOCAL_ONLY), [ENGINE], [paused])
    assert d.reason is Reason.IMAGES_UNSUPPORTED and d.explain["blocked"] == "private"


def test_a_length_past_a_cloud_models_output_limit_is_lowered_not_a_gap() -> None:
    limited = CloudState("mini", True, Capabilities(max_context=128_000, max_output=16_384))
    d = decide(features(max_tokens=10**9), [ENGINE], [limited])
    assert d.targets == ("mini",) and d.reason is Reason.CONTEXT_TOO_LONG
    unlimited = CloudState("other", True, Capabilities(max_context=128_000))
    assert decide(features(max_tokens=10**9), [ENGINE], [unlimited]).targets == ()


def test_a_route_with_no_target_yet_is_worth_a_retry() -> None:
    d = decide(features(), [], [])  # a discovered group whose pods are not up yet
    assert d.targets == () and d.reason is Reason.NO_TARGET


# The reserve, the prefill backlog, KV pressure, GPU load and prefix affinity (issue 16).


def test_erlang_b_known_values() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_b(0, 3.0) == 1.0


def test_the_reserve_is_none_without_private_traffic_and_grows_with_it() -> None:
    assert reserve_slots(0.0, 10.0, 16) == 0
    light = reserve_slots(0.05, 10.0, 16)  # half an erlang
    heavy = reserve_slots(0.5, 10.0, 16)  # five erlangs
    assert 1 <= light < heavy <= 16
    assert erlang_b(heavy, 5.0) <= 0.05 < erlang_b(heavy - 1, 5.0)
    assert reserve_slots(10.0, 10.0, 16) == 16  # the private load alone fills the engine


def test_a_light_private_load_reserves_one_slot() -> None:
    assert reserve_slots(0.004, 10.0, 4, blocking=0.05) == 1  # 0.04 Erlangs: B(1) = 0.038
    assert reserve_slots(0.006, 10.0, 4, blocking=0.05) == 2  # 0.06 Erlangs: B(1) = 0.057


def test_a_reserve_makes_a_spillable_request_wait_for_a_slot() -> None:
    engine = busy(ENGINE, 3)  # one of four slots free
    free = predict_ttft_ms(engine, 100)
    assert free == pytest.approx(1000 * (100 / 1000 + 1 / 20))
    assert predict_ttft_ms(engine, 100, reserve=1) > free


def test_the_prefill_backlog_delays_the_first_token() -> None:
    backlog = dataclasses.replace(ENGINE, prefill_backlog_tokens=2000)
    assert predict_ttft_ms(backlog, 100) - predict_ttft_ms(ENGINE, 100) == pytest.approx(2000)


def test_a_full_kv_cache_counts_as_no_free_slot() -> None:
    near = dataclasses.replace(ENGINE, kv_cache_usage=0.97)
    assert predict_ttft_ms(near, 100) > predict_ttft_ms(ENGINE, 100)
    assert predict_ttft_ms(near, 100, kv_pressure=0.99) == predict_ttft_ms(ENGINE, 100)


def test_a_gpu_busy_with_someone_elses_work_slows_the_prediction() -> None:
    foreign = dataclasses.replace(ENGINE, gpu_utilization=0.75)
    assert predict_ttft_ms(foreign, 1000) > predict_ttft_ms(ENGINE, 1000)
    # Busy with its own requests: that load is in the queue already, not counted twice.
    own = dataclasses.replace(foreign, in_flight=1)
    assert predict_ttft_ms(own, 1000) == predict_ttft_ms(busy(ENGINE, 1), 1000)


def test_the_reserve_applies_to_spillable_requests_only() -> None:
    engine = dataclasses.replace(busy(ENGINE, 3), reserve=1, mean_request_s=20.0)
    plain = decide(features(), [engine], [CHEAP])
    assert plain.reason is Reason.OVERLOAD and plain.explain["reserve_applied"] is True
    private = decide(features(privacy=Privacy.LOCAL_ONLY), [engine], [CHEAP])
    assert private.targets == ("gpu0",) and private.explain["reserve_applied"] is False


def test_under_a_reserve_a_spillable_request_takes_an_open_slot_or_spills() -> None:
    """With the open slots taken, a spillable request spills even where the predicted wait
    would fit the budget: private requests take freed slots first, so that wait is not
    foreseeable. Without a reserve, the same wait keeps it local."""
    quick = dataclasses.replace(busy(ENGINE, 3), mean_request_s=0.01)  # slots free fast
    waits = decide(features(), [dataclasses.replace(quick, reserve=1)], [CHEAP])
    assert waits.reason is Reason.OVERLOAD and waits.explain["reserve_full"] is True
    assert decide(features(), [quick], [CHEAP]).reason is Reason.LOCAL
    room = decide(features(), [dataclasses.replace(busy(ENGINE, 2), reserve=1)], [CHEAP])
    assert room.targets[0] == "gpu0" and room.explain["reserve_full"] is False


REPLICAS = [dataclasses.replace(ENGINE, name=f"r{i}") for i in range(4)]


def test_the_same_prefix_goes_to_the_same_replica() -> None:
    for text in (b"system: you are a helpful assistant", b"another conversation"):
        asked = features(prefix_key=prefix_key(text))
        picks = {
            decide(dataclasses.replace(asked, tiebreak=t), REPLICAS, []).targets[0]
            for t in range(20)
        }
        assert len(picks) == 1
        assert decide(asked, REPLICAS, []).explain["picked"] == "affinity"


def test_removing_a_replica_the_key_did_not_pick_keeps_its_pick() -> None:
    for n in range(20):
        asked = features(prefix_key=prefix_key(f"prompt {n}".encode()))
        chosen = decide(asked, REPLICAS, []).targets[0]
        rest = [e for e in REPLICAS if e.name != chosen]
        for gone in rest:
            left = [e for e in REPLICAS if e is not gone]
            assert decide(asked, left, []).targets[0] == chosen


def test_a_replica_over_its_load_bound_passes_the_prefix_on() -> None:
    asked = features(prefix_key=prefix_key(b"a shared system prompt"))
    chosen = decide(asked, REPLICAS, []).targets[0]
    loaded = [busy(e, 3) if e.name == chosen else e for e in REPLICAS]
    moved = decide(asked, loaded, [])
    assert moved.targets[0] != chosen and moved.explain["picked"] == "affinity_next"
    # Affinity off (load factor at most 1): the least predicted wait picks.
    off = decide(asked, loaded, [], Tuning(affinity_load_factor=1.0))
    assert off.explain["picked"] == "least_wait" and off.targets[0] != chosen
