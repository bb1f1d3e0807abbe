"""The gateway-side queue in front of each local engine.

At most `capacity` requests run at the engine; the rest wait here, where Spillgate can
still decide about them (spill them, or answer 429) instead of in vLLM's own queue, where
it cannot. Waiting requests are served by priority class (requests that may not spill
first), and round-robin across keys within a class, so one busy key cannot starve others.

Any key may mark its requests on-prem, so the first class is bounded per key: a key's
requests that may not spill go first only while that key holds fewer than
`private_slots_per_key` slots. Beyond that they wait behind the spillable requests of
every key (they still may not spill), so one tenant cannot push others' requests to the
cloud at their cost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
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
    def __init__(self, capacity: int, max_waiting: int, private_share_per_key: float) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.private_slots_per_key = max(1, int(capacity * private_share_per_key))
        self.active = 0
        self.waiting = 0
        #: Slots a spillable request may not take: kept for requests that may not spill
        #: (set from the measured private load by `RuntimeStore.local_state`).
        self.reserve = 0
        #: Slots held, by key.
        self._held: Counter[str] = Counter()
        #: priority -> key -> waiters, keys in round-robin order.
        self._classes: dict[int, OrderedDict[str, deque[_Waiter]]] = {
            PRIORITY_LOCAL_ONLY: OrderedDict(),
            PRIORITY_SPILLABLE: OrderedDict(),
        }
        self.admitted_total = 0
        self.timed_out_total = 0
        self.wait_s_total = 0.0

    def try_acquire(self, key: str) -> bool:
        """Take a slot at once if one is free and nobody waits (the hot path: no task)."""
        if self.active < self.capacity and self.waiting == 0:
            self.active += 1
            self.admitted_total += 1
            self._held[key] += 1
            return True
        return False

    async def acquire(self, key: str, priority: int, timeout_s: float) -> float:
        """Wait for a slot for at most `timeout_s`; returns the seconds waited.

        The slot is `key`'s until `release(key)`.
        """
        if self.try_acquire(key):
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
                self.release(key)  # granted at the last moment: hand the slot on
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

    def release(self, key: str) -> None:
        """Free `key`'s slot and hand it to the next waiter: requests that may not spill
        of keys under their bound, then spillable ones, then the rest; round-robin by key
        within each."""
        for lanes, waiter in self._candidates():
            lane = lanes[waiter.key]
            lane.popleft()
            self.waiting -= 1
            if lane:
                lanes.move_to_end(waiter.key)  # this key had its turn
            else:
                del lanes[waiter.key]
            if not waiter.future.done():
                waiter.future.set_result(None)
                self.admitted_total += 1
                self._hand_over(key, waiter.key)
                return  # the slot passes straight to the waiter
        self.active -= 1
        self._hand_over(key, None)

    def _candidates(self) -> Iterator[tuple[OrderedDict[str, deque[_Waiter]], _Waiter]]:
        """Lane heads in the order they are served. The releasing key still counts the slot
        it frees, so at its bound it cannot take that slot straight back."""
        private = self._classes[PRIORITY_LOCAL_ONLY]
        spillable = self._classes[PRIORITY_SPILLABLE]
        bound = self.private_slots_per_key
        while private or spillable:
            under = [k for k in private if self._held[k] < bound]
            if under:
                yield private, private[under[0]][0]
            elif spillable:
                yield spillable, next(iter(spillable.values()))[0]
            else:
                yield private, next(iter(private.values()))[0]

    def _hand_over(self, releasing: str, taking: str | None) -> None:
        if taking is not None:
            self._held[taking] += 1
        self._held[releasing] -= 1
        if self._held[releasing] <= 0:
            del self._held[releasing]
