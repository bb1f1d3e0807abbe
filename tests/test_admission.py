"""The gateway-side queue: bounded, deadlines, priority for requests that may not spill, fair."""

from __future__ import annotations

import asyncio

import pytest

from spillgate.server.admission import (
    PRIORITY_LOCAL_ONLY,
    PRIORITY_SPILLABLE,
    AdmissionQueue,
    QueueFull,
    QueueTimeout,
)


async def test_slots_then_waiting_then_handover() -> None:
    q = AdmissionQueue(capacity=2, max_waiting=10)
    assert q.try_acquire() and q.try_acquire()
    assert not q.try_acquire()
    waiter = asyncio.create_task(q.acquire("k", PRIORITY_SPILLABLE, 5))
    await asyncio.sleep(0)
    assert q.waiting == 1
    q.release()
    assert await waiter >= 0.0
    assert q.active == 2 and q.waiting == 0
    q.release()
    q.release()
    assert q.active == 0


async def test_deadline_passes_and_the_waiter_leaves_cleanly() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=10)
    assert q.try_acquire()
    with pytest.raises(QueueTimeout):
        await q.acquire("k", PRIORITY_SPILLABLE, 0.05)
    assert q.waiting == 0 and q.timed_out_total == 1
    q.release()
    assert q.active == 0  # nobody left to hand the slot to


async def test_bounded() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=1)
    assert q.try_acquire()
    first = asyncio.create_task(q.acquire("a", PRIORITY_SPILLABLE, 5))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await q.acquire("b", PRIORITY_SPILLABLE, 5)
    q.release()
    await first


async def test_requests_that_may_not_spill_go_first_and_keys_take_turns() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=100)
    assert q.try_acquire()
    order: list[str] = []

    async def wait(name: str, key: str, priority: int) -> None:
        await q.acquire(key, priority, 10)
        order.append(name)

    tasks = [
        asyncio.create_task(wait(f"busy{i}", "busy-key", PRIORITY_SPILLABLE)) for i in range(3)
    ]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(wait("quiet", "quiet-key", PRIORITY_SPILLABLE)))
    tasks.append(asyncio.create_task(wait("private", "busy-key", PRIORITY_LOCAL_ONLY)))
    await asyncio.sleep(0)
    for _ in range(5):
        q.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order[0] == "private"
    # The quiet key does not wait behind all of the busy key's requests.
    assert order.index("quiet") <= 2


async def test_cancelled_waiter_is_forgotten() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=10)
    assert q.try_acquire()
    task = asyncio.create_task(q.acquire("k", PRIORITY_SPILLABLE, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.waiting == 0
