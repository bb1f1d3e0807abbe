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
    """Local first: ready local engines that serve the model, least busy first."""
    ready = [t for t in candidates if t.ready and t.kind is TargetKind.LOCAL]
    if not ready:
        return Decision((), Reason.NO_TARGET_READY)
    ready.sort(key=lambda t: t.in_flight)
    return Decision(tuple(ready), Reason.LOCAL)
