"""The live state the decision reads, kept up to date off the request path.

Per local engine: its health and Spillgate's own in-flight count (exact), vLLM's queue
counts from its last /metrics scrape, the gateway queue, and measured rates. Per cloud
target: breaker state, a latency EWMA and its price. Building the decision's view costs a
few small objects per request; nothing here does I/O inside a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spillgate.fallback.adapter import CloudTarget
from spillgate.models.engine import LocalEngine
from spillgate.models.load import EngineLimits, EngineLoad, max_num_seqs_from_args
from spillgate.protocol import Backend
from spillgate.server.admission import AdmissionQueue
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import EngineRoutingConfig
from spillgate.server.scheduler import (
    DEFAULT_CLOUD_TTFT_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MEAN_OUTPUT_TOKENS,
    Capabilities,
    CloudState,
    LocalState,
)

_EWMA_ALPHA = 0.2


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + _EWMA_ALPHA * (new - old)


@dataclass
class EngineRuntime:
    """What Spillgate keeps about one local engine for scheduling."""

    settings: EngineRoutingConfig
    queue: AdmissionQueue
    #: vLLM's own counts, from the background scrape.
    running: int = 0
    waiting: int = 0
    #: Context window read from the engine (vLLM's /v1/models) unless configured.
    max_model_len: int | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    mean_output_tokens: float | None = None
    #: How long a request holds a slot at this engine, measured end to end.
    mean_request_s: float | None = None

    def apply_load(self, load: EngineLoad, limits: EngineLimits | None = None) -> None:
        """Take in one /metrics scrape (and the limits read from /v1/models, if any): vLLM's
        running and waiting counts and the decode rate from its mean inter-token latency.

        The monitor calls it for every scrape, and the simulator for every simulated one.
        """
        if load.healthy:
            self.running, self.waiting = load.running, load.waiting
            if load.mean_time_per_output_token_s:
                self.decode_tokens_per_s = 1.0 / load.mean_time_per_output_token_s
        if limits is not None and limits.max_model_len:
            self.max_model_len = min(limits.max_model_len.values())

    def observe(self, ttft_s: float | None, prompt_tokens: int, output_tokens: int, total_s: float):
        """Learn from one finished request (rates for the next predictions)."""
        if output_tokens > 1 and ttft_s is not None and total_s > ttft_s:
            self.decode_tokens_per_s = _ewma(
                self.decode_tokens_per_s, (output_tokens - 1) / (total_s - ttft_s)
            )
        if output_tokens > 0:
            self.mean_output_tokens = _ewma(self.mean_output_tokens, float(output_tokens))
        self.mean_request_s = _ewma(self.mean_request_s, total_s)


@dataclass
class CloudRuntime:
    ttft_s: float | None = None
    samples: int = 0

    def observe(self, ttft_s: float) -> None:
        self.ttft_s = _ewma(self.ttft_s, ttft_s)
        self.samples += 1


@dataclass
class RuntimeStore:
    """The live, measured state of every target (filled by the monitor and the executor).

    `views()` takes a snapshot of it for `decide()`; the store itself is not a snapshot.
    """

    config: Config
    engines: dict[str, EngineRuntime] = field(default_factory=dict)
    clouds: dict[str, CloudRuntime] = field(default_factory=dict)

    def engine_config(self, engine: LocalEngine) -> EngineConfig | None:
        group = engine.name.split("@", 1)[0]  # discovered engines are named group@address
        return next((e for e in self.config.engines if e.name == group), None)

    def engine(self, engine: LocalEngine) -> EngineRuntime:
        runtime = self.engines.get(engine.name)
        if runtime is None:
            cfg = self.engine_config(engine)
            settings = cfg.scheduling if cfg else EngineRoutingConfig()
            capacity = (
                settings.max_concurrency
                or (cfg and max_num_seqs_from_args(cfg.args))
                or DEFAULT_MAX_CONCURRENCY
            )
            scheduler = self.config.scheduler
            queue = AdmissionQueue(
                capacity, scheduler.max_queue_len, scheduler.private_share_per_key
            )
            runtime = EngineRuntime(settings, queue)
            self.engines[engine.name] = runtime
        return runtime

    def cloud(self, name: str) -> CloudRuntime:
        runtime = self.clouds.get(name)
        if runtime is None:
            runtime = self.clouds[name] = CloudRuntime()
        return runtime

    def local_state(self, engine: LocalEngine) -> LocalState:
        rt = self.engine(engine)
        caps = rt.settings.capabilities
        return LocalState(
            name=engine.name,
            ready=engine.ready,
            capabilities=Capabilities(
                caps.tools, caps.images, caps.json_schema, caps.max_context or rt.max_model_len
            ),
            # Slots taken in our queue count at once; the engine's own count lags a round trip.
            in_flight=max(engine.in_flight, rt.queue.active),
            running=rt.running,
            waiting=rt.waiting,
            queued=rt.queue.waiting,
            max_concurrency=rt.queue.capacity,
            prefill_tokens_per_s=rt.prefill_tokens_per_s or rt.settings.prefill_tokens_per_s,
            decode_tokens_per_s=rt.decode_tokens_per_s or rt.settings.decode_tokens_per_s,
            mean_output_tokens=rt.mean_output_tokens or DEFAULT_MEAN_OUTPUT_TOKENS,
            mean_request_s=rt.mean_request_s,
        )

    def cloud_state(self, target: CloudTarget, capabilities: Capabilities) -> CloudState:
        rt = self.cloud(target.name)
        price = target.price
        return CloudState(
            name=target.name,
            ready=target.ready,
            capabilities=capabilities,
            ttft_ms=1000.0 * (rt.ttft_s if rt.ttft_s is not None else DEFAULT_CLOUD_TTFT_S),
            input_price=price.input if price else None,
            output_price=price.output if price else None,
        )

    def views(
        self, candidates: list[Backend], cloud_caps: dict[str, Capabilities]
    ) -> tuple[list[LocalState], list[CloudState]]:
        local: list[LocalState] = []
        cloud: list[CloudState] = []
        for backend in candidates:
            if isinstance(backend, LocalEngine):
                local.append(self.local_state(backend))
            elif isinstance(backend, CloudTarget):
                caps = cloud_caps.get(backend.name, Capabilities(images=True))
                cloud.append(self.cloud_state(backend, caps))
        return local, cloud
