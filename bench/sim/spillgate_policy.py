"""Spillgate's policy in the simulator: the server's own `decide`, fed from simulated state.

This module is the only place that knows the scheduler's input types. It keeps the state the
gateway keeps, with the server's code wherever the server has code for it:

- the config a deployer writes for the engine, turned into the engine runtime by the
  server's `RuntimeStore` (concurrency cap: `--max-num-seqs` from the arguments, else 256);
- vLLM's /metrics as the gateway's scraper sees them: a scrape every `scrape_interval_s`,
  rates over a 5 s window, derived by `spillgate.models.load.derive_load`, applied to the
  runtime by `EngineRuntime.apply_load`, as `spillgate.server.monitor` applies it (vLLM's
  counts, KV-cache use, the decode rate from the mean inter-token latency, the prefill rate
  from the prefill-time histogram and the prompt-token counter);
- what the executor reports: requests handed to the engine and their first tokens
  (`admitted`/`first_token`, the prefill backlog), finished local requests (`observe`, and
  `observe_private` for those that may not spill), arrivals that may not spill and were
  routed here (`note_private_arrival`, the reserve's arrival rate), cloud first tokens
  (`CloudRuntime.observe`);

then takes the snapshot with `RuntimeStore.local_state(now=...)` (which sizes the reserve)
and calls `spillgate.server.scheduler.decide` with the server's tuning. The runner carries
the targets out as the executor does (a local target waits in the gateway-side queue,
`bench/sim/gateway.py`, which keeps the reserve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.sim.engine import EngineProfile, Scrape
from bench.sim.policies import LOCAL, GatewaySettings, Routing, World
from bench.sim.trace import Request
from spillgate.fallback.prices import Price
from spillgate.models.load import (
    GENERATION_TOKENS,
    INTER_TOKEN,
    KV_CACHE_USAGE,
    PREFILL_TIME,
    PROMPT_TOKENS,
    QUEUE_TIME,
    RUNNING,
    SCRAPE_WINDOW_S,
    TTFT,
    WAITING,
    MetricSample,
    derive_load,
)
from spillgate.server.admission import ANONYMOUS_KEY
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import CapabilitiesConfig, EngineRoutingConfig, SchedulerConfig
from spillgate.server.runtime import EngineRuntime, RuntimeStore
from spillgate.server.scheduler import Capabilities, Privacy, RequestFeatures, Tuning, decide

MODEL = "sim-model"


@dataclass(slots=True)
class _EngineView:
    """The three attributes of a `LocalEngine` the snapshot reads."""

    name: str
    in_flight: int = 0
    ready: bool = True


@dataclass(slots=True)
class _CloudView:
    """The three attributes of a `CloudTarget` the snapshot reads."""

    name: str
    price: Price
    ready: bool = True


def _metric_sample(scrape: Scrape) -> MetricSample:
    """The simulated engine's counters as vLLM names them on /metrics."""
    running, waiting, kv_usage, c = scrape
    values = {
        RUNNING: float(running),
        WAITING: float(waiting),
        KV_CACHE_USAGE: kv_usage,
        PROMPT_TOKENS: float(c.prompt_tokens),
        GENERATION_TOKENS: float(c.generation_tokens),
        f"{TTFT}_sum": c.ttft_sum_s,
        f"{TTFT}_count": float(c.ttft_count),
        f"{QUEUE_TIME}_sum": c.queue_time_sum_s,
        f"{QUEUE_TIME}_count": float(c.queue_time_count),
        f"{INTER_TOKEN}_sum": c.inter_token_sum_s,
        f"{INTER_TOKEN}_count": float(c.inter_token_count),
        f"{PREFILL_TIME}_sum": c.prefill_time_sum_s,
        f"{PREFILL_TIME}_count": float(c.prefill_time_count),
    }
    return MetricSample(values, dict.fromkeys(values, 1))


@dataclass(slots=True)
class _Seen:
    """How far into the engine's records the executor's reports have got."""

    submitted: int = 0
    first_tokens: int = 0
    finished: int = 0
    cloud: int = 0
    private_ids: set[int] = field(default_factory=set)


class SpillgatePolicy:
    engine_queue_bound: int | None = None

    def __init__(
        self,
        profile: EngineProfile,
        ttft_budget_s: float,
        scheduler: SchedulerConfig | None = None,
        tuning: Tuning | None = None,
        name: str = "spillgate",
    ) -> None:
        """`scheduler`: the `scheduler:` settings (the server's defaults when None);
        `tuning`: what `decide` gets, `scheduler.tuning` when None (a what-if may go beyond
        what the config validates, e.g. `kv_pressure=2` to turn the KV signal off)."""
        self.name = name
        # What a deployer writes for this engine: its vLLM arguments, the context window, and
        # starting rates from a calibration (prefill; one request's decode) until the scraper
        # measures the decode rate.
        settings = EngineRoutingConfig(
            capabilities=CapabilitiesConfig(max_context=profile.max_model_len),
            prefill_tokens_per_s=profile.prefill_tokens_per_s,
            decode_tokens_per_s=1.0 / profile.decode_step_s(1),
        )
        engine = EngineConfig(
            name=LOCAL, model=MODEL, args=list(profile.vllm_args), scheduling=settings
        )
        config = Config(engines=[engine], scheduler=scheduler or SchedulerConfig())
        self.tuning = tuning or config.scheduler.tuning
        self.budget_ms = 1000.0 * ttft_budget_s
        self._margin = config.scheduler.prediction_margin
        self.scrape_interval_s = config.scheduler.scrape_interval_s
        self.scrape_history_s = SCRAPE_WINDOW_S + self.scrape_interval_s
        self._runtime_store = RuntimeStore(config)
        self._engine = _EngineView(LOCAL)
        self._runtime = self._runtime_store.engine(self._engine)
        queue = self._runtime.queue
        self.gateway_queue: GatewaySettings | None = GatewaySettings(
            queue.capacity, queue.max_waiting, config.scheduler.max_queue_wait_s
        )
        self._scraped_at = -math.inf
        self._seen = _Seen()
        self._cloud_caps = Capabilities(images=True)  # providers' defaults in the server

    @property
    def runtime(self) -> EngineRuntime:
        """The server's record of the engine, as this policy has filled it."""
        return self._runtime

    def reserve(self, now: float) -> int:
        """The reserve the server would apply to a spillable request now (one tenant)."""
        return self._runtime_store.reserve(self._engine, ANONYMOUS_KEY, now)

    def route(self, request: Request, world: World) -> Routing:
        self._scrape(world)
        self._learn(world)
        gateway, engine = world.gateway, world.engine
        queue = self._runtime.queue  # the server's AdmissionQueue, as a record of our queue
        queue.active = gateway.active if gateway is not None else 0
        queue.waiting = gateway.waiting if gateway is not None else 0
        self._engine.in_flight = engine.running + len(engine.waiting)
        local = [self._runtime_store.local_state(self._engine, now=world.now)]
        if gateway is not None:
            gateway.reserve = local[0].reserve
            gateway.prefill_tokens_per_s = local[0].prefill_tokens_per_s
        clouds = [
            self._runtime_store.cloud_state(
                _CloudView(p.name, p.price, world.cloud.headroom(p.name, world.now) != 0),
                self._cloud_caps,
            )
            for p in world.cloud.providers.values()
        ]
        features = RequestFeatures(
            model=MODEL,
            prompt_tokens=request.prompt_tokens,
            prompt_tokens_max=request.prompt_tokens,
            max_tokens=request.output_tokens,
            privacy=Privacy.LOCAL_ONLY if request.sensitive else Privacy.MAY_SPILL,
            latency_budget_ms=self.budget_ms,
            prediction_margin=self._margin,
        )
        decision = decide(features, local, clouds, self.tuning)
        if request.sensitive and decision.targets[:1] == (LOCAL,):
            self._runtime.note_private_arrival(world.now)
            self._seen.private_ids.add(request.request_id)
        predicted = decision.predicted_local_ttft_ms
        return Routing(
            decision.targets,
            decision.reason.value,
            None if predicted is None else predicted / 1000.0,
        )

    def _scrape(self, world: World) -> None:
        """The latest scrape before now, as the monitor applies it to the runtime."""
        at = math.floor(world.now / self.scrape_interval_s) * self.scrape_interval_s
        if at == self._scraped_at:
            return
        self._scraped_at = at
        now = world.engine.scrape_at(at)
        if now is None:
            return
        earlier = world.engine.scrape_at(at - SCRAPE_WINDOW_S)
        load = derive_load(
            _metric_sample(now),
            at,
            _metric_sample(earlier) if earlier is not None else None,
            at - SCRAPE_WINDOW_S,
        )
        self._runtime.apply_load(load)  # as the gateway's monitor applies every scrape

    def _learn(self, world: World) -> None:
        """What the executor has reported by now: requests handed to the engine and their
        first tokens (the prefill backlog), finished local requests (output length, the
        time from handing the request over to its end), cloud first tokens (EWMA)."""
        engine, seen, runtime = world.engine, self._seen, self._runtime
        for job in engine.submitted[seen.submitted :]:
            runtime.admitted(job.prompt_tokens)
        seen.submitted = len(engine.submitted)
        first_tokens = engine.first_tokens
        while seen.first_tokens < len(first_tokens):
            job = first_tokens[seen.first_tokens]
            assert job.first_token_s is not None
            if job.first_token_s > world.now:
                break  # the engine's last step ends after this arrival
            runtime.first_token(job.prompt_tokens)
            seen.first_tokens += 1
        for job in engine.finished[seen.finished :]:
            assert job.first_token_s is not None and job.finished_s is not None
            total_s = job.finished_s - job.arrival_s  # arrival at the engine, as the executor
            runtime.observe(None, job.prompt_tokens, job.output_tokens, total_s)
            if job.request_id in seen.private_ids:
                runtime.observe_private(total_s)
        seen.finished = len(engine.finished)
        for name, ttft_s in world.cloud.observed[seen.cloud :]:
            self._runtime_store.cloud(name).observe(ttft_s)
        seen.cloud = len(world.cloud.observed)
