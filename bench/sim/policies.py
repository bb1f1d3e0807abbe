"""Routing policies to compare. Each says, per request, which targets to try in order.

A target is `LOCAL` or a cloud provider's name. The runner tries them in order, as the
gateway's executor does: a local engine can refuse (prompt too long, or a bounded queue is
full) and a provider can answer 429 (rate limit); then the next target gets the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench.sim.cloud import Cloud
from bench.sim.engine import Engine
from bench.sim.gateway import GatewayQueue
from bench.sim.trace import Request

LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Routing:
    targets: tuple[str, ...]
    reason: str
    predicted_local_ttft_s: float | None = None


@dataclass(slots=True)
class World:
    """What a policy may read when a request arrives: live state, never the future."""

    now: float
    engine: Engine
    cloud: Cloud
    ttft_budget_s: float
    gateway: GatewayQueue | None = None


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """A queue in front of the engine that holds all but `capacity` requests (Spillgate's)."""

    capacity: int
    max_waiting: int
    max_wait_s: float  # for a request that may not move on


class Policy(Protocol):
    name: str
    # A bound on vLLM's waiting queue that the runner gives the engine (None: unbounded).
    engine_queue_bound: int | None
    # A gateway-side queue in front of the engine (None: requests go straight to vLLM).
    gateway_queue: GatewaySettings | None
    # Seconds of the engine's /metrics history the policy reads (0: it reads none).
    scrape_history_s: float

    def route(self, request: Request, world: World) -> Routing: ...


def _cheapest(world: World) -> str:
    return world.cloud.by_price()[0].name


class LocalOnly:
    name = "local-only"
    engine_queue_bound: int | None = None
    gateway_queue: GatewaySettings | None = None
    scrape_history_s: float = 0.0

    def route(self, request: Request, world: World) -> Routing:
        return Routing((LOCAL,), "local")


class CloudOnly:
    """Everything to the cheapest provider; sensitive requests are refused, never sent."""

    name = "cloud-only"
    engine_queue_bound: int | None = None
    gateway_queue: GatewaySettings | None = None
    scrape_history_s: float = 0.0

    def route(self, request: Request, world: World) -> Routing:
        if request.sensitive:
            return Routing((), "sensitive_refused")
        return Routing((_cheapest(world),), "cloud")


class DedicatedSplit:
    """The yardstick of issue 16: the local engine for the requests that may not spill
    alone, straight to vLLM in arrival order (no gateway queue), and every plain request to
    the cheapest provider."""

    name = "split"
    engine_queue_bound: int | None = None
    gateway_queue: GatewaySettings | None = None
    scrape_history_s: float = 0.0

    def route(self, request: Request, world: World) -> Routing:
        if request.sensitive:
            return Routing((LOCAL,), "local")
        return Routing((_cheapest(world),), "cloud")


class ReactiveFallback:
    """A proxy in front of vLLM with a bounded queue, spilling only after the engine refuses
    (LiteLLM-style fallbacks on error): no look at load before sending."""

    name = "reactive"

    def __init__(self, queue_bound: int) -> None:
        self.engine_queue_bound: int | None = queue_bound
        self.gateway_queue: GatewaySettings | None = None
        self.scrape_history_s = 0.0

    def route(self, request: Request, world: World) -> Routing:
        if request.sensitive:
            return Routing((LOCAL,), "local")
        return Routing((LOCAL, _cheapest(world)), "local_then_cloud")


class QueueThreshold:
    """Spill when vLLM's waiting queue (`vllm:num_requests_waiting`) reaches a fixed length."""

    engine_queue_bound: int | None = None
    gateway_queue: GatewaySettings | None = None
    scrape_history_s: float = 0.0

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.name = f"queue>={threshold}"

    def route(self, request: Request, world: World) -> Routing:
        if request.sensitive:
            return Routing((LOCAL,), "local")
        cloud = _cheapest(world)
        if len(world.engine.waiting) >= self.threshold:
            return Routing((cloud,), "queue_threshold")
        return Routing((LOCAL, cloud), "local")
