"""The decision: which targets may serve a request, in which order, and why.

`decide` is a pure function over the request's features and the live view of the targets:
no I/O, no clock, no globals, so the simulator in bench/ can run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from spillgate.protocol import Endpoint, TargetKind


class Reason(StrEnum):
    """Why a request went where it went (sent as `x-spillgate-reason`)."""

    LOCAL = "local"
    #: The model is a route whose local targets (if any) are not ready: its cloud targets serve.
    CLOUD_ROUTE = "cloud_route"
    NO_TARGET_READY = "no_target_ready"


class TargetView(Protocol):
    """What the decision reads of a target: a snapshot field, never fetched in a request."""

    name: str
    kind: TargetKind
    in_flight: int

    @property
    def ready(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    model: str
    endpoint: Endpoint
    stream: bool


@dataclass(frozen=True, slots=True)
class Decision:
    targets: tuple[TargetView, ...]
    reason: Reason


def decide(features: RequestFeatures, candidates: Sequence[TargetView]) -> Decision:
    """Local first: ready local engines that serve the model, least busy first; then the
    route's ready cloud targets in their configured order."""
    local = [t for t in candidates if t.ready and t.kind is TargetKind.LOCAL]
    local.sort(key=lambda t: t.in_flight)
    cloud = [t for t in candidates if t.ready and t.kind is TargetKind.CLOUD]
    if not local and not cloud:
        return Decision((), Reason.NO_TARGET_READY)
    return Decision((*local, *cloud), Reason.LOCAL if local else Reason.CLOUD_ROUTE)
