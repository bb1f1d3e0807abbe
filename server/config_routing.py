"""Configuration of the scheduler: capabilities, latency budgets, the queue."""

from __future__ import annotations

from pydantic import Field

from spillgate.models.load import SCRAPE_INTERVAL_S
from spillgate.server.config_base import Strict

# The defaults live with the decision that reads them (scheduler.py, a pure module the
# simulator imports too); the configuration's fields take them from there.
from spillgate.server.scheduler import (
    DEFAULT_AFFINITY_LOAD_FACTOR,
    DEFAULT_DECODE_TOKENS_PER_S,
    DEFAULT_KV_PRESSURE,
    DEFAULT_LATENCY_BUDGET_MS,
    DEFAULT_PREDICTION_MARGIN,
    DEFAULT_PREFILL_TOKENS_PER_S,
    DEFAULT_RESERVE_BLOCKING,
    DEFAULT_RESERVE_WINDOW_S,
    Tuning,
)


class CapabilitiesConfig(Strict):
    """What a model can do; a request needing more is a capability gap."""

    tools: bool = True
    images: bool = False
    json_schema: bool = True
    #: Context window in tokens. For a local engine, None reads vLLM's max_model_len.
    max_context: int | None = Field(None, gt=0)


class CloudCapabilitiesConfig(CapabilitiesConfig):
    images: bool = True


class SchedulerConfig(Strict):
    #: Time to first token a request may wait for locally before it spills (ms); a request
    #: can ask for its own with the `x-spillgate-max-ttft-ms` header.
    latency_budget_ms: float = Field(DEFAULT_LATENCY_BUDGET_MS, gt=0)
    #: Keep a request local only if the predicted local TTFT times this factor fits the
    #: budget: a margin for the prediction's error under load (docs/routing.md).
    prediction_margin: float = Field(DEFAULT_PREDICTION_MARGIN, ge=1.0)
    #: How long a request that may not spill waits for local capacity before a 429.
    max_queue_wait_s: float = Field(60.0, gt=0)
    #: Requests waiting in Spillgate's queue per engine, at most.
    max_queue_len: int = Field(1000, ge=0)
    #: Requests that may not spill wait ahead of those that may, but one key only while it
    #: holds less than this share of an engine's slots (at least one slot): marking requests
    #: on-prem cannot push other keys' requests to the cloud without bound.
    private_share_per_key: float = Field(0.25, gt=0, le=1)
    #: How often each engine's /metrics is read for the snapshot.
    scrape_interval_s: float = Field(SCRAPE_INTERVAL_S, gt=0)
    #: Slots kept for requests that may not spill, sized so that one arriving finds them
    #: all taken by its own class with at most this chance (Erlang B over the measured
    #: arrival rate of such requests; docs/routing.md). 1 turns the reserve off.
    reserve_blocking: float = Field(DEFAULT_RESERVE_BLOCKING, gt=0, le=1)
    #: Time constant (s) of the measured arrival rate of requests that may not spill.
    reserve_window_s: float = Field(DEFAULT_RESERVE_WINDOW_S, gt=0)
    #: KV-cache use (vLLM's kv_cache_usage_perc, 0..1) from which an engine counts as full.
    kv_pressure: float = Field(DEFAULT_KV_PRESSURE, gt=0, le=1)
    #: Requests sharing a prompt prefix go to the same replica while its load stays within
    #: `affinity_load_factor` x the replicas' mean (vLLM's prefix cache then hits).
    prefix_affinity: bool = True
    affinity_load_factor: float = Field(DEFAULT_AFFINITY_LOAD_FACTOR, gt=1)

    @property
    def tuning(self) -> Tuning:
        """The settings `decide()` reads."""
        return Tuning(
            kv_pressure=self.kv_pressure,
            affinity_load_factor=self.affinity_load_factor,
        )


class EngineRoutingConfig(Strict):
    """Per-engine scheduling knobs (under `engines[].scheduling`)."""

    capabilities: CapabilitiesConfig = Field(default_factory=CapabilitiesConfig)
    #: Requests Spillgate lets run at the engine at once; more wait in its queue.
    #: Default: vLLM's --max-num-seqs when given in `args`, else DEFAULT_MAX_CONCURRENCY.
    max_concurrency: int | None = Field(None, gt=0)
    #: Starting rates for the TTFT prediction until measurements replace them.
    prefill_tokens_per_s: float = Field(DEFAULT_PREFILL_TOKENS_PER_S, gt=0)
    decode_tokens_per_s: float = Field(DEFAULT_DECODE_TOKENS_PER_S, gt=0)
