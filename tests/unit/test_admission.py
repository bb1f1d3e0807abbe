"""The gateway-side queue: bounded, deadlines, priority for requests that may not spill, fair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from spillgate.server.admission import (
    PRIORITY_LOCAL_ONLY,
    PRIORITY_SPILLABLE,
    AdmissionQueue,
    QueueFull,
    QueueTimeout,
)


async def test_slots_then_waiting_then_handover() -> None:
    q = AdmissionQueue(capacity=2, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("holder") and q.try_acquire("holder")
    assert not q.try_acquire("holder")
    waiter = asyncio.create_task(q.acquire("k", PRIORITY_SPILLABLE, 5))
    await asyncio.sleep(0)
    assert q.waiting == 1
    q.release("holder")
    assert await waiter >= 0.0
    assert q.active == 2 and q.waiting == 0
    q.release("k")
    q.release("holder")
    assert q.active == 0


async def test_deadline_passes_and_the_waiter_leaves_cleanly() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("holder")
    with pytest.raises(QueueTimeout):
        await q.acquire("k", PRIORITY_SPILLABLE, 0.05)
    assert q.waiting == 0 and q.timed_out_total == 1
    q.release("holder")
    assert q.active == 0  # nobody left to hand the slot to


async def test_bounded() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=1, private_share_per_key=1.0)
    assert q.try_acquire("holder")
    first = asyncio.create_task(q.acquire("a", PRIORITY_SPILLABLE, 5))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await q.acquire("b", PRIORITY_SPILLABLE, 5)
    q.release("holder")
    await first


async def test_requests_that_may_not_spill_go_first_and_keys_take_turns() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=100, private_share_per_key=1.0)
    assert q.try_acquire("holder")
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
    holder = "holder"
    for served in range(1, 6):
        q.release(holder)
        await _until(lambda n=served: len(order) == n)
        holder = "quiet-key" if order[-1] == "quiet" else "busy-key"
    await asyncio.gather(*tasks)
    assert order[0] == "private"
    # The quiet key does not wait behind all of the busy key's requests.
    assert order.index("quiet") <= 2


async def test_cancelled_waiter_is_forgotten() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("holder")
    task = asyncio.create_task(q.acquire("k", PRIORITY_SPILLABLE, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.waiting == 0


async def _until(done: Callable[[], bool]) -> None:
    """Let waiters run until `done` (a granted waiter takes a few loop turns to wake)."""
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("no waiter woke")


async def _served_in_order(
    q: AdmissionQueue, holder: str, waiters: list[tuple[str, str, int]]
) -> list[str]:
    """Queue `waiters` (name, key, priority) behind `holder`'s slot; each one served frees
    its slot in turn. Returns the names in the order they got a slot."""
    order: list[str] = []
    keys = {name: key for name, key, _ in waiters}

    async def wait(name: str, key: str, priority: int) -> None:
        await q.acquire(key, priority, 10)
        order.append(name)

    tasks = []
    for name, key, priority in waiters:
        tasks.append(asyncio.create_task(wait(name, key, priority)))
        await asyncio.sleep(0)
    for served in range(1, len(waiters) + 1):
        q.release(holder)
        await _until(lambda n=served: len(order) == n)
        holder = keys[order[-1]]
    await asyncio.gather(*tasks)
    q.release(holder)
    return order


async def test_one_keys_on_prem_marks_do_not_hold_others_back() -> None:
    """A key that marks everything on-prem goes first only up to its share of the slots;
    beyond it, other keys' spillable requests take their turn instead of spilling."""
    q = AdmissionQueue(capacity=1, max_waiting=100, private_share_per_key=0.25)
    assert q.try_acquire("marker")  # the marking key holds the engine's only slot
    waiters = [(f"private{i}", "marker", PRIORITY_LOCAL_ONLY) for i in range(3)]
    waiters.append(("other", "other-key", PRIORITY_SPILLABLE))
    order = await _served_in_order(q, "marker", waiters)
    assert order[0] == "other", order
    assert order[1:] == ["private0", "private1", "private2"]
    assert q.active == 0 and q.waiting == 0


async def test_on_prem_requests_still_go_first_within_the_keys_share() -> None:
    q = AdmissionQueue(capacity=4, max_waiting=100, private_share_per_key=0.5)
    for key in ("a", "a", "b", "c"):
        assert q.try_acquire(key)  # `marker` holds none of the four slots
    waiters = [("spillable", "d", PRIORITY_SPILLABLE)]
    waiters += [(f"private{i}", "marker", PRIORITY_LOCAL_ONLY) for i in range(3)]
    order: list[str] = []

    async def wait(name: str, key: str, priority: int) -> None:
        await q.acquire(key, priority, 10)
        order.append(name)

    tasks = [asyncio.create_task(wait(*w)) for w in waiters]
    await asyncio.sleep(0)
    for served, key in enumerate(("a", "a", "b", "c"), 1):  # the first four requests finish
        q.release(key)
        await _until(lambda n=served: len(order) == n)
    await asyncio.gather(*tasks)
    # Two slots (half of four) go to the marked requests first, then the spillable one.
    assert order == ["private0", "private1", "spillable", "private2"]
    assert q.private_slots_per_key == 2


def test_the_share_is_at_least_one_slot() -> None:
    assert AdmissionQueue(1, 10, private_share_per_key=0.25).private_slots_per_key == 1
    assert AdmissionQueue(256, 10, private_share_per_key=0.25).private_slots_per_key == 64


# The reserve for requests that may not spill, and the order of their lane (issue 16).


def test_the_reserve_keeps_the_last_slots_from_spillable_requests_only() -> None:
    q = AdmissionQueue(capacity=3, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("a", PRIORITY_SPILLABLE, 1) and q.try_acquire("a", PRIORITY_SPILLABLE, 1)
    assert not q.try_acquire("b", PRIORITY_SPILLABLE, 1)  # the last slot is reserved
    assert q.try_acquire("c", PRIORITY_LOCAL_ONLY)  # a private request takes it
    assert q.active == 3


async def test_a_freed_slot_goes_to_a_private_waiter_or_stays_free_under_the_reserve() -> None:
    q = AdmissionQueue(capacity=2, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("a", PRIORITY_SPILLABLE, 1) and q.try_acquire("p", PRIORITY_LOCAL_ONLY)
    plain = asyncio.create_task(q.acquire("b", PRIORITY_SPILLABLE, 10, reserve=1))
    await asyncio.sleep(0)
    q.release("a")  # one slot held by "p": a spillable waiter would take the reserved one
    await asyncio.sleep(0)
    assert not plain.done() and q.active == 1 and q.waiting == 1
    private = asyncio.create_task(q.acquire("q", PRIORITY_LOCAL_ONLY, 10))
    assert await private == 0.0  # straight into the free reserved slot
    q.release("p")  # "q" holds one of two slots: the spillable waiter still may not go
    await asyncio.sleep(0)
    assert not plain.done() and q.active == 1
    q.release("q")  # the engine is idle: a spillable waiter may take a slot outside its reserve
    assert await plain >= 0.0 and q.active == 1 and q.waiting == 0


async def test_private_waiters_that_can_make_their_deadline_go_shortest_first() -> None:
    q = AdmissionQueue(capacity=1, max_waiting=10, private_share_per_key=1.0)
    assert q.try_acquire("holder")
    now = time.monotonic()
    rate = 1000.0  # prompt tokens per second of prefill
    waiters = [
        ("late-long", 5000, now + 1.0),  # 5 s of prefill, 1 s left: cannot make it
        ("long", 3000, now + 60.0),
        ("late-short", 2000, now + 0.5),  # cannot make it either; queued after late-long
        ("short", 100, now + 60.0),
    ]
    order: list[str] = []

    async def wait(name: str, tokens: int, deadline: float) -> None:
        await q.acquire(
            name,
            PRIORITY_LOCAL_ONLY,
            10,
            prompt_tokens=tokens,
            deadline=deadline,
            prefill_tokens_per_s=rate,
        )
        order.append(name)

    tasks = []
    for waiter in waiters:
        tasks.append(asyncio.create_task(wait(*waiter)))
        await asyncio.sleep(0)
    holder = "holder"
    for served in range(1, len(waiters) + 1):
        q.release(holder)
        await _until(lambda n=served: len(order) == n)
        holder = order[-1]
    await asyncio.gather(*tasks)
    assert order == ["short", "long", "late-long", "late-short"]
