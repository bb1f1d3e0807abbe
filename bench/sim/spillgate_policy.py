"""Spillgate's policy in the simulator: the server's own `decide`, fed from simulated state.

This module is the only place that knows the scheduler's input types. It keeps the state the
gateway keeps (`spillgate.server.snapshot`: the engine runtime with its configured rates and
learnt mean output length, the cloud TTFT EWMAs), builds the decision's views with the
server's own `Snapshot` code, calls `spillgate.server.scheduler.decide`, and hands the
targets to the runner, which carries them out as the executor does (a local target waits in
the gateway-side queue, `bench/sim/gateway.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.sim.engine import EngineProfile
from bench.sim.policies import LOCAL, GatewaySettings, Routing, World
from bench.sim.trace import Request
from spillgate.fallback.prices import Price
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import CapabilitiesConfig, EngineRoutingConfig
from spillgate.server.scheduler import Capabilities, Privacy, RequestFeatures, decide
from spillgate.server.snapshot import Snapshot

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


class SpillgatePolicy:
    name = "spillgate"
    engine_queue_bound: int | None = None

    def __init__(
        self, profile: EngineProfile, ttft_budget_s: float, report_ttft: bool = False
    ) -> None:
        # report_ttft: a what-if. The server's executor calls EngineRuntime.observe() without
        # the time to first token, so the decode rate is never learnt; with this set, the
        # simulator passes it, as a fixed executor would.
        self.report_ttft = report_ttft
        if report_ttft:
            self.name = "spillgate+ttft"
        # What a deployer writes in the config for this engine: its vLLM arguments, the
        # context window, and starting rates from a calibration (prefill, one request's
        # decode). The server's Snapshot turns that into the engine's runtime (its
        # concurrency cap: --max-num-seqs from the arguments, else 256).
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
        self._snapshot = Snapshot(config)
        self._engine = _EngineView(LOCAL)
        self._runtime = self._snapshot.engine(self._engine)
        queue = self._runtime.queue
        self.gateway_queue: GatewaySettings | None = GatewaySettings(
            queue.capacity, queue.max_waiting, config.scheduler.max_queue_wait_s
        )
        self._seen_finished = 0
        self._seen_cloud = 0
        self._cloud_caps = Capabilities(images=True)  # providers' defaults in the server

    def route(self, request: Request, world: World) -> Routing:
        self._learn(world)
        engine, gateway = world.engine, world.gateway
        runtime = self._runtime
        runtime.running, runtime.waiting = engine.running, len(engine.waiting)
        runtime.queue.waiting = gateway.waiting if gateway is not None else 0
        self._engine.in_flight = gateway.active if gateway is not None else engine.running
        local = [self._snapshot.local_state(self._engine)]
        clouds = [
            self._snapshot.cloud_state(
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
        )
        decision = decide(features, local, clouds)
        predicted = decision.predicted_local_ttft_ms
        return Routing(
            decision.targets,
            decision.reason.value,
            None if predicted is None else predicted / 1000.0,
        )

    def _learn(self, world: World) -> None:
        """What the gateway has learnt since the last request: finished local requests (mean
        output length) and first tokens from the cloud (TTFT EWMA), by the server's code."""
        finished = world.engine.finished
        for job in finished[self._seen_finished :]:
            assert job.first_token_s is not None and job.finished_s is not None
            if self.report_ttft:
                ttft_s: float | None = job.first_token_s - job.arrival_s
                total_s = job.finished_s - job.arrival_s
            else:
                # As the executor does today: no TTFT and the stream's time from its first
                # byte, so observe() learns the mean output length but never the decode rate.
                ttft_s, total_s = None, job.finished_s - job.first_token_s
            self._runtime.observe(ttft_s, job.prompt_tokens, job.output_tokens, total_s)
        self._seen_finished = len(finished)
        for name, ttft_s in world.cloud.observed[self._seen_cloud :]:
            self._snapshot.cloud(name).observe(ttft_s)
        self._seen_cloud = len(world.cloud.observed)
