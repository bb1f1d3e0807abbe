"""A discrete-event model of one continuous-batching engine (vLLM-like).

The engine runs in steps. Each step admits waiting requests (first come, first served, while
the batch has a free slot and the KV cache has room), prefills prompt tokens, and produces one
output token for every sequence past its prefill. A step costs

    step_base_s + prefill_tokens / prefill_tokens_per_s + step_per_seq_s * decoding_sequences

so one request alone sees TTFT = step_base_s + prompt / prefill_tokens_per_s, and a batch of b
decodes at b / (step_base_s + step_per_seq_s * b) tokens/s in total: linear in b while the
fixed cost dominates, flat once the per-sequence cost does, as measured engines behave.

Simplifications, on purpose: KV space for prompt + output is reserved at admission (vLLM
allocates blocks as it goes and preempts when it runs out; reserving means no preemption), and
stretches of pure decoding between events are jumped over in one move (a global step counter
decides when each sequence ends), which keeps a one-hour trace under a second per run.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class EngineProfile:
    name: str
    source: str
    prefill_tokens_per_s: float
    step_base_s: float
    step_per_seq_s: float
    max_num_seqs: int
    kv_capacity_tokens: int
    max_model_len: int
    # vLLM's max_num_batched_tokens; None = no chunking: a prefill step runs whole prompts and
    # the decoding sequences wait for it (vLLM V0 without chunked prefill).
    chunked_prefill_tokens: int | None
    # The vLLM arguments a deployer gives in Spillgate's config (engines[].args): the
    # gateway reads --max-num-seqs from them, as the server does.
    vllm_args: tuple[str, ...] = ()

    def decode_step_s(self, batch: int) -> float:
        return self.step_base_s + self.step_per_seq_s * batch

    def solo_ttft_s(self, prompt_tokens: int) -> float:
        """Time to first token of one request on an idle engine."""
        return self.step_base_s + prompt_tokens / self.prefill_tokens_per_s

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        need = prompt_tokens + output_tokens
        return need <= self.max_model_len and need <= self.kv_capacity_tokens


class Admission(StrEnum):
    QUEUED = "queued"
    QUEUE_FULL = "queue_full"  # the bounded queue a reactive proxy puts in front of vLLM
    TOO_LONG = "too_long"  # prompt + output beyond max_model_len or the whole KV cache


@dataclass(slots=True)
class Job:
    request_id: int
    prompt_tokens: int
    output_tokens: int
    arrival_s: float
    prefilled: int = 0  # set above 0 before submitting: prompt tokens found in a prefix cache
    scheduled_s: float | None = None  # left the waiting queue for the batch
    first_token_s: float | None = None
    finished_s: float | None = None

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(slots=True)
class EngineState:
    """What a scheduler can read of an engine at a moment (vLLM's gauges plus our own)."""

    running: int
    waiting: int
    waiting_prompt_tokens: int
    prefill_backlog_tokens: int  # prompt tokens admitted but not yet prefilled
    kv_used_tokens: int
    kv_capacity_tokens: int


@dataclass(slots=True)
class EngineCounters:
    """Monotonic totals, as vLLM exports them on /metrics (counters and histogram sums), so
    a scheduler can measure rates over a window the way the gateway's scraper does."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    ttft_sum_s: float = 0.0
    ttft_count: int = 0
    queue_time_sum_s: float = 0.0
    queue_time_count: int = 0
    inter_token_sum_s: float = 0.0
    inter_token_count: int = 0
    # vLLM's request_prefill_time_seconds: from leaving the waiting queue to first token.
    prefill_time_sum_s: float = 0.0
    prefill_time_count: int = 0


# What a /metrics scrape would read at a moment: (running, waiting, KV cache use 0..1,
# counters).
Scrape = tuple[int, int, float, EngineCounters]


@dataclass
class Engine:
    profile: EngineProfile
    max_waiting: int | None = None
    now: float = 0.0
    waiting: deque[Job] = field(default_factory=deque)
    prefilling: list[Job] = field(default_factory=list)
    # (step at which the sequence emits its last token, request id, job)
    decoding: list[tuple[int, int, Job]] = field(default_factory=list)
    steps: int = 0
    kv_used: int = 0
    waiting_prompt_tokens: int = 0
    finished: list[Job] = field(default_factory=list)
    # Every job handed over, and every job whose first token came, in time order (what a
    # gateway learns as it hands requests over and reads first tokens back).
    submitted: list[Job] = field(default_factory=list)
    first_tokens: list[Job] = field(default_factory=list)
    counters: EngineCounters = field(default_factory=EngineCounters)
    # Seconds of /metrics history to keep for a scraper (0: none kept).
    history_s: float = 0.0
    history: deque[tuple[float, Scrape]] = field(default_factory=deque)

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.prefilling or self.decoding)

    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def state(self) -> EngineState:
        return EngineState(
            running=self.running,
            waiting=len(self.waiting),
            waiting_prompt_tokens=self.waiting_prompt_tokens,
            prefill_backlog_tokens=sum(j.prompt_tokens - j.prefilled for j in self.prefilling),
            kv_used_tokens=self.kv_used,
            kv_capacity_tokens=self.profile.kv_capacity_tokens,
        )

    def submit(self, job: Job) -> Admission:
        """Queue a request that arrived at `job.arrival_s`; call `advance_to` first."""
        if not self.profile.fits(job.prompt_tokens, job.output_tokens):
            return Admission.TOO_LONG
        if self.max_waiting is not None and len(self.waiting) >= self.max_waiting:
            return Admission.QUEUE_FULL
        if not self.busy:
            self.now = max(self.now, job.arrival_s)  # a busy engine looks at it next step
        self.waiting.append(job)
        self.waiting_prompt_tokens += job.prompt_tokens
        self.submitted.append(job)
        return Admission.QUEUED

    def advance_to(self, t: float, stop_on_finish: bool = False) -> None:
        """Run every step that starts before `t`; afterwards `now` is the first free boundary.
        With `stop_on_finish`, stop early after a step in which a request finished (a gateway
        queue in front of the engine has a slot to hand on then)."""
        while self.busy and self.now < t:
            done = len(self.finished)
            self._step(t)
            if stop_on_finish and len(self.finished) > done:
                return
        if not self.busy:
            self.now = max(self.now, t)

    def scrape_at(self, t: float) -> Scrape | None:
        """What /metrics said at time `t` (the last step boundary before it), if kept."""
        for at, scrape in reversed(self.history):
            if at <= t:
                return scrape
        return None

    def _record(self) -> None:
        counters = dataclasses.replace(self.counters)
        kv_usage = self.kv_used / self.profile.kv_capacity_tokens
        self.history.append((self.now, (self.running, len(self.waiting), kv_usage, counters)))
        while len(self.history) > 1 and self.history[1][0] <= self.now - self.history_s:
            self.history.popleft()

    def drain(self) -> None:
        self.advance_to(math.inf)

    def _admit(self) -> None:
        profile = self.profile
        while self.waiting and self.running < profile.max_num_seqs:
            head = self.waiting[0]
            if self.kv_used + head.kv_tokens > profile.kv_capacity_tokens:
                return  # FCFS: the head blocks the queue until a sequence frees its KV space
            self.waiting.popleft()
            self.waiting_prompt_tokens -= head.prompt_tokens
            self.counters.queue_time_sum_s += self.now - head.arrival_s
            self.counters.queue_time_count += 1
            self.kv_used += head.kv_tokens
            head.scheduled_s = self.now
            self.prefilling.append(head)

    def _step(self, until: float) -> None:
        self._admit()
        if self.prefilling:
            self._prefill_step()
        else:
            self._decode_steps(until)
        if self.history_s:
            self._record()

    def _prefill_step(self) -> None:
        profile = self.profile
        chunked = profile.chunked_prefill_tokens is not None
        decoders = len(self.decoding) if chunked else 0
        budget = (
            profile.chunked_prefill_tokens - decoders
            if profile.chunked_prefill_tokens is not None
            else math.inf
        )
        tokens = 0
        done: list[Job] = []
        for job in self.prefilling:
            take = min(job.prompt_tokens - job.prefilled, budget - tokens)
            if take <= 0:
                break
            job.prefilled += int(take)
            tokens += int(take)
            if job.prefilled == job.prompt_tokens:
                done.append(job)
        dt = (
            profile.step_base_s
            + tokens / profile.prefill_tokens_per_s
            + profile.step_per_seq_s * decoders
        )
        self.now += dt
        counters = self.counters
        counters.prompt_tokens += tokens
        if chunked:
            self.steps += 1  # the decoding sequences got their token in this step too
            counters.generation_tokens += decoders
            counters.inter_token_sum_s += decoders * dt
            counters.inter_token_count += decoders
        for job in done:
            self.prefilling.remove(job)
            job.first_token_s = self.now
            self.first_tokens.append(job)
            counters.generation_tokens += 1
            counters.ttft_sum_s += self.now - job.arrival_s
            counters.ttft_count += 1
            assert job.scheduled_s is not None
            counters.prefill_time_sum_s += self.now - job.scheduled_s
            counters.prefill_time_count += 1
            # The prefill step samples the first token; the rest take one decode step each.
            heapq.heappush(self.decoding, (self.steps + job.output_tokens - 1, job.request_id, job))
        self._retire()

    def _decode_steps(self, until: float) -> None:
        """Decode with an unchanged batch up to the next completion or the step that reaches
        `until` (an arrival that may join the batch), whichever comes first."""
        dt = self.profile.decode_step_s(len(self.decoding))
        to_finish = self.decoding[0][0] - self.steps
        to_until = math.ceil((until - self.now) / dt) if until != math.inf else to_finish
        k = max(1, min(to_finish, to_until))
        self.now += k * dt
        self.steps += k
        tokens = k * len(self.decoding)
        self.counters.generation_tokens += tokens
        self.counters.inter_token_sum_s += tokens * dt
        self.counters.inter_token_count += tokens
        self._retire()

    def _retire(self) -> None:
        while self.decoding and self.decoding[0][0] <= self.steps:
            _, _, job = heapq.heappop(self.decoding)
            job.finished_s = self.now
            self.kv_used -= job.kv_tokens
            self.finished.append(job)
