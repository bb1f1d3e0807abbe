"""Fail-over in the executor, against fake backends (no HTTP): which target serves, why,
and which error a client gets when none does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spillgate.errors import EgressRefused, GatewayError, UpstreamError
from spillgate.fallback.prices import Price
from spillgate.protocol import (
    Backend,
    Endpoint,
    TargetKind,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)
from spillgate.server.admission import PRIORITY_LOCAL_ONLY
from spillgate.server.budgets import BudgetBook, OutputAsked
from spillgate.server.config import from_dict
from spillgate.server.executor import Executor
from spillgate.server.keys import ApiKey
from spillgate.server.observe import Metrics
from spillgate.server.relay import StreamRelay
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import Decision, Privacy, Reason, RequestFeatures

MODEL = "m"


class FakeBackend:
    """A Backend (core/protocol.py) that answers, or fails, as told, and notes its calls."""

    def __init__(
        self,
        name: str,
        kind: TargetKind,
        answer: UpstreamReply | BaseException | None = None,
        price: Price | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.answer = answer if answer is not None else UpstreamReply(200, body=b"{}")
        self.price = price
        self.opened: list[UpstreamRequest] = []

    @property
    def ready(self) -> bool:
        return True

    async def open(self, request: UpstreamRequest) -> UpstreamReply:
        self.opened.append(request)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def local(answer: UpstreamReply | BaseException | None = None) -> FakeBackend:
    return FakeBackend("local", TargetKind.LOCAL, answer)


def cloud(name: str = "oai/small", answer: Any = None, price: Price | None = None) -> FakeBackend:
    return FakeBackend(name, TargetKind.CLOUD, answer, price)


def down(status: int = 503) -> UpstreamError:
    return UpstreamError(status, f"upstream answered {status}", retryable=True)


class Rig:
    def __init__(self, backends: list[FakeBackend], **scheduler: Any) -> None:
        config = from_dict(
            {
                "engines": [
                    {
                        "name": "local",
                        "url": "http://127.0.0.1:9/v1",
                        "served_model_names": [MODEL],
                        "scheduling": {"max_concurrency": 1},
                    }
                ],
                "scheduler": scheduler,
            }
        )
        self.backends: list[Backend] = list(backends)
        self.runtime = RuntimeStore(config)
        self.metrics = Metrics()
        self.executor = Executor(
            targets_for=lambda model: self.backends if model == MODEL else None,
            runtime=self.runtime,
            cloud_caps={},
            target_model=lambda model, backend: model,
            max_queue_wait_s=config.scheduler.max_queue_wait_s,
            metrics=self.metrics,
            scans=None,
        )

    @property
    def queue(self) -> Any:
        return self.runtime.engine(self.backends[0])  # type: ignore[arg-type]

    def private_traffic(self) -> None:
        """Private requests arrived at the engine once a second for the last minute: its
        reserve is its only slot."""
        now = time.monotonic()
        for t in range(60):
            self.queue.note_private_arrival(now - 60 + t)

    async def run(
        self,
        targets: tuple[str, ...],
        reason: Reason = Reason.LOCAL,
        privacy: Privacy = Privacy.MAY_SPILL,
        latency_budget_ms: float = 60_000,
        spend: Any = None,
        stream: bool = False,
        prompt_tokens: int = 0,
    ) -> Any:
        upstream = UpstreamRequest(
            Endpoint.CHAT, MODEL, MODEL, b"{}", {}, stream, "req-1",
            private=privacy is Privacy.LOCAL_ONLY,
        )  # fmt: skip
        features = RequestFeatures(
            MODEL, privacy=privacy, latency_budget_ms=latency_budget_ms, prompt_tokens=prompt_tokens
        )
        return await self.executor.run(
            upstream, Decision(targets, reason), features, "key-1", time.perf_counter(), spend
        )

    def upstream_errors(self, target: str, status: int) -> float:
        value = self.metrics.registry.get_sample_value(
            "spillgate_upstream_errors_total", {"route": target, "status": str(status)}
        )
        return value or 0.0


async def test_the_first_target_answers_and_the_next_is_never_opened() -> None:
    engine, provider = local(), cloud()
    rig = Rig([engine, provider])
    outcome = await rig.run(("local", "oai/small"), Reason.LOCAL)
    assert outcome.backend is engine and outcome.reason is Reason.LOCAL
    assert outcome.reply.status == 200
    assert len(engine.opened) == 1 and provider.opened == []
    assert rig.queue.queue.active == 0, "a whole answer gives its queue slot back at once"


async def test_an_engine_that_is_down_fails_over_to_the_cloud_and_says_so() -> None:
    engine, provider = local(down(503)), cloud()
    rig = Rig([engine, provider])
    outcome = await rig.run(("local", "oai/small"), Reason.LOCAL)
    assert outcome.backend is provider
    assert outcome.reason is Reason.LOCAL_DOWN
    assert len(engine.opened) == 1 and len(provider.opened) == 1
    assert rig.upstream_errors("local", 503) == 1
    assert rig.queue.queue.active == 0, "the failed engine's slot is given back"


async def test_a_failing_cloud_target_moves_on_to_the_next_one() -> None:
    first, second = cloud("a/x", down(502)), cloud("b/y")
    rig = Rig([local(), first, second])
    outcome = await rig.run(("a/x", "b/y"), Reason.OVERLOAD)
    assert outcome.backend is second and outcome.reason is Reason.OVERLOAD
    assert rig.upstream_errors("a/x", 502) == 1


async def test_a_client_error_is_not_failed_over() -> None:
    refused = UpstreamError(400, "bad parameter", retryable=False)
    engine, provider = local(refused), cloud()
    rig = Rig([engine, provider])
    with pytest.raises(UpstreamError) as caught:
        await rig.run(("local", "oai/small"))
    assert caught.value.status == 400
    assert provider.opened == [], "the same request would be as wrong at the next target"

    first, second = cloud("a/x", UpstreamError(400, "bad", retryable=False)), cloud("b/y")
    rig = Rig([local(), first, second])
    with pytest.raises(UpstreamError) as caught:
        await rig.run(("a/x", "b/y"), Reason.OVERLOAD)
    assert caught.value.status == 400 and second.opened == []


async def test_a_private_request_never_reaches_a_cloud_target() -> None:
    engine, provider = local(down(503)), cloud()
    rig = Rig([engine, provider])
    with pytest.raises(UpstreamError) as caught:
        await rig.run(("local", "oai/small"), privacy=Privacy.LOCAL_ONLY)
    assert caught.value.status == 503, "the engine's own error, not a cloud answer"
    assert provider.opened == []

    # Even a decision that (wrongly) lists only a cloud target sends nothing there.
    with pytest.raises(GatewayError) as caught:
        await rig.run(("oai/small",), Reason.OVERLOAD, privacy=Privacy.LOCAL_ONLY)
    assert caught.value.status == 503
    assert provider.opened == []


async def test_an_egress_refusal_propagates_and_no_other_cloud_target_is_tried() -> None:
    first, second = cloud("a/x", EgressRefused(("email",))), cloud("b/y")
    rig = Rig([local(), first, second])
    with pytest.raises(EgressRefused) as caught:
        await rig.run(("a/x", "b/y"), Reason.OVERLOAD)
    assert caught.value.kinds == ("email",)
    assert second.opened == [], "the server decides again, keeping the request home"
    assert rig.upstream_errors("a/x", 403) == 0, "a refusal is not the target's failure"


async def test_every_target_failing_raises_the_last_error() -> None:
    rig = Rig([local(down(503)), cloud("a/x", down(502)), cloud("b/y", down(504))])
    with pytest.raises(UpstreamError) as caught:
        await rig.run(("local", "a/x", "b/y"))
    assert caught.value.status == 504


async def test_no_target_left_on_the_route_is_a_503_with_retry_after() -> None:
    rig = Rig([local()])
    with pytest.raises(GatewayError) as caught:
        await rig.run(("gone/model",), Reason.OVERLOAD)
    assert caught.value.status == 503
    assert caught.value.headers()["retry-after"]


async def test_a_full_local_queue_spills_to_the_next_target_as_overload() -> None:
    engine, provider = local(), cloud()
    rig = Rig([engine, provider], max_queue_len=0)
    assert rig.queue.queue.try_acquire("someone-else")  # the engine's one slot is taken
    outcome = await rig.run(("local", "oai/small"), Reason.LOCAL)
    assert outcome.backend is provider and outcome.reason is Reason.OVERLOAD
    assert engine.opened == []


async def test_a_full_local_queue_with_nowhere_to_go_is_a_429() -> None:
    engine = local()
    rig = Rig([engine, cloud()], max_queue_len=0)
    assert rig.queue.queue.try_acquire("someone-else")
    with pytest.raises(GatewayError) as caught:
        await rig.run(("local",), Reason.KEPT_LOCAL_PRIVATE, privacy=Privacy.LOCAL_ONLY)
    err = caught.value
    assert err.status == 429 and err.code == "local_capacity"
    assert "may not leave the box" in err.message
    assert float(err.headers()["retry-after"]) >= 1
    assert engine.opened == []


async def test_waiting_past_max_queue_wait_is_a_429() -> None:
    engine = local()
    rig = Rig([engine], max_queue_wait_s=0.2)
    assert rig.queue.queue.try_acquire("someone-else")
    started = time.perf_counter()
    with pytest.raises(GatewayError) as caught:
        await rig.run(("local",), Reason.LOCAL)
    assert 0.15 < time.perf_counter() - started < 5
    assert caught.value.status == 429 and "waited too long" in caught.value.message
    assert engine.opened == []
    assert rig.queue.queue.waiting == 0, "the waiter leaves the queue"


async def test_a_spillable_request_waits_only_as_long_as_its_budget_allows() -> None:
    engine, provider = local(), cloud()
    rig = Rig([engine, provider], max_queue_wait_s=30)
    assert rig.queue.queue.try_acquire("someone-else")
    started = time.perf_counter()
    outcome = await rig.run(("local", "oai/small"), Reason.LOCAL, latency_budget_ms=300)
    assert time.perf_counter() - started < 5, "not max_queue_wait_s"
    assert outcome.backend is provider and outcome.reason is Reason.OVERLOAD


async def test_a_queued_request_gets_the_slot_when_it_frees() -> None:
    engine = local()
    rig = Rig([engine], max_queue_wait_s=5)
    queue = rig.queue.queue
    assert queue.try_acquire("someone-else")
    asyncio.get_running_loop().call_later(0.05, queue.release, "someone-else")
    outcome = await rig.run(("local",), Reason.LOCAL)
    assert outcome.backend is engine and len(engine.opened) == 1


async def test_a_stream_holds_its_queue_slot_until_the_reply_is_closed() -> None:
    closed: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"

    async def close() -> None:
        closed.append("engine")

    reply = UpstreamReply(200, content_type="text/event-stream", chunks=chunks(), close=close)
    reply.usage = Usage(5, 7)
    rig = Rig([local(reply)])
    outcome = await rig.run(("local",), stream=True)
    queue = rig.queue.queue
    assert queue.active == 1, "the slot stays taken while the stream runs"
    await outcome.reply.aclose()
    await outcome.reply.aclose()  # idempotent: the relay may close a closed reply
    assert closed == ["engine"] and queue.active == 0
    assert rig.queue.mean_output_tokens == 7, "the engine's rates learn from the answer"


async def test_a_cloud_target_over_the_keys_budget_is_passed_over_for_local() -> None:
    key = ApiKey("k1", "k", "sk-", budget_day_usd=0.000001)
    spend = BudgetBook(Metrics()).claim(key, 1000, OutputAsked(1, 1000), 256)
    assert spend is not None
    engine, provider = local(), cloud(price=Price(10.0, 30.0))
    rig = Rig([engine, provider])
    outcome = await rig.run(("oai/small", "local"), Reason.OVERLOAD, spend=spend)
    assert outcome.backend is engine and outcome.reason is Reason.KEPT_LOCAL_BUDGET
    assert provider.opened == []

    rig = Rig([local(), provider])
    with pytest.raises(GatewayError) as caught:
        await rig.run(("oai/small",), Reason.OVERLOAD, spend=spend)
    assert caught.value.status == 429 and caught.value.code == "cloud_budget_exhausted"


async def test_a_streams_prompt_is_prefill_backlog_until_its_first_chunk() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    reply = UpstreamReply(200, content_type="text/event-stream", chunks=chunks())
    rig = Rig([local(reply)])
    outcome = await rig.run(("local",), stream=True, prompt_tokens=300)
    runtime = rig.queue
    assert runtime.prefill_backlog_tokens == 300, "handed to the engine, no token yet"
    backlog_at_send: list[tuple[bytes, int]] = []

    async def send(message: dict[str, Any]) -> None:
        if message.get("body"):
            backlog_at_send.append((message["body"], runtime.prefill_backlog_tokens))

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        return {}

    relay = StreamRelay(outcome.reply, [], lambda chunk: None, lambda completed: None)
    await relay({"type": "http"}, receive, send)
    assert backlog_at_send == [(b"data: 1\n\n", 0), (b"data: 2\n\n", 0)]
    assert runtime.prefill_backlog_tokens == 0, "counted down once, not again at close"
    assert runtime.queue.active == 0, "the relay gave the slot back"
    assert runtime.private_request_s is None, "a spillable request is not the reserve's"


async def test_a_stream_closed_before_its_first_chunk_leaves_no_backlog() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: never read\n\n"

    reply = UpstreamReply(200, content_type="text/event-stream", chunks=chunks())
    rig = Rig([local(reply)])
    outcome = await rig.run(("local",), Reason.KEPT_LOCAL_PRIVATE, Privacy.LOCAL_ONLY,
                            stream=True, prompt_tokens=300)  # fmt: skip
    await outcome.reply.aclose()
    runtime = rig.queue
    assert runtime.prefill_backlog_tokens == 0 and runtime.queue.active == 0
    assert runtime.private_request_s is not None, "a private request's hold is measured"


async def test_a_whole_answer_or_a_failure_leaves_no_backlog() -> None:
    rig = Rig([local(), cloud()])
    await rig.run(("local",), prompt_tokens=300)
    assert rig.queue.prefill_backlog_tokens == 0
    rig = Rig([local(down()), cloud()])
    outcome = await rig.run(("local", "oai/small"), prompt_tokens=300)
    assert outcome.backend.name == "oai/small"
    assert rig.queue.prefill_backlog_tokens == 0 and rig.queue.queue.active == 0


async def test_the_reserve_moves_a_spillable_request_on_but_not_a_private_one() -> None:
    engine, provider = local(), cloud()
    rig = Rig([engine, provider], max_queue_wait_s=0.1)
    rig.private_traffic()  # the engine's one slot is kept for private requests
    spilled = await rig.run(("local", "oai/small"), latency_budget_ms=300)
    assert spilled.backend is provider and spilled.reason is Reason.OVERLOAD
    kept = await rig.run(("local",), Reason.KEPT_LOCAL_PRIVATE, Privacy.LOCAL_ONLY)
    assert kept.backend is engine


async def test_under_a_reserve_a_spillable_request_does_not_wait_for_a_slot() -> None:
    """Private requests take freed slots first while a reserve is kept: a spillable one
    that finds no open slot moves on at once, not at the end of its budget."""
    engine, provider = local(), cloud()
    rig = Rig([engine, provider], max_queue_wait_s=30)
    assert rig.queue.queue.try_acquire("someone-else", PRIORITY_LOCAL_ONLY)
    rig.private_traffic()
    started = time.perf_counter()
    outcome = await rig.run(("local", "oai/small"), Reason.LOCAL, latency_budget_ms=10_000)
    assert time.perf_counter() - started < 1, "not its 10 s budget"
    assert outcome.backend is provider and outcome.reason is Reason.OVERLOAD
    assert rig.queue.queue.waiting == 0
