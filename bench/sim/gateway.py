"""Spillgate's gateway-side queue in front of the engine, in simulated time.

The same rules as `spillgate.server.admission.AdmissionQueue` and the executor: at most
`capacity` requests at the engine; the rest wait here, requests that may not spill first;
a waiter that may still spill gives up when its latency budget has passed and moves on to
its next target; one that may not waits up to `max_wait_s`, then gets a 429.

The reserve (docs/routing.md): a spillable request takes a slot only while
`active < capacity - reserve`, so the last `reserve` slots stay for requests that may not
spill. The private lane is ordered for deadlines: those that can still make theirs at the
engine's prefill rate go first, shortest prompt first; then those that cannot, oldest first.
The simulator has one client key, so the spillable lane is plain FIFO.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from spillgate.server.admission import PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE


@dataclass(slots=True)
class Waiter:
    request_id: int
    deadline_s: float  # when it stops waiting (gives up, or moves on)
    priority: int
    rest: tuple[str, ...]  # the targets to try after giving up on the local engine
    arrival_s: float = 0.0
    prompt_tokens: int = 0
    budget_deadline_s: float = 0.0  # arrival + latency budget: when its first token is late


class GatewayQueue:
    def __init__(self, capacity: int, max_waiting: int) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.active = 0
        # Set by the policy from the server's `RuntimeStore.local_state` (reserve) and the
        # engine's prefill rate as the runtime knows it (private-lane ordering).
        self.reserve = 0
        self.prefill_tokens_per_s = 1.0
        self._private: list[Waiter] = []
        self._spillable: deque[Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._private) + len(self._spillable)

    @property
    def full(self) -> bool:
        return self.waiting >= self.max_waiting

    def _open_to_spillable(self, active: int) -> bool:
        return active < self.capacity - self.reserve

    def try_acquire(self, priority: int = PRIORITY_SPILLABLE) -> bool:
        """Take a slot at once if one is open to this priority and nobody waits for it."""
        if priority == PRIORITY_LOCAL_ONLY:
            ok = self.active < self.capacity and not self._private
        else:
            ok = self._open_to_spillable(self.active) and self.waiting == 0
        if ok:
            self.active += 1
        return ok

    def enqueue(self, waiter: Waiter) -> None:
        if waiter.priority == PRIORITY_LOCAL_ONLY:
            self._private.append(waiter)
        else:
            self._spillable.append(waiter)

    def expire(self, t: float) -> list[Waiter]:
        """Waiters whose deadline passed before `t`, removed from the queue."""
        gone = [w for w in self._private if w.deadline_s < t]
        gone += [w for w in self._spillable if w.deadline_s < t]
        if gone:
            self._private = [w for w in self._private if w.deadline_s >= t]
            self._spillable = deque(w for w in self._spillable if w.deadline_s >= t)
        return gone

    def next_private(self, now: float) -> Waiter | None:
        """The private waiter to serve next: of those that can still make their deadline,
        the shortest prompt; else the oldest."""
        if not self._private:
            return None
        rate = max(self.prefill_tokens_per_s, 1e-6)

        def feasible(w: Waiter) -> bool:
            return now + w.prompt_tokens / rate <= w.budget_deadline_s

        in_time = [w for w in self._private if feasible(w)]
        if in_time:
            return min(in_time, key=lambda w: (w.prompt_tokens, w.arrival_s))
        return min(self._private, key=lambda w: w.arrival_s)

    def hand_on(self, now: float) -> Waiter | None:
        """A slot is free: the next private waiter takes it; else the next spillable one,
        if the slot is not one of the reserve (call `expire` first). None: the slot is
        freed."""
        private = self.next_private(now)
        if private is not None:
            self._private.remove(private)
            return private
        if self._spillable and self._open_to_spillable(self.active - 1):
            return self._spillable.popleft()
        self.active -= 1
        return None
