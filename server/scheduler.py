"""The decision: which targets may serve a request, in which order, and why.

`decide` is a pure function over the request's features and a snapshot of the targets:
no I/O, no clock, no globals. The server and the simulator in bench/sim run the same code,
so what the simulator shows is what ships. docs/routing.md explains the policy in words.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from spillgate.protocol import Endpoint
from spillgate.server.features import DEFAULT_MAX_TOKENS

#: The scheduler's defaults, defined once here: the configuration (config_routing.py) takes
#: its fields' defaults from them, so a request or engine state made without a
#: configuration agrees with one made from an empty configuration file.
DEFAULT_LATENCY_BUDGET_MS = 5000.0
DEFAULT_PREDICTION_MARGIN = 2.0
#: Slots per engine when neither `max_concurrency` nor vLLM's `--max-num-seqs` says.
DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_PREFILL_TOKENS_PER_S = 2000.0
DEFAULT_DECODE_TOKENS_PER_S = 30.0

#: Assumed until measured: the mean answer length at a local engine (how long a slot stays
#: busy) and a cloud target's time to first token.
DEFAULT_MEAN_OUTPUT_TOKENS = 200.0
DEFAULT_CLOUD_TTFT_S = 0.8

#: The reserve for requests that may not spill: the chance a private arrival finds every
#: reserved slot taken by private requests (Erlang B) that the reserve is sized to.
DEFAULT_RESERVE_BLOCKING = 0.05
#: Time constant of the measured arrival rate of requests that may not spill (seconds).
DEFAULT_RESERVE_WINDOW_S = 600.0
#: KV-cache use (0..1) from which vLLM is about to stop admitting and to preempt: an engine
#: this full counts as having no free slot.
DEFAULT_KV_PRESSURE = 0.95
#: Prefix affinity: the engine a prompt's prefix hashes to keeps it while its outstanding
#: requests stay within this factor of the replicas' mean (bounded-load consistent hashing).
DEFAULT_AFFINITY_LOAD_FACTOR = 1.25
#: GPU utilisation (0..1) by others, seen while the engine runs nothing, that counts as
#: foreign load; the prefill rate is scaled by the share of the GPU left over.
GPU_FOREIGN_LOAD = 0.5
#: The slowest a foreign load may make the prediction: prefill at a tenth of its rate.
GPU_MAX_SLOWDOWN = 10.0


class Reason(StrEnum):
    """Why a request went where it went (sent as `x-spillgate-reason`)."""

    LOCAL = "local"
    #: The local engine was predicted too slow for the latency budget: spilled.
    OVERLOAD = "overload"
    #: Capability gaps: the local model cannot do this request.
    MODEL_NOT_LOCAL = "model_not_local"
    CONTEXT_TOO_LONG = "context_too_long"
    TOOLS_UNSUPPORTED = "tools_unsupported"
    IMAGES_UNSUPPORTED = "images_unsupported"
    JSON_SCHEMA_UNSUPPORTED = "json_schema_unsupported"
    #: No local engine for the model is healthy: spilled at once.
    LOCAL_DOWN = "local_down"
    #: Would have spilled, but the request may not leave the box: kept local (queued).
    KEPT_LOCAL_PRIVATE = "kept_local_private"
    #: Would have spilled, but the key's cloud budget is spent: kept local.
    KEPT_LOCAL_BUDGET = "kept_local_budget"
    #: Personal data replaced by placeholders before spilling (redact-then-spill policy).
    SPILLED_REDACTED = "spilled_redacted"
    #: Nothing may serve it: no ready target, or only cloud targets for a private request.
    NO_TARGET = "no_target_ready"


#: Capability-gap reasons, in the order they are checked.
GAP_REASONS = (
    Reason.MODEL_NOT_LOCAL,
    Reason.CONTEXT_TOO_LONG,
    Reason.TOOLS_UNSUPPORTED,
    Reason.IMAGES_UNSUPPORTED,
    Reason.JSON_SCHEMA_UNSUPPORTED,
)


class Privacy(StrEnum):
    """What may leave the box."""

    MAY_SPILL = "may_spill"
    #: Marked on-prem (key, route, header) or personal data under `keep-local`.
    LOCAL_ONLY = "local_only"
    #: Personal data found under `redact-then-spill`: may spill once redacted.
    REDACT_TO_SPILL = "redact_to_spill"


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    images: bool = False
    json_schema: bool = True
    #: Context window in tokens; None when unknown (then never a gap).
    max_context: int | None = None
    #: The most tokens one answer may have (a cloud model's documented limit): a larger
    #: `max_tokens` is lowered to it on the way out, so it is no gap. None when unknown.
    max_output: int | None = None


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    model: str
    endpoint: Endpoint = Endpoint.CHAT
    stream: bool = False
    #: Prompt tokens: an estimate for predictions (exact when counted).
    prompt_tokens: int = 0
    #: An upper bound for the context-length check (equal to prompt_tokens when counted).
    prompt_tokens_max: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    needs_tools: bool = False
    needs_images: bool = False
    needs_json_schema: bool = False
    privacy: Privacy = Privacy.MAY_SPILL
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    #: Safety factor on the local prediction: local only if predicted x margin <= budget.
    prediction_margin: float = DEFAULT_PREDICTION_MARGIN
    #: False when the key's cloud budget is spent (the ledger's check).
    cloud_budget_ok: bool = True
    #: A per-request random number: the power-of-two-choices pick among replicas.
    tiebreak: int = 0
    #: A hash of the prompt's first KB (`prefix_key`), for prefix affinity among replicas;
    #: None turns affinity off for the request.
    prefix_key: int | None = None


@dataclass(frozen=True, slots=True)
class Tuning:
    """The scheduler's settings that are not per request (from `scheduler.*`). The reserve's
    own setting, `reserve_blocking`, is applied where the reserve is sized
    (`RuntimeStore.reserve`), so the gateway queue and `decide` see the same reserve."""

    #: KV-cache use from which an engine counts as full.
    kv_pressure: float = DEFAULT_KV_PRESSURE
    #: Bounded load for prefix affinity (<= 1 turns affinity off).
    affinity_load_factor: float = DEFAULT_AFFINITY_LOAD_FACTOR


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True, slots=True)
class LocalState:
    """One local engine as the snapshot sees it."""

    name: str
    ready: bool
    capabilities: Capabilities
    #: Requests Spillgate has at the engine (authoritative between scrapes).
    in_flight: int = 0
    #: vLLM's own counts from its last /metrics scrape (other clients included).
    running: int = 0
    waiting: int = 0
    #: Requests waiting in Spillgate's own queue for this engine.
    queued: int = 0
    #: How many requests the engine runs at once (vLLM's max-num-seqs, or our cap).
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: Measured rates (calibrated defaults until the first measurements arrive).
    prefill_tokens_per_s: float = DEFAULT_PREFILL_TOKENS_PER_S
    decode_tokens_per_s: float = DEFAULT_DECODE_TOKENS_PER_S
    #: Mean completion length seen on this engine, for how long a slot stays busy.
    mean_output_tokens: float = DEFAULT_MEAN_OUTPUT_TOKENS
    #: Measured time a request holds a slot here (None until measured): preferred over
    #: mean_output_tokens / decode rate, since it includes prefill and queueing in vLLM.
    mean_request_s: float | None = None
    #: True once `prefill_tokens_per_s` is measured (vLLM's prefill-time histogram and
    #: prompt-token counter); False while it is the configured seed.
    prefill_measured: bool = False
    #: Prompt tokens of requests handed to the engine that have no first token yet: the
    #: prefill work a new request queues behind even when a slot is free.
    prefill_backlog_tokens: int = 0
    #: vLLM's `kv_cache_usage_perc` (0..1) from the last scrape; None when not exported.
    kv_cache_usage: float | None = None
    #: Busiest GPU's utilisation (0..1) among the GPUs the engine runs on; None without one.
    gpu_utilization: float | None = None
    #: Non-spillable requests (marked, with findings, budget spent) arriving at this
    #: engine per second (measured) and how long one holds a slot (None: as any request).
    private_arrivals_per_s: float = 0.0
    private_hold_s: float | None = None
    #: Slots a spillable request of this request's key must leave free for non-spillable
    #: ones (`RuntimeStore.reserve`: `reserve_slots()` per key); the gateway queue applies
    #: the same figure.
    reserve: int = 0


@dataclass(frozen=True, slots=True)
class CloudState:
    name: str
    ready: bool
    capabilities: Capabilities
    #: Latency EWMA of time to first token, ms.
    ttft_ms: float = 1000.0 * DEFAULT_CLOUD_TTFT_S
    #: USD per 1M tokens; None when unknown (sorted last).
    input_price: float | None = None
    output_price: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    #: Target names in the order the executor tries them.
    targets: tuple[str, ...]
    reason: Reason
    #: The local time to first token predicted for the chosen local engine, ms.
    predicted_local_ttft_ms: float | None = None
    #: True when the request must wait for local capacity (it may not spill).
    must_queue: bool = False
    #: True when personal data must be replaced by placeholders before a cloud target.
    redact: bool = False
    #: The numbers behind the decision, for `route --explain` and debugging.
    explain: dict[str, object] = field(default_factory=dict)


def slot_lifetime_s(engine: LocalState) -> float:
    """How long a request holds a slot at `engine`: measured, else mean answer x step."""
    step_s = 1.0 / max(engine.decode_tokens_per_s, 1e-6)
    return engine.mean_request_s or engine.mean_output_tokens * step_s


def erlang_b(servers: int, erlangs: float) -> float:
    """The chance an arrival finds all `servers` busy (Erlang's loss formula)."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = erlangs * blocking / (k + erlangs * blocking)
    return blocking


def reserve_slots(
    arrivals_per_s: float, hold_s: float, slots: int, blocking: float = DEFAULT_RESERVE_BLOCKING
) -> int:
    """Slots to keep free for non-spillable demand: the fewest `r` for which a private
    arrival finds all `r` held by private requests with a chance of at most `blocking`
    (Erlang B with offered load `arrivals_per_s x hold_s`); 0 without such traffic, at
    most every slot, when the private load alone needs the engine.
    """
    erlangs = arrivals_per_s * hold_s
    if erlangs <= 0.0 or slots <= 0:
        return 0
    b = 1.0
    for r in range(1, slots + 1):
        b = erlangs * b / (r + erlangs * b)
        if b <= blocking:
            return r
    return slots


def effective_prefill_tokens_per_s(engine: LocalState) -> float:
    """The prefill rate the prediction uses: the engine's, slowed by foreign GPU load (a
    GPU busy while the engine runs nothing is shared with another process)."""
    rate = max(engine.prefill_tokens_per_s, 1e-6)
    util = engine.gpu_utilization
    idle = engine.running == 0 and engine.in_flight == 0
    if util is not None and idle and util >= GPU_FOREIGN_LOAD:
        rate /= min(1.0 / max(1.0 - util, 1e-6), GPU_MAX_SLOWDOWN)
    return rate


def predict_ttft_ms(
    engine: LocalState,
    prompt_tokens: int,
    *,
    reserve: int = 0,
    kv_pressure: float = DEFAULT_KV_PRESSURE,
) -> float:
    """Predicted time to first token on `engine` for a new request of `prompt_tokens`.

    Continuous batching admits a request as soon as a slot is free; its prefill then runs
    behind the prefill backlog of requests admitted just before (they share the batch's
    prefill budget), at the engine's measured prefill rate, plus a decode step. When the
    slots open to the request are taken (`reserve` of them are kept for requests that may
    not spill; a KV cache at `kv_pressure` or fuller admits nobody), it also waits for
    (position in line / slots) slot lifetimes.
    """
    prefill_s = (engine.prefill_backlog_tokens + prompt_tokens) / effective_prefill_tokens_per_s(
        engine
    )
    step_s = 1.0 / max(engine.decode_tokens_per_s, 1e-6)
    ahead = 1 - open_slots(engine, reserve, kv_pressure)
    if ahead <= 0:
        return 1000.0 * (prefill_s + step_s)
    slots = max(engine.max_concurrency, 1)
    return 1000.0 * (ahead * slot_lifetime_s(engine) / slots + prefill_s + step_s)


def open_slots(engine: LocalState, reserve: int, kv_pressure: float = DEFAULT_KV_PRESSURE) -> int:
    """Slots free to a request at `engine` now, with `reserve` of them not open to it; zero
    or less (minus the requests ahead of it) when it would wait. A KV cache at
    `kv_pressure` or fuller admits nobody."""
    outstanding = max(engine.in_flight, engine.running + engine.waiting) + engine.queued
    slots = max(engine.max_concurrency, 1)
    if engine.kv_cache_usage is not None and engine.kv_cache_usage >= kv_pressure:
        outstanding = max(outstanding, slots)
    return slots - min(max(reserve, 0), slots) - outstanding


def output_tokens(features: RequestFeatures, caps: Capabilities) -> int:
    """The answer's length at most, at a target with `caps`."""
    if caps.max_output is None:
        return features.max_tokens
    return min(features.max_tokens, caps.max_output)


def _gap(features: RequestFeatures, caps: Capabilities) -> Reason | None:
    prompt = max(features.prompt_tokens, features.prompt_tokens_max)
    if caps.max_context is not None and prompt + output_tokens(features, caps) > caps.max_context:
        return Reason.CONTEXT_TOO_LONG
    if features.needs_tools and not caps.tools:
        return Reason.TOOLS_UNSUPPORTED
    if features.needs_images and not caps.images:
        return Reason.IMAGES_UNSUPPORTED
    if features.needs_json_schema and not caps.json_schema:
        return Reason.JSON_SCHEMA_UNSUPPORTED
    return None


def _route_gap(
    features: RequestFeatures, local: Sequence[LocalState], cloud: Sequence[CloudState]
) -> Reason:
    """The gap that keeps the request off the route's local engine; on a route without
    one, the gap of its first cloud target when none of them can take the request."""
    if local:
        return _gap(features, local[0].capabilities) or Reason.MODEL_NOT_LOCAL
    gaps = [_gap(features, c.capabilities) for c in cloud]
    if gaps and all(gaps):
        return gaps[0] or Reason.MODEL_NOT_LOCAL
    return Reason.MODEL_NOT_LOCAL


def _cloud_cost(features: RequestFeatures, cloud: CloudState) -> float:
    if cloud.input_price is None or cloud.output_price is None:
        return float("inf")
    output = output_tokens(features, cloud.capabilities)
    return (features.prompt_tokens * cloud.input_price + output * cloud.output_price) / 1e6


def prefix_key(text: bytes) -> int:
    """The affinity key of a prompt's first KB (stable across processes and replicas)."""
    return int.from_bytes(hashlib.blake2b(text[:1024], digest_size=8).digest(), "big")


def _affinity_rank(key: int, name: str) -> int:
    """Rendezvous (highest random weight) hashing: each engine's score for a key. Adding
    or removing a replica moves only the keys that scored highest on it."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=key.to_bytes(8, "big"))
    return int.from_bytes(digest.digest(), "big")


def _pick_local(
    features: RequestFeatures, engines: list[LocalState], reserve_for: bool, tuning: Tuning
) -> tuple[LocalState, float, str]:
    """The engine to try and its prediction, and how it was picked.

    With a prefix key and several replicas, the engine the key hashes to keeps it while it
    is within its bounded load and its prediction fits the budget (prefix affinity: vLLM
    reuses the cached prefix); else the one with the least predicted wait, two drawn at
    random among more than two (power of two choices).
    """

    def predict(e: LocalState) -> float:
        reserve = e.reserve if reserve_for else 0
        return predict_ttft_ms(
            e, features.prompt_tokens, reserve=reserve, kv_pressure=tuning.kv_pressure
        )

    if features.prefix_key is not None and len(engines) > 1 and tuning.affinity_load_factor > 1:
        loads = [max(e.in_flight, e.running + e.waiting) + e.queued for e in engines]
        bound = math.ceil(tuning.affinity_load_factor * (sum(loads) + 1) / len(engines))
        ranked = sorted(
            zip(engines, loads, strict=True),
            key=lambda el: _affinity_rank(features.prefix_key or 0, el[0].name),
            reverse=True,
        )
        for engine, load in ranked:
            if load + 1 > bound:
                continue
            predicted = predict(engine)
            if predicted * features.prediction_margin <= features.latency_budget_ms:
                how = "affinity" if engine is ranked[0][0] else "affinity_next"
                return engine, predicted, how
    if len(engines) > 2:
        n = len(engines)
        first = features.tiebreak % n
        second = (first + 1 + (features.tiebreak // n) % (n - 1)) % n  # never `first`
        engines = [engines[first], engines[second]]
    scored = [(predict(e), e.in_flight, e.name, e) for e in engines]
    best = min(scored, key=lambda s: (s[0], s[1], s[2]))
    return best[3], best[0], "least_wait"


def decide(
    features: RequestFeatures,
    local: Sequence[LocalState],
    cloud: Sequence[CloudState],
    tuning: Tuning = DEFAULT_TUNING,
) -> Decision:
    """Local first; spill on overload or a capability gap; private requests never spill."""
    may_spill = features.privacy is not Privacy.LOCAL_ONLY and features.cloud_budget_ok
    redact = features.privacy is Privacy.REDACT_TO_SPILL
    capable_local = [e for e in local if _gap(features, e.capabilities) is None]
    able_cloud = [c for c in cloud if _gap(features, c.capabilities) is None]
    capable_cloud = [c for c in able_cloud if c.ready]
    explain: dict[str, object] = {
        "prompt_tokens": features.prompt_tokens,
        "prompt_tokens_max": features.prompt_tokens_max,
        "max_tokens": features.max_tokens,
        "latency_budget_ms": features.latency_budget_ms,
        "privacy": features.privacy.value,
        "cloud_budget_ok": features.cloud_budget_ok,
    }

    def spill(reason: Reason, clouds: list[CloudState]) -> Decision:
        names = tuple(c.name for c in clouds)
        return Decision(
            names, Reason.SPILLED_REDACTED if redact else reason, redact=redact, explain=explain
        )

    def kept_local_reason() -> Reason:
        if features.privacy is Privacy.LOCAL_ONLY:
            return Reason.KEPT_LOCAL_PRIVATE
        return Reason.KEPT_LOCAL_BUDGET

    # 1. A capability gap: only a cloud target that has the capability can serve.
    if not capable_local:
        gap = _route_gap(features, local, cloud)
        explain["gap"] = gap.value
        if gap is Reason.CONTEXT_TOO_LONG:
            windows = [t.capabilities.max_context for t in local] or [
                c.capabilities.max_context for c in cloud
            ]
            explain["max_context"] = next(w for w in windows if w is not None)
        if may_spill and capable_cloud:
            return spill(gap, capable_cloud)
        if not able_cloud and gap is Reason.MODEL_NOT_LOCAL:
            # No target at all yet (a discovered group without pods): retry later.
            return Decision((), Reason.NO_TARGET, explain=explain)
        if not able_cloud:
            # Nothing on the route could ever serve it: a 400, never a 503 to retry.
            explain["blocked"] = "no_target_able"
        elif features.privacy is Privacy.LOCAL_ONLY:
            explain["blocked"] = "private"
        elif not features.cloud_budget_ok:
            explain["blocked"] = "budget"
        else:
            # A cloud target could, once its circuit closes again: retry later.
            return Decision((), Reason.NO_TARGET, explain=explain)
        return Decision((), gap, explain=explain)

    # 2. No capable local engine is up: spill at once where allowed, else wait for one.
    ready_local = [e for e in capable_local if e.ready]
    if not ready_local:
        explain["local"] = "down"
        if may_spill and capable_cloud:
            return spill(Reason.LOCAL_DOWN, capable_cloud)
        return Decision((), Reason.NO_TARGET, must_queue=True, explain=explain)

    # 3. Overload: is the best local engine predicted to answer within the budget?
    # Only a request that could go elsewhere leaves the reserve to those that cannot.
    engine, predicted, picked = _pick_local(features, ready_local, may_spill, tuning)
    explain.update(
        engine=engine.name,
        picked=picked,
        predicted_local_ttft_ms=round(predicted, 1),
        engine_outstanding=max(engine.in_flight, engine.running + engine.waiting),
        engine_queued=engine.queued,
        engine_max_concurrency=engine.max_concurrency,
        reserve=engine.reserve,
        reserve_applied=may_spill and engine.reserve > 0,
        private_arrivals_per_s=round(engine.private_arrivals_per_s, 4),
        prefill_tokens_per_s=round(engine.prefill_tokens_per_s, 1),
        prefill_source="measured" if engine.prefill_measured else "configured",
        prefill_backlog_tokens=engine.prefill_backlog_tokens,
        kv_cache_usage=engine.kv_cache_usage,
        gpu_utilization=engine.gpu_utilization,
    )
    fallbacks = sorted(capable_cloud, key=lambda c: (_cloud_cost(features, c), c.ttft_ms))
    # While a reserve is kept, the requests that may not spill take every freed slot first,
    # so a spillable request's wait for one cannot be foreseen, and a late spill misses the
    # budget: it takes an open slot or goes elsewhere (the executor does not queue it).
    reserve_full = (
        may_spill
        and engine.reserve > 0
        and open_slots(engine, engine.reserve, tuning.kv_pressure) <= 0
    )
    explain["reserve_full"] = reserve_full
    in_time_local = predicted * features.prediction_margin <= features.latency_budget_ms
    if in_time_local and not reserve_full:
        # Cloud targets stay behind the engine, should it fail or its queue overrun.
        spare = tuple(c.name for c in fallbacks) if may_spill else ()
        return Decision(
            (engine.name, *spare), Reason.LOCAL, predicted, redact=redact, explain=explain
        )
    in_time = [c for c in fallbacks if c.ttft_ms <= features.latency_budget_ms]
    if not may_spill or not in_time:
        reason = Reason.LOCAL if may_spill else kept_local_reason()
        explain["cloud_in_time"] = len(in_time)
        return Decision(
            (engine.name,), reason, predicted, must_queue=not may_spill, explain=explain
        )
    explain["cloud_costs_usd"] = {c.name: round(_cloud_cost(features, c), 6) for c in in_time}
    spilled = spill(Reason.OVERLOAD, in_time)
    # The local engine stays as a last resort should every cloud target fail.
    return Decision(
        (*spilled.targets, engine.name),
        spilled.reason,
        predicted,
        redact=redact,
        explain=explain,
    )
