"""One usage record: what a request asked for, where it ran, why, what it used and cost."""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
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
        """The values in COLUMNS order. Every field is a scalar, so a plain read will do:
        `dataclasses.astuple` deep-copies each value and cost ~5% of a streamed request's
        CPU in the ledger's writer thread."""
        values: tuple[Any, ...] = _ROW(self)
        return values


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
_ROW = operator.attrgetter(*COLUMNS)
