"""The gateway-side queue in front of each local engine.

At most `capacity` requests run at the engine; the rest wait here, where Spillgate can
still decide about them (spill them, or answer 429) instead of in vLLM's own queue, where
it cannot. Waiting requests are served by priority class (requests that may not spill
first), and round-robin across keys within a class, so one busy key cannot starve others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass


class QueueFull(Exception):
    """The queue is at its bound; `retry_after_s` says when a slot is likely."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("local queue full")
        self.retry_after_s = retry_after_s


class QueueTimeout(Exception):
    """The request's deadline passed while it waited."""


PRIORITY_LOCAL_ONLY = 0
PRIORITY_SPILLABLE = 1


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    key: str


class AdmissionQueue:
    def __init__(self, capacity: int, max_waiting: int) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.active = 0
        self.waiting = 0
        #: priority -> key -> waiters, keys in round-robin order.
        self._classes: dict[int, OrderedDict[str, deque[_Waiter]]] = {
            PRIORITY_LOCAL_ONLY: OrderedDict(),
            PRIORITY_SPILLABLE: OrderedDict(),
        }
        self.admitted_total = 0
        self.timed_out_total = 0
        self.wait_s_total = 0.0

    def try_acquire(self) -> bool:
        """Take a slot at once if one is free and nobody waits (the hot path: no task)."""
        if self.active < self.capacity and self.waiting == 0:
            self.active += 1
            self.admitted_total += 1
            return True
        return False

    async def acquire(self, key: str, priority: int, timeout_s: float) -> float:
        """Wait for a slot for at most `timeout_s`; returns the seconds waited."""
        if self.try_acquire():
            return 0.0
        if self.waiting >= self.max_waiting:
            raise QueueFull(retry_after_s=max(1.0, timeout_s))
        started = time.monotonic()
        waiter = _Waiter(asyncio.get_running_loop().create_future(), key)
        lane = self._classes[priority].setdefault(key, deque())
        lane.append(waiter)
        self.waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # granted at the last moment: hand the slot on
            else:
                waiter.future.cancel()
                self._forget(priority, waiter)
            if isinstance(exc, TimeoutError):
                self.timed_out_total += 1
                raise QueueTimeout from None
            raise
        waited = time.monotonic() - started
        self.wait_s_total += waited
        return waited

    def _forget(self, priority: int, waiter: _Waiter) -> None:
        lanes = self._classes[priority]
        lane = lanes.get(waiter.key)
        if lane is not None and waiter in lane:
            lane.remove(waiter)
            self.waiting -= 1
            if not lane:
                del lanes[waiter.key]

    def release(self) -> None:
        """Free a slot: hand it to the next waiter by priority, then round-robin by key."""
        for priority in (PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE):
            lanes = self._classes[priority]
            while lanes:
                key, lane = next(iter(lanes.items()))
                waiter = lane.popleft()
                self.waiting -= 1
                if lane:
                    lanes.move_to_end(key)  # this key had its turn
                else:
                    del lanes[key]
                if not waiter.future.done():
                    waiter.future.set_result(None)
                    self.admitted_total += 1
                    return  # the slot passes straight to the waiter
        self.active -= 1
