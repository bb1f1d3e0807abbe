"""The simulator's gateway queue: the reserve for requests that may not spill, and the
private lane's deadline-first, shortest-prompt-first order."""

from __future__ import annotations

from bench.sim.gateway import GatewayQueue, Waiter
from spillgate.server.admission import PRIORITY_LOCAL_ONLY, PRIORITY_SPILLABLE


def waiter(i: int, priority: int, arrival_s: float = 0.0, prompt: int = 100) -> Waiter:
    return Waiter(i, 60.0, priority, (), arrival_s, prompt, arrival_s + 2.0)


def queue(capacity: int, reserve: int, active: int) -> GatewayQueue:
    q = GatewayQueue(capacity, max_waiting=10)
    q.reserve, q.active, q.prefill_tokens_per_s = reserve, active, 1000.0
    return q


def test_a_spillable_request_leaves_the_reserved_slots_free() -> None:
    q = queue(capacity=4, reserve=2, active=2)
    assert not q.try_acquire(PRIORITY_SPILLABLE)
    assert q.try_acquire(PRIORITY_LOCAL_ONLY)
    assert q.try_acquire(PRIORITY_LOCAL_ONLY)
    assert q.active == 4 and not q.try_acquire(PRIORITY_LOCAL_ONLY)


def test_without_a_reserve_a_spillable_request_takes_any_free_slot() -> None:
    q = queue(capacity=4, reserve=0, active=3)
    assert q.try_acquire(PRIORITY_SPILLABLE)


def test_a_freed_slot_inside_the_reserve_is_not_handed_to_a_spillable_waiter() -> None:
    q = queue(capacity=4, reserve=1, active=4)
    q.enqueue(waiter(1, PRIORITY_SPILLABLE))
    # 4 - 1 = 3 active after the release: not below capacity - reserve = 3.
    assert q.hand_on(now=0.0) is None
    assert q.active == 3 and q.waiting == 1
    # The next release leaves 2 active: the spillable waiter may have that one.
    handed = q.hand_on(now=0.0)
    assert handed is not None and handed.request_id == 1 and q.active == 3


def test_a_private_waiter_goes_before_a_spillable_one() -> None:
    q = queue(capacity=2, reserve=0, active=2)
    q.enqueue(waiter(1, PRIORITY_SPILLABLE, arrival_s=0.0))
    q.enqueue(waiter(2, PRIORITY_LOCAL_ONLY, arrival_s=1.0))
    handed = q.hand_on(now=1.0)
    assert handed is not None and handed.request_id == 2


def test_private_waiters_that_can_make_their_deadline_go_first_shortest_prompt_first() -> None:
    q = queue(capacity=1, reserve=0, active=1)
    q.enqueue(waiter(1, PRIORITY_LOCAL_ONLY, arrival_s=0.0, prompt=100))  # late by now=1.95
    q.enqueue(waiter(2, PRIORITY_LOCAL_ONLY, arrival_s=1.0, prompt=800))
    q.enqueue(waiter(3, PRIORITY_LOCAL_ONLY, arrival_s=1.5, prompt=200))
    handed = [q.hand_on(now=1.95) for _ in range(3)]
    order = [w.request_id if w is not None else None for w in handed]
    # 2 and 3 still fit their budget at 1,000 tokens/s; 3 is shorter. Then the late one.
    assert order == [3, 2, 1]


def test_private_waiters_that_are_all_late_go_oldest_first() -> None:
    q = queue(capacity=1, reserve=0, active=1)
    q.enqueue(waiter(1, PRIORITY_LOCAL_ONLY, arrival_s=1.0, prompt=100))
    q.enqueue(waiter(2, PRIORITY_LOCAL_ONLY, arrival_s=0.0, prompt=900))
    first = q.hand_on(now=10.0)
    assert first is not None and first.request_id == 2
