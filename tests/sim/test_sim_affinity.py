"""The prefix-affinity study: block keys, the LRU prefix cache and the hit-rate accounting."""

from __future__ import annotations

import pytest

from bench.sim.affinity import (
    BLOCK_TOKENS,
    SYSTEM_PROMPT_TOKENS,
    PrefixCache,
    Turn,
    conversations,
    simulate,
)
from bench.sim.profiles import VLLM_H100_LLAMA8B


def turn(i: int, conversation: int, system: int, at: float, prompt: int) -> Turn:
    return Turn(i, conversation, system, at, prompt, 10, 40)


def test_the_cache_hits_on_the_longest_run_of_leading_blocks_and_evicts_the_oldest() -> None:
    cache = PrefixCache(capacity_blocks=3)
    cache.insert([(1,), (2,)])
    assert cache.hit_blocks([(1,), (9,), (2,)]) == 1
    cache.insert([(3,), (4,)])
    # Four blocks in a cache of three: 2, the least recently used, went.
    assert cache.hit_blocks([(1,), (2,)]) == 1
    assert cache.hit_blocks([(3,), (4,)]) == 2


def test_conversations_on_one_system_prompt_share_its_blocks_and_no_others() -> None:
    system_tokens = SYSTEM_PROMPT_TOKENS[1]
    one, other = turn(0, 0, 1, 0.0, 700), turn(1, 1, 1, 0.0, 700)
    shared = system_tokens // BLOCK_TOKENS
    assert one.block_keys()[:shared] == other.block_keys()[:shared]
    assert set(one.block_keys()[shared:]).isdisjoint(other.block_keys())
    # A later turn of the same conversation starts with all of the earlier prompt's blocks.
    later = turn(2, 0, 1, 30.0, 1000)
    assert later.block_keys()[: len(one.block_keys())] == one.block_keys()


def test_hit_rate_counts_hit_tokens_over_prompt_tokens() -> None:
    # One replica: the second turn finds the first turn's 700 tokens (43 full blocks).
    turns = [turn(0, 0, 1, 0.0, 700), turn(1, 0, 1, 30.0, 1000)]
    row = simulate(turns, VLLM_H100_LLAMA8B, 1, affinity=False, budget_s=2.0, seed=1)
    assert row.hit_rate == pytest.approx(43 * BLOCK_TOKENS / 1700)


def test_affinity_keeps_a_system_prompt_on_one_replica_and_hits_more() -> None:
    turns = conversations(VLLM_H100_LLAMA8B, 40, rate_per_s=20.0, seed=3)
    with_affinity = simulate(turns, VLLM_H100_LLAMA8B, 4, affinity=True, budget_s=2.0, seed=1)
    without = simulate(turns, VLLM_H100_LLAMA8B, 4, affinity=False, budget_s=2.0, seed=1)
    assert with_affinity.hit_rate > without.hit_rate
