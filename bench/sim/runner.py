"""Replay requests through one policy: route each on arrival, then let the engine finish."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.sim.cloud import Cloud, CloudProfile
from bench.sim.engine import Admission, Engine, EngineProfile, Job
from bench.sim.gateway import PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE, GatewayQueue, Waiter
from bench.sim.policies import LOCAL, LocalOnly, Policy, World
from bench.sim.trace import Request, scale_to_rate
from spillgate.server.scheduler import DEFAULT_CLOUD_TTFT_S

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
    return _Replay(policy, profile, providers, ttft_budget_s, seed, len(requests)).run(requests)


class _Replay:
    def __init__(
        self,
        policy: Policy,
        profile: EngineProfile,
        providers: Sequence[CloudProfile],
        ttft_budget_s: float,
        seed: int,
        n_requests: int,
    ) -> None:
        self.policy = policy
        self.budget_s = ttft_budget_s
        self.engine = Engine(
            profile, max_waiting=policy.engine_queue_bound, history_s=policy.scrape_history_s
        )
        self.cloud = Cloud(providers, seed, n_requests)
        settings = policy.gateway_queue
        self.gateway = (
            GatewayQueue(settings.capacity, settings.max_waiting) if settings is not None else None
        )
        self.max_wait_s = settings.max_wait_s if settings is not None else 0.0
        self.outcomes: dict[int, Outcome] = {}

    def run(self, requests: Sequence[Request]) -> list[Outcome]:
        for request in requests:
            t = request.arrival_s
            self._settle(t)
            self.cloud.observe_until(t)
            world = World(t, self.engine, self.cloud, self.budget_s, self.gateway)
            routing = self.policy.route(request, world)
            outcome = Outcome(request, FAILED, routing.reason, None, 0.0)
            outcome.predicted_local_ttft_s = routing.predicted_local_ttft_s
            self.outcomes[request.request_id] = outcome
            self._try(outcome, routing.targets, t)
        self._settle(math.inf)
        for outcome in self.outcomes.values():
            if outcome.job is not None:
                assert outcome.job.first_token_s is not None
                outcome.ttft_s = outcome.job.first_token_s - outcome.request.arrival_s
                outcome.job = None
        return list(self.outcomes.values())

    def _next_ttft_s(self, target: str) -> float:
        provider = self.cloud.providers.get(target)
        return provider.ttft_median_s if provider is not None else DEFAULT_CLOUD_TTFT_S

    def _try(self, outcome: Outcome, targets: Sequence[str], t: float) -> None:
        """Try `targets` in order from time `t`, as the executor does."""
        request = outcome.request
        for i, target in enumerate(targets):
            if target == LOCAL and self.gateway is not None:
                priority = PRIORITY_LOCAL_ONLY if request.sensitive else PRIORITY_SPILLABLE
                if self.gateway.try_acquire(priority):
                    if self._submit(outcome, t):
                        return
                    self.gateway.active -= 1
                elif not self.gateway.full and not (
                    # As the executor: while a reserve is kept, a request that may still
                    # spill does not wait for a slot (the private lane goes first).
                    priority == PRIORITY_SPILLABLE and i + 1 < len(targets) and self.gateway.reserve
                ):
                    # It waits for a slot: as long as the budget allows if it may still move
                    # on, as long as the queue's limit allows if not.
                    more = i + 1 < len(targets)
                    # As the executor: leave the next target time to answer within budget.
                    wait_s = (
                        max(0.0, self.budget_s - self._next_ttft_s(targets[i + 1]))
                        if more
                        else self.max_wait_s
                    )
                    waiter = Waiter(
                        request.request_id,
                        request.arrival_s + wait_s,
                        priority,
                        tuple(targets[i + 1 :]),
                        request.arrival_s,
                        request.prompt_tokens,
                        request.arrival_s + self.budget_s,
                    )
                    self.gateway.enqueue(waiter)
                    return
                t += REFUSAL_S
            elif target == LOCAL:
                if self._submit(outcome, t):
                    return
                t += REFUSAL_S
            else:
                answer = self.cloud.send(
                    target, request.request_id, request.prompt_tokens, request.output_tokens, t
                )
                if answer is not None:
                    outcome.target = target
                    outcome.ttft_s = t - request.arrival_s + answer.ttft_s
                    outcome.cost_usd = answer.cost_usd
                    return
                t += REFUSAL_S
        outcome.target = FAILED

    def _submit(self, outcome: Outcome, t: float) -> bool:
        r = outcome.request
        job = Job(r.request_id, r.prompt_tokens, r.output_tokens, t)
        if self.engine.submit(job) is not Admission.QUEUED:
            return False
        outcome.target, outcome.job = LOCAL, job
        return True

    def _settle(self, t: float) -> None:
        """Bring the engine (and the gateway queue in front of it) up to time `t`."""
        gateway, engine = self.gateway, self.engine
        while True:
            before = len(engine.finished)
            engine.advance_to(t, stop_on_finish=gateway is not None and gateway.waiting > 0)
            if gateway is None:
                return
            freed = len(engine.finished) - before
            # Slots free at the end of the step that finished their requests.
            now = engine.now if freed else t
            for waiter in gateway.expire(now):
                self._try(self.outcomes[waiter.request_id], waiter.rest, waiter.deadline_s)
            for _ in range(freed):
                next_in_line = gateway.hand_on(now)
                if next_in_line is not None and not self._submit(
                    self.outcomes[next_in_line.request_id], now
                ):
                    gateway.active -= 1
            if engine.now >= t or not engine.busy:
                return


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
