"""Prefix affinity across local replicas, simulated: vLLM's prefix-cache hit rate and TTFT
with the server's affinity (`RequestFeatures.prefix_key`) against least wait alone.

Replicas: N copies of an engine profile (`bench/sim/engine.py`), each with a prefix cache:
an LRU of 16-token prompt blocks, as many as the profile's KV cache holds. A block's key
stands for the whole prefix up to it (vLLM hashes each block with its parent's hash), so a
prompt hits on its longest run of leading blocks in the cache; the hit tokens skip prefill
(at most all but the last prompt token, which vLLM always computes). A prompt's blocks enter
the cache when the request is admitted. Hit rate = hit tokens / prompt tokens, as vLLM's
`prefix_cache_hits / prefix_cache_queries`.

Workload: multi-turn conversations, each on one of a few system prompts; turn k's prompt is
the system prompt plus the conversation so far (user turns and answers). Arrivals are open
loop: each turn comes a think time after the previous one's arrival.

Routing: the server's `decide()` over one `LocalState` per replica (the server's
`RuntimeStore`), with `prefix_key(first KB of the prompt text)` or `prefix_key=None`.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.sim.engine import Engine, EngineProfile, Job
from bench.sim.spillgate_policy import MODEL
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import CapabilitiesConfig, EngineRoutingConfig
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import Privacy, RequestFeatures, decide, prefix_key

BLOCK_TOKENS = 16
CHARS_PER_TOKEN = 4  # for the prompt text whose first KB is the affinity key
KEY_BYTES = 1024
# A few system prompts of different lengths: the longer ones fill the first KB (so the key
# is the system prompt's), the shortest does not (the key then includes the first user turn).
SYSTEM_PROMPT_TOKENS = (120, 400, 800, 1200)


@dataclass(frozen=True, slots=True)
class Turn:
    turn_id: int
    conversation: int
    system: int  # index into SYSTEM_PROMPT_TOKENS
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    first_user_tokens: int  # the first user turn, which is in the key after a short system

    def prompt_head(self) -> bytes:
        """The prompt text's first KB: the system prompt, then this conversation's text."""
        system = f"[system prompt {self.system}]".ljust(
            SYSTEM_PROMPT_TOKENS[self.system] * CHARS_PER_TOKEN, "s"
        )
        user = f"[conversation {self.conversation}]".ljust(
            self.first_user_tokens * CHARS_PER_TOKEN, "u"
        )
        return (system + user).encode()[:KEY_BYTES]

    def block_keys(self) -> list[tuple[int, ...]]:
        """One key per full prompt block: shared by all conversations on the same system
        prompt while inside it, this conversation's own after."""
        system_tokens = SYSTEM_PROMPT_TOKENS[self.system]
        return [
            (self.system, i)
            if (i + 1) * BLOCK_TOKENS <= system_tokens
            else (self.system, self.conversation, i)
            for i in range(self.prompt_tokens // BLOCK_TOKENS)
        ]


class PrefixCache:
    """An LRU of prompt blocks, as vLLM's prefix cache (evicts the least recently used)."""

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[tuple[int, ...], None] = OrderedDict()

    def hit_blocks(self, keys: Sequence[tuple[int, ...]]) -> int:
        """Leading blocks of `keys` in the cache (touched, as a lookup does)."""
        hits = 0
        for key in keys:
            if key not in self._blocks:
                break
            self._blocks.move_to_end(key)
            hits += 1
        return hits

    def insert(self, keys: Sequence[tuple[int, ...]]) -> None:
        for key in keys:
            self._blocks[key] = None
            self._blocks.move_to_end(key)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)


def conversations(
    profile: EngineProfile,
    count: int,
    rate_per_s: float,
    seed: int,
    think_s: float = 30.0,
) -> list[Turn]:
    """`count` conversations of 2-8 turns at about `rate_per_s` turns per second in all,
    in arrival order; a conversation ends early when its next prompt would not fit."""
    rng = random.Random(seed)
    plans = [(rng.randrange(len(SYSTEM_PROMPT_TOKENS)), rng.randint(2, 8)) for _ in range(count)]
    span_s = sum(turns for _, turns in plans) / rate_per_s
    out: list[tuple[float, int, int, int, int, int]] = []
    for conversation, (system, turns) in enumerate(plans):
        at = rng.uniform(0.0, span_s)
        history = SYSTEM_PROMPT_TOKENS[system]
        first_user = 0
        for _ in range(turns):
            user = max(8, int(rng.lognormvariate(math.log(80), 0.8)))
            answer = max(1, min(int(rng.lognormvariate(math.log(200), 0.6)), 1000))
            first_user = first_user or user
            prompt = history + user
            if prompt + answer > profile.max_model_len:
                break
            out.append((at, conversation, system, prompt, answer, first_user))
            history = prompt + answer
            at += rng.expovariate(1.0 / think_s)
    out.sort()
    return [Turn(i, c, s, at, p, a, u) for i, (at, c, s, p, a, u) in enumerate(out)]


@dataclass(frozen=True, slots=True)
class AffinityRow:
    profile: str
    replicas: int
    policy: str  # "affinity" or "least wait"
    hit_rate: float
    p50_s: float
    p90_s: float
    in_budget: float


@dataclass(slots=True)
class _Replica:
    name: str
    engine: Engine
    cache: PrefixCache
    in_flight: int = 0
    ready: bool = True
    seen_submitted: int = 0
    seen_first: int = 0
    seen_finished: int = 0


def _store(profile: EngineProfile, names: Sequence[str]) -> RuntimeStore:
    settings = EngineRoutingConfig(
        capabilities=CapabilitiesConfig(max_context=profile.max_model_len),
        prefill_tokens_per_s=profile.prefill_tokens_per_s,
        decode_tokens_per_s=1.0 / profile.decode_step_s(1),
    )
    engines = [
        EngineConfig(name=n, model=MODEL, args=list(profile.vllm_args), scheduling=settings)
        for n in names
    ]
    return RuntimeStore(Config(engines=engines))


def _report(replica: _Replica, store: RuntimeStore, now: float) -> None:
    """What the executor tells the runtime: handed over, first tokens, finished."""
    runtime, engine = store.engine(replica), replica.engine
    for job in engine.submitted[replica.seen_submitted :]:
        runtime.admitted(job.prompt_tokens)
    replica.seen_submitted = len(engine.submitted)
    while replica.seen_first < len(engine.first_tokens):
        job = engine.first_tokens[replica.seen_first]
        if job.first_token_s is None or job.first_token_s > now:
            break
        runtime.first_token(job.prompt_tokens)
        replica.seen_first += 1
    for job in engine.finished[replica.seen_finished :]:
        assert job.finished_s is not None
        runtime.observe(None, job.prompt_tokens, job.output_tokens, job.finished_s - job.arrival_s)
    replica.seen_finished = len(engine.finished)
    replica.in_flight = engine.running + len(engine.waiting)


def simulate(
    turns: Sequence[Turn],
    profile: EngineProfile,
    replicas: int,
    affinity: bool,
    budget_s: float,
    seed: int,
) -> AffinityRow:
    """Replay `turns` on `replicas` copies of `profile`, routed by `decide()`."""
    names = [f"replica-{i}" for i in range(replicas)]
    store = _store(profile, names)
    pool = [
        _Replica(n, Engine(profile), PrefixCache(profile.kv_capacity_tokens // BLOCK_TOKENS))
        for n in names
    ]
    by_name = {r.name: r for r in pool}
    rng = random.Random(seed)
    jobs: list[Job] = []
    hit_tokens = prompt_tokens = 0
    for turn in turns:
        for replica in pool:
            replica.engine.advance_to(turn.arrival_s)
            _report(replica, store, turn.arrival_s)
        features = RequestFeatures(
            model=MODEL,
            prompt_tokens=turn.prompt_tokens,
            prompt_tokens_max=turn.prompt_tokens,
            max_tokens=turn.output_tokens,
            privacy=Privacy.MAY_SPILL,
            latency_budget_ms=1000.0 * budget_s,
            tiebreak=rng.getrandbits(32),
            prefix_key=prefix_key(turn.prompt_head()) if affinity else None,
        )
        states = [store.local_state(r, now=turn.arrival_s) for r in pool]
        replica = by_name[decide(features, states, [], store.config.scheduler.tuning).targets[0]]
        keys = turn.block_keys()
        hit = min(replica.cache.hit_blocks(keys) * BLOCK_TOKENS, turn.prompt_tokens - 1)
        replica.cache.insert(keys)
        hit_tokens += hit
        prompt_tokens += turn.prompt_tokens
        job = Job(turn.turn_id, turn.prompt_tokens, turn.output_tokens, turn.arrival_s, hit)
        replica.engine.submit(job)
        jobs.append(job)
    for replica in pool:
        replica.engine.drain()
    ttfts = sorted(
        j.first_token_s - j.arrival_s if j.first_token_s is not None else math.inf for j in jobs
    )
    return AffinityRow(
        profile.name,
        replicas,
        "affinity" if affinity else "least wait",
        hit_tokens / prompt_tokens,
        ttfts[len(ttfts) // 2],
        ttfts[min(len(ttfts) - 1, math.ceil(0.9 * len(ttfts)) - 1)],
        sum(1 for t in ttfts if t <= budget_s) / len(ttfts),
    )


def offered_rate(profile: EngineProfile, turns: Sequence[Turn], replicas: int, use: float) -> float:
    """Turns per second that keep `replicas` engines' prefill `use` busy without any cache."""
    mean_prompt = sum(t.prompt_tokens for t in turns) / len(turns)
    return use * replicas * profile.prefill_tokens_per_s / mean_prompt


def run(
    profiles: Sequence[EngineProfile],
    replica_counts: Sequence[int] = (2, 4),
    conversations_count: int = 200,
    use: float = 0.6,
    budget_s: float = 2.0,
    seed: int = 7,
) -> list[AffinityRow]:
    """Each profile and replica count, with and without affinity, on the same turns."""
    rows = []
    for profile in profiles:
        for n in replica_counts:
            shape = conversations(profile, conversations_count, 1.0, seed)
            rate = offered_rate(profile, shape, n, use)
            turns = conversations(profile, conversations_count, rate, seed)
            for affinity in (True, False):
                rows.append(simulate(turns, profile, n, affinity, budget_s, seed))
    return rows


def affinity_table(rows: Sequence[AffinityRow]) -> str:
    lines = [
        "| profile | replicas | routing | prefix-cache hit rate | p50 TTFT s | p90 TTFT s "
        "| in budget |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.profile} | {r.replicas} | {r.policy} | {r.hit_rate:.1%} | {r.p50_s:.2f} "
            f"| {r.p90_s:.2f} | {r.in_budget:.1%} |"
        )
    return "\n".join(lines)
