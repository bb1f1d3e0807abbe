"""The engine model against cases small enough to work out by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench.sim.engine import Admission, Engine, EngineProfile, Job

# 1,000 prompt tokens/s; a step costs 10 ms + 1 ms per decoding sequence.
TOY = EngineProfile(
    name="toy",
    source="hand-made",
    prefill_tokens_per_s=1000.0,
    step_base_s=0.010,
    step_per_seq_s=0.001,
    max_num_seqs=2,
    kv_capacity_tokens=10_000,
    max_model_len=4096,
    chunked_prefill_tokens=None,
)


def run(engine: Engine, jobs: list[Job]) -> None:
    for job in sorted(jobs, key=lambda j: j.arrival_s):
        engine.advance_to(job.arrival_s)
        assert engine.submit(job) is Admission.QUEUED
    engine.drain()


def test_one_request_ttft_is_its_prefill_time() -> None:
    job = Job(0, prompt_tokens=500, output_tokens=4, arrival_s=1.0)
    run(Engine(TOY), [job])
    assert job.first_token_s == pytest.approx(1.0 + 0.010 + 500 / 1000)
    # Three more tokens, one decode step each at a batch of one (11 ms).
    assert job.finished_s == pytest.approx(1.51 + 3 * 0.011)
    assert TOY.solo_ttft_s(500) == pytest.approx(job.first_token_s - job.arrival_s)


def test_a_full_batch_makes_the_next_request_wait_for_a_free_slot() -> None:
    jobs = [Job(i, prompt_tokens=100, output_tokens=10, arrival_s=0.0) for i in range(3)]
    run(Engine(TOY), jobs)
    # The first two prefill together (10 ms + 200 ms), then decode 9 steps at 12 ms.
    assert jobs[0].first_token_s == pytest.approx(0.21)
    assert jobs[1].first_token_s == pytest.approx(0.21)
    assert jobs[0].finished_s == pytest.approx(0.21 + 9 * 0.012)
    # Only then has the third a slot: its own prefill (10 ms + 100 ms).
    assert jobs[2].first_token_s == pytest.approx(0.318 + 0.110)


def test_the_batch_never_exceeds_max_num_seqs() -> None:
    engine = Engine(TOY)
    for i in range(10):
        engine.advance_to(0.001 * i)
        engine.submit(Job(i, prompt_tokens=50, output_tokens=30, arrival_s=0.001 * i))
    t = 0.0
    while engine.busy:
        t += 0.005
        engine.advance_to(t)
        assert engine.running <= TOY.max_num_seqs
    assert len(engine.finished) == 10


def test_a_full_kv_cache_blocks_admission_until_space_is_freed() -> None:
    small_cache = replace(TOY, max_num_seqs=8, kv_capacity_tokens=300)
    first = Job(0, prompt_tokens=100, output_tokens=100, arrival_s=0.0)
    second = Job(1, prompt_tokens=100, output_tokens=100, arrival_s=0.0)
    run(Engine(small_cache), [first, second])
    # 200 + 200 tokens do not fit in 300: the second waits for the first to finish,
    # although the batch has free slots.
    assert first.finished_s == pytest.approx(0.11 + 99 * 0.011)
    assert second.first_token_s == pytest.approx(first.finished_s + 0.11)


def test_requests_the_engine_cannot_hold_are_refused() -> None:
    engine = Engine(TOY, max_waiting=1)
    assert engine.submit(Job(0, 4000, 200, 0.0)) is Admission.TOO_LONG
    assert engine.submit(Job(1, 10, 10, 0.0)) is Admission.QUEUED
    assert engine.submit(Job(2, 10, 10, 0.0)) is Admission.QUEUE_FULL


def test_chunked_prefill_splits_a_long_prompt_into_steps() -> None:
    chunked = replace(TOY, chunked_prefill_tokens=256)
    job = Job(0, prompt_tokens=600, output_tokens=1, arrival_s=0.0)
    run(Engine(chunked), [job])
    # 256 + 256 + 88 tokens in three steps: three step costs plus the prompt.
    assert job.first_token_s == pytest.approx(3 * 0.010 + 0.600)
    assert job.finished_s == job.first_token_s


def test_chunked_prefill_keeps_decoding_while_a_long_prompt_is_read() -> None:
    finish: dict[int | None, float | None] = {}
    for chunk in (None, 256):
        profile = replace(TOY, chunked_prefill_tokens=chunk)
        short = Job(0, prompt_tokens=10, output_tokens=6, arrival_s=0.0)
        long = Job(1, prompt_tokens=2000, output_tokens=2, arrival_s=0.05)
        run(Engine(profile), [short, long])
        finish[chunk] = short.finished_s
    # Without chunking the 2 s prefill stalls the short request's last tokens; with it, they
    # come in the first chunks.
    assert finish[256] is not None and finish[None] is not None
    assert finish[256] < finish[None] - 1.0


def test_advance_to_stops_at_the_first_step_boundary_after_the_time() -> None:
    engine = Engine(TOY)
    engine.submit(Job(0, prompt_tokens=10, output_tokens=1000, arrival_s=0.0))
    engine.advance_to(0.5)
    assert 0.5 <= engine.now < 0.5 + TOY.decode_step_s(1) + 1e-9
    assert not math.isinf(engine.now)
