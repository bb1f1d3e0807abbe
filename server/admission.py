"""The gateway-side queue in front of each local engine.

At most `capacity` requests run at the engine; the rest wait here, where Spillgate can
still decide about them (spill them, or answer 429) instead of in vLLM's own queue, where
it cannot.

Two lanes. Requests that may not spill (marked on-prem, carrying findings, or with their
key's cloud budget spent) may take any slot; a spillable request leaves the last `reserve`
slots to them (sized from their measured load, for the request's key, by
`RuntimeStore.reserve`).
A freed slot goes first to a waiting request that may not spill: among those, the ones
that can still make their deadline at the engine's prefill rate go shortest prompt first
(the most of them make it), then those that cannot, oldest first. Spillable requests take
their turn round-robin across keys, FIFO within a key, so one busy key cannot starve others.

Any key may mark its requests on-prem, so that lane is bounded per key: a key's requests
that may not spill go first only while that key holds fewer than `private_slots_per_key`
slots. Beyond that they wait behind the spillable requests of every key (they still may
not spill), oldest first, so one tenant cannot push others' requests to the cloud at their
cost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field


class QueueFull(Exception):
    """The queue is at its bound; `retry_after_s` says when a slot is likely."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("local queue full")
        self.retry_after_s = retry_after_s


class QueueTimeout(Exception):
    """The request's deadline passed while it waited."""


PRIORITY_LOCAL_ONLY = 0
PRIORITY_SPILLABLE = 1

#: The queue's key for a request without an API key (auth off).
ANONYMOUS_KEY = "anonymous"

_arrivals = itertools.count()


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[None]
    key: str
    priority: int
    #: For the private lane's order: the prompt's tokens, when the request must have its
    #: first token (a `time.monotonic()` reading; None: no deadline) and the engine's
    #: prefill rate the waiter was queued with.
    prompt_tokens: int = 0
    deadline: float | None = None
    prefill_tokens_per_s: float | None = None
    #: For a spillable waiter: the slots it leaves free (the reserve when it was queued).
    reserve: int = 0
    order: int = field(default_factory=lambda: next(_arrivals))

    def feasible(self, now: float) -> bool:
        """Can it still have its first token by its deadline if admitted now?"""
        if self.deadline is None:
            return True
        rate = self.prefill_tokens_per_s
        prefill_s = self.prompt_tokens / rate if rate else 0.0
        return now + prefill_s <= self.deadline


class AdmissionQueue:
    def __init__(self, capacity: int, max_waiting: int, private_share_per_key: float) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.private_slots_per_key = max(1, int(capacity * private_share_per_key))
        self.active = 0
        self.waiting = 0
        #: Slots held, by key.
        self._held: Counter[str] = Counter()
        #: Waiting requests that may not spill, in arrival order.
        self._private: list[_Waiter] = []
        #: Waiting spillable requests: key -> its waiters, keys in round-robin order.
        self._spillable: OrderedDict[str, deque[_Waiter]] = OrderedDict()
        self.admitted_total = 0
        self.timed_out_total = 0
        self.wait_s_total = 0.0

    def held(self, key: str) -> int:
        """Slots `key` holds now."""
        return self._held[key]

    def try_acquire(self, key: str, priority: int = PRIORITY_SPILLABLE, reserve: int = 0) -> bool:
        """Take a slot at once if one is free to this request and nobody waits for it
        (the hot path: no task). A spillable request leaves the last `reserve` slots free
        (`RuntimeStore.reserve`: kept for requests that may not spill); one that may not
        spill may take any, and when one is free none of its lane waits (a freed slot goes
        to them first)."""
        if priority == PRIORITY_LOCAL_ONLY:
            free = self.active < self.capacity
        else:
            free = self.active < self.capacity - reserve and self.waiting == 0
        if free:
            self.active += 1
            self.admitted_total += 1
            self._held[key] += 1
        return free

    async def acquire(
        self,
        key: str,
        priority: int,
        timeout_s: float,
        *,
        prompt_tokens: int = 0,
        deadline: float | None = None,
        prefill_tokens_per_s: float | None = None,
        reserve: int = 0,
    ) -> float:
        """Wait for a slot for at most `timeout_s`; returns the seconds waited.

        The slot is `key`'s until `release(key)`. `prompt_tokens`, `deadline` (when its
        first token is due, by `time.monotonic()`) and `prefill_tokens_per_s` order the
        lane of requests that may not spill; a spillable waiter is handed a slot only
        outside its `reserve`.
        """
        if self.try_acquire(key, priority, reserve):
            return 0.0
        if self.waiting >= self.max_waiting:
            raise QueueFull(retry_after_s=max(1.0, timeout_s))
        started = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(
            future, key, priority, prompt_tokens, deadline, prefill_tokens_per_s, reserve
        )
        if priority == PRIORITY_LOCAL_ONLY:
            self._private.append(waiter)
        else:
            self._spillable.setdefault(key, deque()).append(waiter)
        self.waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if future.done() and not future.cancelled():
                self.release(key)  # granted at the last moment: hand the slot on
            else:
                future.cancel()
                self._forget(waiter)
            if isinstance(exc, TimeoutError):
                self.timed_out_total += 1
                raise QueueTimeout from None
            raise
        waited = time.monotonic() - started
        self.wait_s_total += waited
        return waited

    def _forget(self, waiter: _Waiter) -> None:
        if waiter.priority == PRIORITY_LOCAL_ONLY:
            if waiter in self._private:
                self._private.remove(waiter)
                self.waiting -= 1
            return
        lane = self._spillable.get(waiter.key)
        if lane is not None and waiter in lane:
            lane.remove(waiter)
            self.waiting -= 1
            if not lane:
                del self._spillable[waiter.key]

    def release(self, key: str) -> None:
        """Free `key`'s slot and hand it to the next waiter (the order is the module's
        docstring's). A spillable waiter gets it only outside the reserve; else the slot
        stays free for the requests that may not spill."""
        while True:
            waiter = self._next_waiter()
            if waiter is None:
                break
            if self._grant(waiter):
                self._hand_over(key, waiter.key)
                return  # the slot passes straight to the waiter
        self.active -= 1
        self._hand_over(key, None)

    def _next_waiter(self) -> _Waiter | None:
        """The waiter the slot being freed goes to, out of its lane; None: it stays free.
        The releasing key still counts the slot it frees, so at its bound it cannot take
        that slot straight back."""
        private = self._private
        if private:
            bound = self.private_slots_per_key
            under = [w for w in private if self._held[w.key] < bound]
            if under:
                now = time.monotonic()
                waiter = min(under, key=lambda w: _private_rank(w, now))
                private.remove(waiter)
                self.waiting -= 1
                return waiter
        # `active` still counts the slot being freed.
        if self._spillable:
            head = next(iter(self._spillable.values()))[0]
            if self.active - 1 < self.capacity - head.reserve:
                return self._pop_spillable()
        if private:
            self.waiting -= 1
            return private.pop(0)
        return None

    def _pop_spillable(self) -> _Waiter:
        """The head of the next key's lane, that key moved to the back of the round."""
        lanes = self._spillable
        key, lane = next(iter(lanes.items()))
        waiter = lane.popleft()
        self.waiting -= 1
        if lane:
            lanes.move_to_end(key)  # this key had its turn
        else:
            del lanes[key]
        return waiter

    def _grant(self, waiter: _Waiter) -> bool:
        if waiter.future.done():
            return False  # it left (timed out, cancelled) as the slot came free
        waiter.future.set_result(None)
        self.admitted_total += 1
        return True

    def _hand_over(self, releasing: str, taking: str | None) -> None:
        if taking is not None:
            self._held[taking] += 1
        self._held[releasing] -= 1
        if self._held[releasing] <= 0:
            del self._held[releasing]


def _private_rank(waiter: _Waiter, now: float) -> tuple[int, int, int]:
    """Those that can still make their deadline first, shortest prompt first; then the
    rest, oldest first."""
    if waiter.feasible(now):
        return (0, waiter.prompt_tokens, waiter.order)
    return (1, 0, waiter.order)
