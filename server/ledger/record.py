"""One usage record: what a request asked for, where it ran, why, what it used and cost."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any

import orjson


@dataclass(slots=True)
class UsageRecord:
    #: Unique per request and made by the gateway; the ledger's idempotency key.
    record_id: str
    #: The `x-request-id` answered to the client (may be the client's own).
    request_id: str
    #: Arrival time, seconds since the epoch (UTC).
    ts: float
    key_id: str | None
    endpoint: str
    #: The model the client asked for.
    model: str
    #: The target that served it (`none` when the gateway answered itself).
    target: str
    #: `local`, `cloud`, or `none`.
    target_kind: str
    reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    ttft_ms: float | None = None
    total_ms: float | None = None
    status: int = 0
    streamed: bool = False
    #: False for the record written when a stream starts; its final record replaces it.
    complete: bool = True

    def to_line(self) -> bytes:
        return orjson.dumps(self) + b"\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageRecord:
        return cls(**{name: data[name] for name in COLUMNS if name in data})

    def row(self) -> tuple[Any, ...]:
        return astuple(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
