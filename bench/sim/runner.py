"""Replay requests through one policy: route each on arrival, then let the engine finish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.sim.cloud import Cloud, CloudProfile
from bench.sim.engine import Admission, Engine, EngineProfile, Job
from bench.sim.policies import LOCAL, LocalOnly, Policy, World
from bench.sim.trace import Request, scale_to_rate

# What a refusal costs before the next target is tried: one loopback round trip to vLLM.
REFUSAL_S = 0.005

FAILED = "failed"


@dataclass(slots=True)
class Outcome:
    request: Request
    target: str  # LOCAL, a provider name, or FAILED
    reason: str
    ttft_s: float | None = None  # None when nothing answered
    cost_usd: float = 0.0
    predicted_local_ttft_s: float | None = None
    job: Job | None = None  # the engine's record while a local answer is pending


def replay(
    requests: Sequence[Request],
    policy: Policy,
    profile: EngineProfile,
    providers: Sequence[CloudProfile],
    ttft_budget_s: float,
    seed: int,
) -> list[Outcome]:
    engine = Engine(profile, max_waiting=policy.engine_queue_bound)
    n = max(r.request_id for r in requests) + 1
    cloud = Cloud(providers, seed, n)
    outcomes = []
    for request in requests:
        t = request.arrival_s
        engine.advance_to(t)
        cloud.observe_until(t)
        routing = policy.route(request, World(t, engine, cloud, ttft_budget_s))
        outcome = Outcome(
            request, FAILED, routing.reason, None, 0.0, routing.predicted_local_ttft_s
        )
        delay = 0.0
        for target in routing.targets:
            if target == LOCAL:
                job = Job(request.request_id, request.prompt_tokens, request.output_tokens, t)
                if engine.submit(job) is Admission.QUEUED:
                    outcome.target, outcome.job = LOCAL, job
                    break
                delay += REFUSAL_S
                continue
            answer = cloud.send(
                target, request.request_id, request.prompt_tokens, request.output_tokens, t + delay
            )
            if answer is not None:
                outcome.target, outcome.ttft_s = target, delay + answer.ttft_s
                outcome.cost_usd = answer.cost_usd
                break
            delay += REFUSAL_S
        outcomes.append(outcome)
    engine.drain()
    for outcome in outcomes:
        if outcome.job is not None:
            assert outcome.job.first_token_s is not None
            outcome.ttft_s = outcome.job.first_token_s - outcome.request.arrival_s
            outcome.job = None
    return outcomes


def within_budget(outcomes: Sequence[Outcome], budget_s: float) -> float:
    ok = sum(1 for o in outcomes if o.ttft_s is not None and o.ttft_s <= budget_s)
    return ok / len(outcomes)


def local_capacity(
    requests: Sequence[Request],
    profile: EngineProfile,
    ttft_budget_s: float,
    target_share: float = 0.99,
    iterations: int = 12,
) -> float:
    """The highest request rate (trace-shaped arrivals) at which the engine alone answers
    `target_share` of the requests it could answer within the budget when idle (so prompts
    too long for it, or too long to prefill in time, do not count); found by bisection."""
    servable = [
        r
        for r in requests
        if profile.fits(r.prompt_tokens, r.output_tokens)
        and profile.solo_ttft_s(r.prompt_tokens) <= ttft_budget_s
    ]

    def meets(rate: float) -> bool:
        outcomes = replay(scale_to_rate(servable, rate), LocalOnly(), profile, (), 1.0, 0)
        return within_budget(outcomes, ttft_budget_s) >= target_share

    low, high = 0.0, _first_failing(meets, start=0.01)
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def _first_failing(meets: Callable[[float], bool], start: float) -> float:
    rate = start
    while meets(rate):
        rate *= 2
    return rate
