"""Spillgate's policy in the simulator: the server's own `decide`, fed from simulated state.

This module is the only place that knows the scheduler's input types. It keeps the state the
gateway keeps, with the server's code wherever the server has code for it:

- the config a deployer writes for the engine, turned into the engine runtime by the
  server's `RuntimeStore` (concurrency cap: `--max-num-seqs` from the arguments, else 256);
- vLLM's /metrics as the gateway's scraper sees them: a scrape every `scrape_interval_s`,
  rates over a 5 s window, derived by `spillgate.models.load.derive_load`, applied to the
  runtime by `EngineRuntime.apply_load`, as `spillgate.server.monitor` applies it (vLLM's
  counts, decode rate from the mean inter-token latency);
- finished local requests through `EngineRuntime.observe` as the executor calls it, cloud
  first tokens through `CloudRuntime.observe`;

then calls `spillgate.server.scheduler.decide`. The runner carries the targets out as the
executor does (a local target waits in the gateway-side queue, `bench/sim/gateway.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.sim.engine import EngineProfile, Scrape
from bench.sim.policies import LOCAL, GatewaySettings, Routing, World
from bench.sim.trace import Request
from spillgate.fallback.prices import Price
from spillgate.models.load import (
    GENERATION_TOKENS,
    INTER_TOKEN,
    PROMPT_TOKENS,
    QUEUE_TIME,
    RUNNING,
    SCRAPE_WINDOW_S,
    TTFT,
    WAITING,
    MetricSample,
    derive_load,
)
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import CapabilitiesConfig, EngineRoutingConfig, SchedulerConfig
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import Capabilities, Privacy, RequestFeatures, decide

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
    running, waiting, c = scrape
    values = {
        RUNNING: float(running),
        WAITING: float(waiting),
        PROMPT_TOKENS: float(c.prompt_tokens),
        GENERATION_TOKENS: float(c.generation_tokens),
        f"{TTFT}_sum": c.ttft_sum_s,
        f"{TTFT}_count": float(c.ttft_count),
        f"{QUEUE_TIME}_sum": c.queue_time_sum_s,
        f"{QUEUE_TIME}_count": float(c.queue_time_count),
        f"{INTER_TOKEN}_sum": c.inter_token_sum_s,
        f"{INTER_TOKEN}_count": float(c.inter_token_count),
    }
    return MetricSample(values, dict.fromkeys(values, 1))


class SpillgatePolicy:
    name = "spillgate"
    engine_queue_bound: int | None = None

    def __init__(self, profile: EngineProfile, ttft_budget_s: float) -> None:
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
        config = Config(engines=[engine])
        self.budget_ms = 1000.0 * ttft_budget_s
        self._margin = SchedulerConfig().prediction_margin  # the server's default
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
        self._seen_finished = 0
        self._seen_cloud = 0
        self._cloud_caps = Capabilities(images=True)  # providers' defaults in the server

    def route(self, request: Request, world: World) -> Routing:
        self._scrape(world)
        self._learn(world)
        gateway, engine = world.gateway, world.engine
        queue = self._runtime.queue  # the server's AdmissionQueue, as a record of our queue
        queue.active = gateway.active if gateway is not None else 0
        queue.waiting = gateway.waiting if gateway is not None else 0
        self._engine.in_flight = engine.running + len(engine.waiting)
        local = [self._runtime_store.local_state(self._engine)]
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
        decision = decide(features, local, clouds)
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
        """Finished local requests, as the executor reports them (output length, and the time
        from handing the request to the engine to its end) and cloud first tokens (EWMA)."""
        finished = world.engine.finished
        for job in finished[self._seen_finished :]:
            assert job.first_token_s is not None and job.finished_s is not None
            total_s = job.finished_s - job.arrival_s  # arrival at the engine, as the executor
            self._runtime.observe(None, job.prompt_tokens, job.output_tokens, total_s)
        self._seen_finished = len(finished)
        for name, ttft_s in world.cloud.observed[self._seen_cloud :]:
            self._runtime_store.cloud(name).observe(ttft_s)
        self._seen_cloud = len(world.cloud.observed)
