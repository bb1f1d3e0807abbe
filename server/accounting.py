"""What happens at the end of every request: one ledger record, metrics, the access log
line, the key's budget and token counters, and the end of its trace span.

Nothing an upstream reports can make it fail: usage numbers that are not token counts, and
usage that never came (a stream cut before its usage chunk), are replaced by what the
answer carried (completion tokens counted from its text, the prompt as the decision
estimated it), logged without any text, and counted in `spillgate_usage_anomalies_total`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from spillgate.fallback.prices import Price, cost_usd
from spillgate.protocol import MAX_REPORTED_TOKENS, Endpoint, UpstreamReply, Usage
from spillgate.server.budgets import BudgetBook, CloudSpend
from spillgate.server.decisions import DecisionRecord, DecisionRing
from spillgate.server.keys import ApiKey
from spillgate.server.ledger.record import UsageRecord
from spillgate.server.ledger.writer import Ledger
from spillgate.server.limits import Limiter
from spillgate.server.observe import Metrics, write_access_line
from spillgate.server.tally import StreamTally, text_tokens
from spillgate.server.tracing import Tracing

log = logging.getLogger("spillgate.ledger")

_MODEL_CHARS = 256  # a record stays one small line whatever a client sends as `model`
_CAPTURE_BYTES = 64 * 1024
_PROMPT_FIELDS = ("messages", "prompt", "input")

# Seeded from os.urandom, here and again in a forked child; an instance of our own, so that
# nothing calling random.seed() can make ids repeat across restarts or replicas.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> str:
    """24 random hex characters (96 bits), unique across requests, restarts and replicas:
    the ledger upserts by a record's id. Without the getrandom(2) call of os.urandom per id."""
    return _ids.getrandbits(96).to_bytes(12, "big").hex()


@dataclass(slots=True)
class RequestState:
    """What accounting needs to know about one request, filled in as it goes."""

    request_id: str
    endpoint: Endpoint
    arrived: float  # epoch seconds, for the record
    started: float  # perf_counter, for durations
    record_id: str
    key: ApiKey | None = None
    model: str = ""
    reason: str = "none"
    payload: dict[str, Any] | None = None
    first_byte: float | None = None
    span: Any = None
    captured: bytearray | None = None
    #: The prompt's tokens as the decision estimated them (exact where the engine counted).
    prompt_tokens: int = 0
    #: The serving cloud target's price (None: a local engine, or an unpriced target).
    price: Price | None = None
    #: The completion tokens a stream relayed, for when its upstream does not say.
    tally: StreamTally | None = None
    #: The claim on the key's cloud budget (None where no budget applies).
    spend: CloudSpend | None = None
    #: The decision's numbers and the privacy verdict, for the console's decision ring.
    explain: dict[str, Any] | None = None
    privacy: str = ""

    def feed_captured(self, chunk: bytes) -> None:
        """A streamed chunk on its way to a client whose key logs prompts: its tokens
        counted and its text kept."""
        assert self.tally is not None and self.captured is not None
        self.tally.feed(chunk)
        if len(self.captured) < _CAPTURE_BYTES:
            self.captured += chunk


def _counts(usage: Usage) -> bool:
    """Whether `usage` holds token counts as `Usage.reported` leaves them, as every
    backend's parser does: then there is nothing to check again, at every request."""
    prompt, completion, cached = usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
    return (
        not usage.invalid
        and type(prompt) is int
        and type(completion) is int
        and type(cached) is int
        and 0 <= cached <= prompt <= MAX_REPORTED_TOKENS
        and 0 <= completion <= MAX_REPORTED_TOKENS
    )


def _cost_usd(reply: UpstreamReply) -> float:
    """The cloud cost of an answer, as its backend priced it (0 for local engines)."""
    cost = reply.cost_usd
    return cost if cost is not None and math.isfinite(cost) and cost > 0 else 0.0


class Accounting:
    def __init__(
        self,
        ledger: Ledger,
        budgets: BudgetBook,
        limiter: Limiter,
        metrics: Metrics,
        tracing: Tracing,
        access_log_enabled: bool,
        decisions: DecisionRing | None = None,
    ) -> None:
        self.ledger = ledger
        self.budgets = budgets
        self.limiter = limiter
        self.metrics = metrics
        self.tracing = tracing
        self.access_log_enabled = access_log_enabled
        #: The recent decisions the operator console reads (None: not kept).
        self.decisions = decisions

    def start(self, request_id: str, endpoint: Endpoint) -> RequestState:
        state = RequestState(request_id, endpoint, time.time(), time.perf_counter(), new_id())
        if self.tracing.enabled:
            state.span = self.tracing.request_span(
                f"POST /v1/{endpoint.value}", {"spillgate.request_id": request_id}
            )
        return state

    def stream_opened(
        self, st: RequestState, reply: UpstreamReply, route: str, kind: str
    ) -> Callable[[bytes], None]:
        """Write a stream's record before its first byte, so a crash mid-stream leaves it,
        and get ready to count what it carries: the first chunk's time is noted through the
        reply's first-chunk hook, and the callable returned sees every chunk. Each chunk
        goes straight to the counter, with no check that holds only for the first."""
        st.tally = StreamTally()
        prefilled = reply.on_first_chunk

        def first_chunk() -> None:
            st.first_byte = time.perf_counter()
            if prefilled is not None:
                prefilled()

        reply.on_first_chunk = first_chunk
        self._write(st, route, kind, 200, None, 0.0, answered=True, streamed=True, complete=False)
        if st.key is not None and st.key.log_prompts:  # the operator opted this key in
            st.captured = bytearray()
            return st.feed_captured
        return st.tally.feed

    def finish(
        self,
        st: RequestState,
        route: str,
        kind: str,
        status: int,
        reply: UpstreamReply | None,
        streamed: bool,
    ) -> None:
        elapsed = time.perf_counter() - st.started
        usage, cost = self._counted(st, route, status, reply)
        record = self._write(
            st, route, kind, status, usage, cost,
            answered=reply is not None, streamed=streamed, complete=True,
        )  # fmt: skip
        if st.spend is not None:
            st.spend.release()  # the record has charged what the request really cost
        if self.decisions is not None:
            key = st.key
            self.decisions.add(
                DecisionRecord(
                    st.arrived, st.request_id, key.id if key else None, key.name if key else None,
                    st.endpoint.value, record.model, route, kind, st.reason, status,
                    record.ttft_ms, record.cost_usd, st.privacy, st.explain,
                )
            )  # fmt: skip
        m = self.metrics
        child = m.child
        child(m.requests, st.endpoint, route, st.reason, status).inc()
        if reply is not None:
            child(m.served, kind).inc()
            child(m.duration, route).observe(elapsed)
            if record.ttft_ms is not None:
                child(m.ttft, route).observe(record.ttft_ms / 1000)
            child(m.tokens, route, "prompt").inc(record.prompt_tokens)
            child(m.tokens, route, "completion").inc(record.completion_tokens)
            if record.cost_usd:
                child(m.cost, route).inc(record.cost_usd)
        if st.key is not None:
            self.limiter.add_tokens(st.key, record.prompt_tokens + record.completion_tokens)
        if st.span is not None:  # tracing is on
            self.tracing.end(
                st.span,
                {
                    "spillgate.key_id": record.key_id,
                    "spillgate.model": record.model,
                    "spillgate.route": route,
                    "spillgate.reason": st.reason,
                    "http.response.status_code": status,
                    "spillgate.prompt_tokens": record.prompt_tokens,
                    "spillgate.completion_tokens": record.completion_tokens,
                },
                error=None if status < 500 else f"status {status}",
            )
        if self.access_log_enabled:
            self._log(st, record, reply)

    def _counted(
        self, st: RequestState, route: str, status: int, reply: UpstreamReply | None
    ) -> tuple[Usage | None, float]:
        """The usage and cost to count: the upstream's, where it reported token counts, else
        what the answer carried."""
        if reply is None:
            return None, 0.0
        reported = reply.usage
        if reported is None:
            if reply.status >= 400:
                return None, 0.0  # an error answer used nothing
            usage = self._relayed(st, reply)
            if status < 400:  # a client that left early is no upstream's fault
                self._anomaly(st, route, "missing", "upstream sent no usage")
            return usage, self._priced(st, usage)
        if _counts(reported):
            return reported, _cost_usd(reply)
        usage = Usage.reported(
            (reported.prompt_tokens,), (reported.completion_tokens,), (reported.cached_tokens,)
        )
        invalid = sorted({*reported.invalid, *usage.invalid})
        if not invalid:
            return usage, _cost_usd(reply)
        self._anomaly(
            st, route, "invalid", "upstream reported usage that is not a token count", invalid
        )
        relayed = self._relayed(st, reply)
        usage = Usage(
            *(
                getattr(relayed if name in invalid else usage, name)
                for name in ("prompt_tokens", "completion_tokens", "cached_tokens")
            )
        )
        return usage, self._priced(st, usage)

    def _relayed(self, st: RequestState, reply: UpstreamReply) -> Usage:
        completion = (
            st.tally.completion_tokens if st.tally is not None else text_tokens(reply.body or b"")
        )
        return Usage(st.prompt_tokens, completion)

    def _priced(self, st: RequestState, usage: Usage) -> float:
        return cost_usd(st.price, usage) if st.price is not None else 0.0

    def _anomaly(
        self, st: RequestState, route: str, problem: str, what: str, fields: list[str] | None = None
    ) -> None:
        self.metrics.child(self.metrics.usage_anomalies, route, problem).inc()
        log.warning(
            f"{what}; counted the tokens the answer carried instead",
            extra={"request_id": st.request_id, "route": route, "fields": fields},
        )

    def _write(
        self,
        st: RequestState,
        route: str,
        kind: str,
        status: int,
        usage: Usage | None,
        cost: float,
        *,
        answered: bool,
        streamed: bool,
        complete: bool,
    ) -> UsageRecord:
        now = time.perf_counter()
        first = st.first_byte if streamed else (now if answered else None)
        record = UsageRecord(
            record_id=st.record_id,
            request_id=st.request_id,
            ts=st.arrived,
            key_id=st.key.id if st.key is not None else None,
            endpoint=st.endpoint,  # a StrEnum: the string itself, without `.value`'s lookup
            model=st.model[:_MODEL_CHARS],
            target=route,
            target_kind=kind,
            reason=st.reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            cost_usd=cost,
            ttft_ms=None if first is None else round((first - st.started) * 1000, 3),
            total_ms=round((now - st.started) * 1000, 3) if complete else None,
            status=status,
            streamed=streamed,
            complete=complete,
        )
        try:
            seq = self.ledger.record(record)
        except OSError as err:
            self.metrics.ledger_spool_errors.inc()
            log.error(
                "cannot write the ledger spool; this record is lost",
                extra={"request_id": st.request_id, "error": str(err)},
            )
            return record
        if record.key_id is not None and complete:
            self.budgets.charge(seq, record.key_id, record.cost_usd, record.ts)
        return record

    def _log(self, st: RequestState, record: UsageRecord, reply: UpstreamReply | None) -> None:
        extra: dict[str, Any] = {
            "request_id": st.request_id,
            "key_id": record.key_id,
            "endpoint": record.endpoint,
            "model": record.model,
            "route": record.target,
            "reason": record.reason,
            "status": record.status,
            "streamed": record.streamed,
            "ttft_ms": record.ttft_ms,
            "duration_ms": record.total_ms,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "cost_usd": record.cost_usd,
        }
        if st.key is not None and st.key.log_prompts:  # the operator opted this key in
            extra["prompt"] = {
                f: st.payload[f] for f in _PROMPT_FIELDS if st.payload and f in st.payload
            }
            extra["completion"] = _completion_text(reply, st.captured)
        write_access_line(extra)


def _completion_text(reply: UpstreamReply | None, captured: bytearray | None) -> Any:
    if captured is not None:
        return bytes(captured[:_CAPTURE_BYTES]).decode("utf-8", "replace")
    if reply is None or reply.body is None:
        return None
    try:
        return orjson.loads(reply.body).get("choices")
    except (orjson.JSONDecodeError, AttributeError):
        return None
