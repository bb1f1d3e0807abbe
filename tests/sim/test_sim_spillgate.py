"""Spillgate in the simulator: the server's `decide`, never sending sensitive data out."""

from __future__ import annotations

import random

from bench.sim.cloud import default_providers
from bench.sim.policies import LOCAL
from bench.sim.profiles import VLLM_CPU_SMOLLM2
from bench.sim.runner import FAILED, replay
from bench.sim.spillgate_policy import SpillgatePolicy
from bench.sim.trace import Request, RequestClass


def overload(n: int = 400, sensitive_share: float = 0.5) -> list[Request]:
    """Far more than the CPU engine can take, with prompts beyond its 2,048-token context."""
    rng = random.Random(11)
    return [
        Request(
            request_id=i,
            arrival_s=i * 0.05,
            prompt_tokens=rng.choice([50, 400, 1500, 3000]),
            output_tokens=rng.choice([10, 100, 300]),
            klass=RequestClass.MARKED if rng.random() < sensitive_share else RequestClass.PLAIN,
        )
        for i in range(n)
    ]


def test_spillgate_never_sends_a_sensitive_request_to_a_cloud() -> None:
    requests = overload()
    outcomes = replay(
        requests,
        SpillgatePolicy(VLLM_CPU_SMOLLM2, 2.0),
        VLLM_CPU_SMOLLM2,
        default_providers(),
        2.0,
        seed=1,
    )
    sensitive = [o for o in outcomes if o.request.sensitive]
    assert sensitive, "the load must contain sensitive requests"
    assert {o.target for o in sensitive} <= {LOCAL, FAILED}
    # Under this load the others do spill: the check above is not vacuous.
    assert any(o.target not in (LOCAL, FAILED) for o in outcomes if not o.request.sensitive)


def test_private_arrivals_size_a_reserve_and_the_executor_reports_reach_the_runtime() -> None:
    # One request every 0.5 s, every other one marked; short prompts the engine takes.
    requests = [
        Request(i, 0.5 * i, 200, 50, RequestClass.MARKED if i % 2 else RequestClass.PLAIN)
        for i in range(200)
    ]
    policy = SpillgatePolicy(VLLM_CPU_SMOLLM2, 2.0)
    replay(requests, policy, VLLM_CPU_SMOLLM2, default_providers(), 2.0, seed=1)
    runtime = policy.runtime
    assert runtime.private_rate(requests[-1].arrival_s) > 0
    assert runtime.private_request_s is not None and runtime.private_request_s > 0
    assert policy.reserve(requests[-1].arrival_s) >= 1
    # Every prompt handed over but the few still in prefill at the last arrival came back.
    assert 0 <= runtime.prefill_backlog_tokens <= 16 * 200


def test_without_private_traffic_there_is_no_reserve() -> None:
    requests = [Request(i, 0.5 * i, 200, 50) for i in range(100)]
    policy = SpillgatePolicy(VLLM_CPU_SMOLLM2, 2.0)
    replay(requests, policy, VLLM_CPU_SMOLLM2, default_providers(), 2.0, seed=1)
    assert policy.reserve(requests[-1].arrival_s) == 0
    assert policy.runtime.private_rate(requests[-1].arrival_s) == 0
