"""The live state the decision reads, kept up to date off the request path.

Per local engine: its health and Spillgate's own in-flight count (exact), vLLM's queue
counts from its last /metrics scrape, the gateway queue, and measured rates. Per cloud
target: breaker state, a latency EWMA and its price. Building the decision's view costs a
few small objects per request; nothing here does I/O inside a request.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from spillgate.fallback.adapter import CloudTarget
from spillgate.models.engine import LocalEngine
from spillgate.models.load import EngineLimits, EngineLoad, max_num_seqs_from_args
from spillgate.protocol import Backend
from spillgate.server.admission import ANONYMOUS_KEY, AdmissionQueue
from spillgate.server.config import Config, EngineConfig
from spillgate.server.config_routing import EngineRoutingConfig
from spillgate.server.scheduler import (
    DEFAULT_CLOUD_TTFT_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MEAN_OUTPUT_TOKENS,
    DEFAULT_RESERVE_WINDOW_S,
    Capabilities,
    CloudState,
    LocalState,
    reserve_slots,
)

_EWMA_ALPHA = 0.2


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + _EWMA_ALPHA * (new - old)


#: Observation time below which the arrival rate is read as if this long had passed: bounds
#: the noise of the first estimates (one arrival in the first second is not 1 req/s).
MIN_OBSERVED_S = 30.0
#: A decayed count below this reads as no traffic: the count decays after each arrival but
#: never reaches zero, and one private request long ago must not keep a reserve forever
#: (one arrival fades below it after `window x ln 2`, about 7 minutes at the default).
FADED_COUNT = 0.5


@dataclass
class ArrivalRate:
    """Arrivals per second over the recent past, O(1) per arrival and per read.

    An exponentially decayed count (time constant `window_s`), divided by the decayed
    length of the time observed so far: for a steady rate that is the rate itself from the
    first minutes on, where a plain decayed count would read low until a whole window has
    passed (a 4-minute burst would see a third of its rate under a 10-minute window).
    Observation starts at the first `note` or `at`. The clock is the caller's
    (`time.monotonic()` in the server, simulated time in bench/sim).
    """

    window_s: float = DEFAULT_RESERVE_WINDOW_S
    _count: float = 0.0
    _at: float = 0.0
    _since: float | None = None

    def note(self, now: float) -> None:
        self._count = self._decayed(now) + 1.0
        self._at = now

    def at(self, now: float) -> float:
        if self._since is None:
            self._since = now
        if self._decayed(now) < FADED_COUNT:
            return 0.0
        observed_s = max(now - self._since, MIN_OBSERVED_S)
        return self._decayed(now) / (self.window_s * -math.expm1(-observed_s / self.window_s))

    def faded(self, now: float) -> bool:
        """Nothing arrived for about a window: the rate reads zero and can be forgotten."""
        return self._decayed(now) < FADED_COUNT

    def _decayed(self, now: float) -> float:
        if self._since is None:
            self._since = now
        return self._count * math.exp(-max(now - self._at, 0.0) / self.window_s)


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
    #: The same for requests that may not spill alone (the reserve's hold time).
    private_request_s: float | None = None
    #: True once `prefill_tokens_per_s` comes from the engine's own prefill histogram.
    prefill_measured: bool = False
    #: Prompt tokens handed to the engine whose first token has not come back yet.
    prefill_backlog_tokens: int = 0
    kv_cache_usage: float | None = None
    #: Busiest utilisation (0..1) of the GPUs this engine runs on (None: no GPU known).
    gpu_utilization: float | None = None
    #: Arrivals of requests that may not spill, by API key, measured for the reserve.
    private_arrivals: dict[str, ArrivalRate] = field(default_factory=dict)
    #: The time constant of those rates (`scheduler.reserve_window_s`).
    reserve_window_s: float = DEFAULT_RESERVE_WINDOW_S
    #: When the gateway began to watch this engine's traffic (the first snapshot): a key's
    #: rate counts the time it sent nothing since then too.
    watched_since: float | None = None

    def apply_load(self, load: EngineLoad, limits: EngineLimits | None = None) -> None:
        """Take in one /metrics scrape (and the limits read from /v1/models, if any): vLLM's
        running and waiting counts, its KV-cache use, the decode rate from its mean
        inter-token latency, and its measured prefill rate (which from then on replaces the
        configured seed, smoothed).

        The monitor calls it for every scrape, and the simulator for every simulated one.
        """
        if load.healthy:
            self.running, self.waiting = load.running, load.waiting
            self.kv_cache_usage = load.kv_cache_usage
            if load.mean_time_per_output_token_s:
                self.decode_tokens_per_s = 1.0 / load.mean_time_per_output_token_s
            if load.prefill_tokens_per_s:
                # Starts from the first measurement: the configured seed is not averaged in.
                self.prefill_tokens_per_s = _ewma(
                    self.prefill_tokens_per_s, load.prefill_tokens_per_s
                )
                self.prefill_measured = True
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

    def observe_private(self, total_s: float) -> None:
        """A non-spillable request held a slot for `total_s` (besides `observe`)."""
        self.private_request_s = _ewma(self.private_request_s, total_s)

    def note_private_arrival(self, now: float, key: str = ANONYMOUS_KEY) -> None:
        """A request of `key` that may not spill was routed to this engine (the arrival
        rates size the reserve)."""
        rate = self.private_arrivals.get(key)
        if rate is None:
            since = now if self.watched_since is None else self.watched_since
            rate = self.private_arrivals[key] = ArrivalRate(self.reserve_window_s, _since=since)
        rate.note(now)

    def private_hold_s(self) -> float:
        """How long a private request holds a slot: measured for those requests, else for
        any request, else the mean answer at the decode speed (`slot_lifetime_s`)."""
        if self.private_request_s:
            return self.private_request_s
        if self.mean_request_s:
            return self.mean_request_s
        decode = self.decode_tokens_per_s or self.settings.decode_tokens_per_s
        return (self.mean_output_tokens or DEFAULT_MEAN_OUTPUT_TOKENS) / max(decode, 1e-6)

    def private_rate(self, now: float) -> float:
        """Arrivals per second of requests that may not spill, every key's."""
        return sum(rate.at(now) for rate in self.private_arrivals.values())

    def reserve_for(self, key: str, now: float, hold_s: float, blocking: float) -> int:
        """The slots a spillable request of `key` must leave free.

        Each key's private load reserves `reserve_slots` of its own. Against the key's own
        spillable requests that counts in full (a tenant may send its own plain traffic to
        the cloud); another key's counts only up to that key's share of the slots
        (`scheduler.private_share_per_key`) less what it holds, the bound the private lane
        gives it: one tenant's on-prem marks cannot push other tenants' requests to the
        cloud at their cost. Summing per key over-reserves a little against pooling the
        load (Erlang B favours a pool), on the side of the private requests.
        """
        if blocking >= 1.0:
            return 0
        queue, total = self.queue, 0
        for owner, rate in list(self.private_arrivals.items()):
            if rate.faded(now):
                del self.private_arrivals[owner]
                continue
            slots = reserve_slots(rate.at(now), hold_s, queue.capacity, blocking)
            if owner != key:
                slots = min(slots, max(0, queue.private_slots_per_key - queue.held(owner)))
            total += slots
        return min(total, queue.capacity)

    def admitted(self, prompt_tokens: int) -> None:
        """A request was handed to the engine: its prompt joins the prefill backlog."""
        self.prefill_backlog_tokens += prompt_tokens

    def first_token(self, prompt_tokens: int) -> None:
        """The request's first token came (or it ended without one): its prefill is done."""
        self.prefill_backlog_tokens = max(0, self.prefill_backlog_tokens - prompt_tokens)


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

    def engine_config(self, name: str) -> EngineConfig | None:
        """The configuration of the engine named `name`."""
        group = name.split("@", 1)[0]  # discovered engines are named group@address
        return next((e for e in self.config.engines if e.name == group), None)

    def engine(self, engine: LocalEngine) -> EngineRuntime:
        runtime = self.engines.get(engine.name)
        if runtime is None:
            cfg = self.engine_config(engine.name)
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
            runtime = EngineRuntime(settings, queue, reserve_window_s=scheduler.reserve_window_s)
            self.engines[engine.name] = runtime
        return runtime

    def cloud(self, name: str) -> CloudRuntime:
        runtime = self.clouds.get(name)
        if runtime is None:
            runtime = self.clouds[name] = CloudRuntime()
        return runtime

    def local_state(
        self, engine: LocalEngine, now: float | None = None, key: str = ANONYMOUS_KEY
    ) -> LocalState:
        """The engine as `decide()` sees it for a request of `key`; `now` is the clock the
        arrival rates read (`time.monotonic()` unless given)."""
        rt = self.engine(engine)
        caps = rt.settings.capabilities
        now = time.monotonic() if now is None else now
        if rt.watched_since is None:
            rt.watched_since = now
        state = LocalState(
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
            prefill_measured=rt.prefill_measured,
            prefill_backlog_tokens=rt.prefill_backlog_tokens,
            kv_cache_usage=rt.kv_cache_usage,
            gpu_utilization=rt.gpu_utilization,
            private_arrivals_per_s=rt.private_rate(now) if rt.private_arrivals else 0.0,
            private_hold_s=rt.private_request_s,
        )
        if not rt.private_arrivals:
            return state  # the common case: no private traffic, no reserve
        return dataclasses.replace(state, reserve=self.reserve(engine, key, now))

    def reserve(self, engine: LocalEngine, key: str, now: float | None = None) -> int:
        """The slots a spillable request of `key` must leave free at `engine` now."""
        rt = self.engine(engine)
        if not rt.private_arrivals:
            return 0
        now = time.monotonic() if now is None else now
        blocking = self.config.scheduler.reserve_blocking
        return rt.reserve_for(key, now, rt.private_hold_s(), blocking)

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
        self,
        candidates: list[Backend],
        cloud_caps: dict[str, Capabilities],
        key: str = ANONYMOUS_KEY,
    ) -> tuple[list[LocalState], list[CloudState]]:
        """The snapshot `decide()` reads for a request of `key` (the reserve is per key)."""
        local: list[LocalState] = []
        cloud: list[CloudState] = []
        for backend in candidates:
            if isinstance(backend, LocalEngine):
                local.append(self.local_state(backend, key=key))
            elif isinstance(backend, CloudTarget):
                caps = cloud_caps.get(backend.name, Capabilities(images=True))
                cloud.append(self.cloud_state(backend, caps))
        return local, cloud
