"""Spillgate's gateway-side queue in front of the engine, in simulated time.

The same rules as `spillgate.server.admission.AdmissionQueue` and the executor: at most
`capacity` requests at the engine; the rest wait here, requests that may not spill first;
a waiter that may still spill gives up when its latency budget has passed and moves on to
its next target; one that may not waits up to `max_wait_s`, then gets a 429.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from spillgate.server.admission import PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE


@dataclass(slots=True)
class Waiter:
    request_id: int
    deadline_s: float
    priority: int
    rest: tuple[str, ...]  # the targets to try after giving up on the local engine


class GatewayQueue:
    def __init__(self, capacity: int, max_waiting: int) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.active = 0
        self._lanes: dict[int, deque[Waiter]] = {
            PRIORITY_LOCAL_ONLY: deque(),
            PRIORITY_SPILLABLE: deque(),
        }

    @property
    def waiting(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    @property
    def full(self) -> bool:
        return self.waiting >= self.max_waiting

    def try_acquire(self) -> bool:
        if self.active < self.capacity and self.waiting == 0:
            self.active += 1
            return True
        return False

    def enqueue(self, waiter: Waiter) -> None:
        self._lanes[waiter.priority].append(waiter)

    def expire(self, t: float) -> list[Waiter]:
        """Waiters whose deadline passed before `t`, removed from the queue."""
        gone = []
        for lane in self._lanes.values():
            keep = [w for w in lane if w.deadline_s >= t]
            gone += [w for w in lane if w.deadline_s < t]
            lane.clear()
            lane.extend(keep)
        return gone

    def hand_on(self) -> Waiter | None:
        """A slot is free: the next waiter by priority takes it (call `expire` first)."""
        for priority in (PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE):
            lane = self._lanes[priority]
            if lane:
                return lane.popleft()
        self.active -= 1
        return None
