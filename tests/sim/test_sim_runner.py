"""The runner carries a routing out as the executor does, gateway-side queue included."""

from __future__ import annotations

import pytest

from bench.sim.cloud import default_providers
from bench.sim.engine import EngineProfile
from bench.sim.policies import LOCAL, DedicatedSplit, GatewaySettings, Routing, World
from bench.sim.runner import FAILED, replay
from bench.sim.trace import Request, RequestClass

# One slot; a 1,000-token prompt takes 1.01 s to its first token, 100 more tokens 1.1 s.
ONE_SLOT = EngineProfile(
    name="one-slot",
    source="hand-made",
    prefill_tokens_per_s=1000.0,
    step_base_s=0.010,
    step_per_seq_s=0.001,
    max_num_seqs=1,
    kv_capacity_tokens=10_000,
    max_model_len=4096,
    chunked_prefill_tokens=None,
)


class LocalThenCloud:
    """Local first through a one-slot gateway queue, the cheapest cloud after it."""

    name = "local-then-cloud"
    engine_queue_bound: int | None = None
    gateway_queue: GatewaySettings | None = GatewaySettings(1, 10, max_wait_s=60.0)
    scrape_history_s = 0.0

    def route(self, request: Request, world: World) -> Routing:
        if request.sensitive:
            return Routing((LOCAL,), "local")
        return Routing((LOCAL, world.cloud.by_price()[0].name), "local")


def test_a_waiter_that_may_spill_moves_on_when_its_budget_is_spent() -> None:
    first = Request(0, 0.0, 1000, 100)
    second = Request(1, 0.1, 1000, 100)
    outcomes = replay([first, second], LocalThenCloud(), ONE_SLOT, default_providers(), 0.5, 1)
    assert outcomes[0].target == LOCAL
    assert outcomes[0].ttft_s == pytest.approx(1.01)
    # The slot stays busy until 2.11 s. The second gives up early enough for the cloud
    # target's typical first token to still land in the 0.5 s budget, as the executor does.
    assert outcomes[1].target != LOCAL and outcomes[1].target != FAILED
    assert outcomes[1].ttft_s is not None and outcomes[1].ttft_s <= 0.5
    assert outcomes[1].cost_usd > 0


def test_a_sensitive_waiter_keeps_its_place_until_a_slot_frees() -> None:
    first = Request(0, 0.0, 1000, 100)
    second = Request(1, 0.1, 1000, 100, RequestClass.MARKED)
    outcomes = replay([first, second], LocalThenCloud(), ONE_SLOT, default_providers(), 0.5, 1)
    assert outcomes[1].target == LOCAL
    # The first finishes at 1.01 + 99 x 11 ms; then the second's own prefill.
    assert outcomes[1].ttft_s == pytest.approx(1.01 + 99 * 0.011 + 1.01 - 0.1)


def test_the_split_gives_the_engine_to_private_requests_and_plain_ones_to_the_cheapest() -> None:
    requests = [
        Request(0, 0.0, 1000, 100, RequestClass.PLAIN),
        Request(1, 0.1, 1000, 100, RequestClass.MARKED),
        Request(2, 0.2, 1000, 100, RequestClass.PERSONAL),
        Request(3, 0.3, 1000, 100, RequestClass.PLAIN),
    ]
    providers = default_providers()
    cheapest = min(providers, key=lambda p: 3 * p.price.input + p.price.output).name
    outcomes = replay(requests, DedicatedSplit(), ONE_SLOT, providers, 2.0, 1)
    assert [o.target for o in outcomes] == [cheapest, LOCAL, LOCAL, cheapest]
    # Straight to vLLM in arrival order: the personal request waits for the marked one.
    assert outcomes[1].ttft_s == pytest.approx(1.01)
    assert outcomes[2].ttft_s == pytest.approx(1.01 + 99 * 0.011 + 1.01 - 0.1)
