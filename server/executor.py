"""Carry out a decision: try its targets in order until one starts answering.

A local target first takes a slot in the engine's gateway queue; a request that may still
spill waits there only as long as its latency budget allows, then moves on to the next
target. Nothing is retried once the first byte has reached the client: fail-over happens
only before a target has answered.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import orjson

from spillgate.errors import EgressRefused, GatewayError, UpstreamError
from spillgate.models.engine import LocalEngine
from spillgate.protocol import Backend, TargetKind, UpstreamReply, UpstreamRequest
from spillgate.server.admission import (
    PRIORITY_LOCAL_ONLY,
    PRIORITY_SPILLABLE,
    QueueFull,
    QueueTimeout,
)
from spillgate.server.budgets import CloudSpend
from spillgate.server.observe import Metrics
from spillgate.server.privacy import StreamRestorer, Vault
from spillgate.server.privacy.egress import without_stripped_fields
from spillgate.server.privacy.offload import ScanRunner
from spillgate.server.requests import within_output_limit
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import (
    DEFAULT_CLOUD_TTFT_S,
    Capabilities,
    Decision,
    Privacy,
    Reason,
    RequestFeatures,
)

log = logging.getLogger("spillgate.executor")


@dataclass(slots=True)
class Outcome:
    backend: Backend
    reply: UpstreamReply
    #: The decision's reason, or why the request moved on from the first target.
    reason: Reason


class Executor:
    """Tries a decision's targets in order (see the module's docstring)."""

    def __init__(
        self,
        *,
        targets_for: Callable[[str], list[Backend] | None],
        runtime: RuntimeStore,
        cloud_caps: dict[str, Capabilities],
        target_model: Callable[[str, Backend], str],
        max_queue_wait_s: float,
        metrics: Metrics,
        scans: ScanRunner | None,
    ) -> None:
        """`targets_for`: a model's route, live; `runtime`: the engines' queues and the
        measured latencies, which this updates; `cloud_caps`: each cloud target's limits
        (read live); `target_model`: the name a target knows a route's model by; `scans`:
        redaction for redact-then-spill."""
        self.targets_for = targets_for
        self.runtime = runtime
        self.cloud_caps = cloud_caps
        self.target_model = target_model
        self.max_queue_wait_s = max_queue_wait_s
        self.metrics = metrics
        self.scans = scans

    async def run(
        self,
        upstream: UpstreamRequest,
        decision: Decision,
        features: RequestFeatures,
        key: str,
        started: float,
        spend: CloudSpend | None = None,
    ) -> Outcome:
        """Serve `upstream` at the first of `decision.targets` that answers.

        A local queue that is full or waited out, or an upstream fault that may pass
        elsewhere, moves on to the next target; a client error (4xx) ends the try. A private
        request never reaches a cloud target. `EgressRefused` propagates: the caller decides
        again. With every target failed, the last one's error is raised.

        `spend`: the request's claim on its key's cloud budget (None: no budget applies);
        on success its hold at the serving cloud target stays until accounting settles it.
        """
        candidates = self.targets_for(upstream.model) or ()
        reason = decision.reason
        last: GatewayError | None = None
        outbound: _Outbound | None = None  # what cloud targets get, made at the first one
        over_budget = False  # a cloud target was passed over for the key's budget
        for position, name in enumerate(decision.targets):
            backend = _named(candidates, name)
            if backend is None:
                continue
            more_targets = position + 1 < len(decision.targets)
            next_target = decision.targets[position + 1] if more_targets else None
            upstream.target_model = self.target_model(upstream.model, backend)
            if backend.kind is TargetKind.LOCAL:
                try:
                    outcome = await self._run_local(
                        backend, upstream, features, key, started, next_target
                    )
                except QueueTimeout:
                    last = self._queue_error(features, "waited too long for local capacity")
                    reason = Reason.OVERLOAD
                    continue
                except QueueFull as full:
                    last = self._queue_error(
                        features, "the local queue is full", full.retry_after_s
                    )
                    reason = Reason.OVERLOAD
                    continue
                except UpstreamError as err:
                    last = err
                    self._note_failure(upstream, backend, err)
                    reason = Reason.LOCAL_DOWN
                    if not err.retryable:
                        break
                    continue
                outcome.reason = Reason.KEPT_LOCAL_BUDGET if over_budget else reason
                return outcome
            if features.privacy is Privacy.LOCAL_ONLY:
                continue  # never: the decision does not list one, and this holds the line
            caps = self.cloud_caps.get(backend.name)
            if spend is not None:
                price = getattr(backend, "price", None)  # a cloud target's, where known
                refused = spend.reserve(price, caps and caps.max_output, time.time())
                if refused is not None:  # its worst case would overrun the key's budget
                    last, over_budget = refused, True
                    continue
            if outbound is None:
                outbound = await self._outbound(upstream, decision.redact)
            outbound.request.target_model = upstream.target_model
            opened = time.perf_counter()
            try:
                try:
                    request = within_output_limit(outbound.request, caps and caps.max_output)
                    reply = await backend.open(request)
                except BaseException:
                    if spend is not None:
                        spend.release()
                    raise
                if outbound.vault is not None:
                    _restore(reply, outbound.vault)
                # A stream opens at its first event: the target's time to first token.
                self.runtime.cloud(backend.name).observe(time.perf_counter() - opened)
            except EgressRefused:
                raise  # not the target's fault: the server decides again, keeping it home
            except UpstreamError as err:
                last = err
                self._note_failure(upstream, backend, err)
                if not err.retryable:
                    break
                continue
            return Outcome(backend, reply, reason)
        raise last or GatewayError(
            503, "no target could serve the request", type="server_error", retry_after_s=5
        )

    async def _run_local(
        self,
        engine: Backend,
        upstream: UpstreamRequest,
        features: RequestFeatures,
        key: str,
        started: float,
        next_target: str | None,
    ) -> Outcome:
        """Open `engine` within a slot of its gateway queue. The slot is held until the
        answer has been read: for a stream, the reply's `close` gives it back."""
        # The store keys an engine's queue and rates by its name alone.
        runtime = self.runtime.engine(cast(LocalEngine, engine))
        queue = runtime.queue
        spillable = features.privacy is not Privacy.LOCAL_ONLY and features.cloud_budget_ok
        priority = PRIORITY_SPILLABLE if spillable else PRIORITY_LOCAL_ONLY
        reserve = self.runtime.reserve(cast(LocalEngine, engine), key) if spillable else 0
        if not queue.try_acquire(key, priority, reserve):
            if spillable and next_target is not None and reserve:
                # The private lane takes freed slots first while a reserve is kept: this
                # request's wait cannot be foreseen, and a late spill misses its budget.
                raise QueueTimeout
            elapsed_s = time.perf_counter() - started
            budget_s = features.latency_budget_ms / 1000.0
            if next_target is not None:
                # It may still spill: wait only as long as the next target can still answer
                # within the budget after we give up here.
                next_ttft_s = self.runtime.cloud(next_target).ttft_s or DEFAULT_CLOUD_TTFT_S
                timeout_s = max(0.0, budget_s - elapsed_s - next_ttft_s)
            else:
                timeout_s = self.max_queue_wait_s
            await queue.acquire(
                key,
                priority,
                timeout_s,
                prompt_tokens=features.prompt_tokens,
                deadline=time.monotonic() + budget_s - elapsed_s,
                prefill_tokens_per_s=runtime.prefill_tokens_per_s
                or runtime.settings.prefill_tokens_per_s,
                reserve=reserve,
            )
        prompt_tokens = features.prompt_tokens
        runtime.admitted(prompt_tokens)
        prefilling = True

        def prefilled() -> None:
            nonlocal prefilling
            if prefilling:
                prefilling = False
                runtime.first_token(prompt_tokens)

        opened = time.perf_counter()
        try:
            reply = await engine.open(upstream)
        except BaseException:
            prefilled()
            queue.release(key)
            raise
        close = reply.close

        async def release() -> None:
            prefilled()  # a stream that ends before its first chunk
            try:
                if close is not None:
                    await close()
            finally:
                queue.release(key)
                total_s = time.perf_counter() - opened
                if not spillable:
                    runtime.observe_private(total_s)
                usage = reply.usage
                if usage is not None:
                    runtime.observe(None, usage.prompt_tokens, usage.completion_tokens, total_s)

        if reply.chunks is None:
            await release()  # a whole answer: the engine has let its connection go
        else:
            reply.on_first_chunk = prefilled
            reply.close = release  # the slot goes back with the connection
        return Outcome(engine, reply, Reason.LOCAL)

    async def _outbound(self, upstream: UpstreamRequest, redact: bool) -> _Outbound:
        """The request as cloud targets see it: fields with no business leaving stripped,
        and under redact-then-spill, each finding replaced by a placeholder."""
        payload = without_stripped_fields(upstream.payload)
        if not redact:
            if payload is upstream.payload:
                return _Outbound(upstream, None)
            return _Outbound(dataclasses.replace(upstream, payload=payload), None)
        assert self.scans is not None
        redacted, vault = await self.scans.redact(payload, len(upstream.body), upstream.request_id)
        request = dataclasses.replace(
            upstream,
            payload=redacted,
            body=orjson.dumps(redacted),
            redacted=vault.findings.counts,
        )
        return _Outbound(request, vault)

    def _queue_error(
        self, features: RequestFeatures, why: str, retry_after_s: float | None = None
    ) -> GatewayError:
        wait_s = retry_after_s or self.max_queue_wait_s
        private = features.privacy is Privacy.LOCAL_ONLY
        message = (
            f"{why}; this request may not leave the box, so it was not sent to a cloud "
            "provider. Retry after the time in Retry-After."
            if private
            else f"{why}, and no cloud target could take it. Retry after the time in Retry-After."
        )
        return GatewayError(
            429, message, type="rate_limit_error", code="local_capacity", retry_after_s=wait_s
        )

    def _note_failure(self, upstream: UpstreamRequest, backend: Backend, err: UpstreamError):
        self.metrics.child(self.metrics.upstream_errors, backend.name, err.status).inc()
        log.warning(
            "target failed before answering",
            extra={
                "request_id": upstream.request_id,
                "route": backend.name,
                "status": err.status,
                "error": err.message,
            },
        )


@dataclass(slots=True)
class _Outbound:
    request: UpstreamRequest
    #: The placeholders' originals, to put back in the answer (redact-then-spill).
    vault: Vault | None


def _restore(reply: UpstreamReply, vault: Vault) -> None:
    """Originals back where the answer repeats their placeholders."""
    if reply.body is not None:
        reply.body = vault.restore_json(reply.body)
    if reply.chunks is not None:
        reply.chunks = _restored(reply.chunks, vault.stream_restorer())


async def _restored(chunks: AsyncIterator[bytes], restorer: StreamRestorer) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            out = restorer.feed(chunk)
            if out:
                yield out
        tail = restorer.finish()
        if tail:
            yield tail
    finally:  # closing this closes the backend's stream beneath, as the relay expects
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _named(candidates: Sequence[Backend], name: str) -> Backend | None:
    for backend in candidates:
        if backend.name == name:
            return backend
    return None
