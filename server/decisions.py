"""The most recent routing decisions, in memory, for the operator console.

The request path appends one small record per finished request (`DecisionRing.add`): a
bounded deque append and a few integer bumps, no I/O, no lock, no text of the request.
Beside the deque, per-minute counters by (target kind, reason) cover the last 15 minutes
and per-second counters the last minute, so what the overview shows over those windows
does not depend on how many records the deque keeps.

Never a prompt or a completion: a record holds ids, names, numbers and the decision's
`explain` dict (numbers about the request, not its text).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Minutes of reason counts kept (the overview's window), one spare for the current one.
WINDOW_MIN = 15
_MINUTES = WINDOW_MIN + 1
_SECONDS = 60
#: What a request without a key is listed as, and filtered by.
ANONYMOUS = "anonymous"


@dataclass(slots=True)
class DecisionRecord:
    """One finished request as the console shows it."""

    ts: float  # epoch seconds when it arrived
    request_id: str
    key_id: str | None
    key_name: str | None
    endpoint: str
    model: str
    route: str  # the target that served it, or "none" (refused)
    kind: str  # "local", "cloud" or "none"
    reason: str  # the decision's reason, or the refusal's error code
    status: int
    ttft_ms: float | None
    cost_usd: float
    privacy: str  # the privacy verdict (may_spill, local_only, redact_to_spill) or ""
    explain: dict[str, Any] | None  # the scheduler's numbers behind the decision

    def to_json(self, with_explain: bool = False) -> dict[str, Any]:
        data = {
            "ts": self.ts,
            "request_id": self.request_id,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "endpoint": self.endpoint,
            "model": self.model,
            "route": self.route,
            "kind": self.kind,
            "reason": self.reason,
            "status": self.status,
            "ttft_ms": self.ttft_ms,
            "cost_usd": self.cost_usd,
            "privacy": self.privacy,
        }
        if with_explain:
            data["explain"] = _plain(self.explain or {})
        return data


def _plain(value: Any) -> Any:
    """`explain` as JSON can hold it (tuples become lists, enums their value)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class Filters:
    """What the decisions list is narrowed to; None matches anything."""

    route: str | None = None
    reason: str | None = None
    key: str | None = None  # a key id or name
    model: str | None = None

    def match(self, r: DecisionRecord) -> bool:
        return (
            (self.route is None or r.route == self.route)
            and (self.reason is None or r.reason == self.reason)
            and (
                self.key is None
                or self.key in (r.key_id, r.key_name)
                or (self.key == ANONYMOUS and r.key_id is None)
            )
            and (self.model is None or r.model == self.model)
        )


class DecisionRing:
    """The last `size` decisions, and counters over the last minute and 15 minutes."""

    def __init__(self, size: int = 2000) -> None:
        self.records: deque[DecisionRecord] = deque(maxlen=size)
        # Slot i holds the minute (or second) it counts; a stale slot is reset on reuse.
        self._minute = [-1] * _MINUTES
        self._by_reason: list[dict[tuple[str, str], int]] = [{} for _ in range(_MINUTES)]
        self._second = [-1] * _SECONDS
        self._per_second = [0] * _SECONDS

    def add(self, record: DecisionRecord) -> None:
        """O(1): one append, one dict bump, one counter bump."""
        self.records.append(record)
        ts = record.ts
        minute = int(ts // 60)
        i = minute % _MINUTES
        if self._minute[i] != minute:
            self._minute[i] = minute
            self._by_reason[i] = {}
        counts = self._by_reason[i]
        pair = (record.kind, record.reason)
        counts[pair] = counts.get(pair, 0) + 1
        second = int(ts)
        j = second % _SECONDS
        if self._second[j] != second:
            self._second[j] = second
            self._per_second[j] = 0
        self._per_second[j] += 1

    # -- reads, for the console (never on the request path) ----------------------------------

    def recent(self, filters: Filters | None = None, limit: int = 100) -> list[DecisionRecord]:
        """The newest matching decisions first, at most `limit`."""
        found: list[DecisionRecord] = []
        for record in reversed(self.records):
            if filters is None or filters.match(record):
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def find(self, request_id: str) -> DecisionRecord | None:
        return next((r for r in reversed(self.records) if r.request_id == request_id), None)

    def reason_counts(self, now: float, minutes: int = WINDOW_MIN) -> dict[tuple[str, str], int]:
        """(target kind, reason) -> requests over the last `minutes` (this one included)."""
        newest = int(now // 60)
        total: dict[tuple[str, str], int] = {}
        for i in range(_MINUTES):
            if newest - min(minutes, WINDOW_MIN) < self._minute[i] <= newest:
                for pair, n in self._by_reason[i].items():
                    total[pair] = total.get(pair, 0) + n
        return total

    def per_second(self, now: float, seconds: int = 10) -> float:
        """Requests per second over the last `seconds` whole seconds (at most 59)."""
        newest = int(now)
        seconds = max(1, min(seconds, _SECONDS - 1))
        n = sum(
            count
            for stamp, count in zip(self._second, self._per_second, strict=True)
            if newest - seconds <= stamp < newest
        )
        return n / seconds

    def ttft_by_route(self, records: Iterable[DecisionRecord] | None = None) -> dict[str, Any]:
        """TTFT p50/p99 (ms) per route over the records kept, served requests only."""
        samples: dict[str, list[float]] = {}
        for r in self.records if records is None else records:
            if r.ttft_ms is not None and r.kind != "none" and r.status < 400:
                samples.setdefault(r.route, []).append(r.ttft_ms)
        return {
            route: {
                "count": len(values),
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
            }
            for route, values in sorted(samples.items())
        }


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
