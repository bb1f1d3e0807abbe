"""Spillgate's policy in the simulator: the server's own `decide`, fed from simulated state.

This module is the only place that knows the scheduler's input types. It builds them from the
engine and cloud models the way the gateway builds them from /metrics and its own counters,
calls `spillgate.server.scheduler.decide`, and maps the decision back to target names.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.sim.policies import LOCAL, Routing, World
from bench.sim.trace import Request
from spillgate.protocol import Endpoint, TargetKind
from spillgate.server.scheduler import RequestFeatures, decide

MODEL = "sim-model"


@dataclass(slots=True)
class SimTarget:
    """A `TargetView` over the simulator's state at the moment of the decision."""

    name: str
    kind: TargetKind
    in_flight: int
    is_ready: bool

    @property
    def ready(self) -> bool:
        return self.is_ready


class SpillgatePolicy:
    name = "spillgate"
    engine_queue_bound: int | None = None

    def route(self, request: Request, world: World) -> Routing:
        engine = world.engine
        local = SimTarget(LOCAL, TargetKind.LOCAL, engine.running + len(engine.waiting), True)
        clouds = [
            SimTarget(p.name, TargetKind.CLOUD, 0, world.cloud.headroom(p.name, world.now) != 0)
            for p in world.cloud.by_price()
        ]
        features = RequestFeatures(model=MODEL, endpoint=Endpoint.CHAT, stream=True)
        decision = decide(features, [local, *clouds])
        return Routing(tuple(t.name for t in decision.targets), str(decision.reason))
