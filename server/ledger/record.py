"""One usage record: what a request asked for, where it ran, why, what it used and cost."""

from __future__ import annotations

import operator
from dataclasses import MISSING, dataclass, fields
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


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
_DEFAULTS = {f.name: f.default for f in fields(UsageRecord) if f.default is not MISSING}
_VALUES = operator.itemgetter(*COLUMNS)
#: Where a row holds the record's id and whether it is a stream's final record.
ID, COMPLETE = COLUMNS.index("record_id"), COLUMNS.index("complete")


def row_of(line: dict[str, Any]) -> tuple[Any, ...]:
    """A spool line's values in COLUMNS order, read straight from its parsed JSON: the
    database takes a row, so building a UsageRecord per line first would only cost the
    ledger's writer time. A line written before a field existed gets the field's default;
    one without a field that has none raises KeyError."""
    try:
        values: tuple[Any, ...] = _VALUES(line)
    except KeyError:
        values = _VALUES({**_DEFAULTS, **line})
    return values
