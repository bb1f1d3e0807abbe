"""The Azure LLM inference trace (conversation, 2023-11-16), as simulator requests.

Source: Azure Public Dataset, "Azure LLM inference trace 2023", CC-BY 4.0; Patel et al.,
"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024.
One row per request: arrival time, prompt tokens, generated tokens. We keep the arrival
pattern (its bursts) and stretch or squeeze time to reach a target request rate.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path

DEFAULT_TRACE = (
    Path(__file__).resolve().parents[3] / "shared" / "traces" / "azure_llm_2023_conv.csv"
)
COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


class RequestClass(StrEnum):
    """Who may serve a request: `marked` (marked on-prem) and `personal` (carries personal
    data; under keep-local it may not spill either) stay on the box; `plain` may spill."""

    MARKED = "marked"
    PERSONAL = "personal"
    PLAIN = "plain"


CLASSES = tuple(RequestClass)


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    klass: RequestClass = RequestClass.PLAIN

    @property
    def sensitive(self) -> bool:
        """May not leave the box (routed as `Privacy.LOCAL_ONLY`)."""
        return self.klass is not RequestClass.PLAIN


class TraceError(ValueError):
    pass


def _timestamp(text: str) -> datetime:
    # The trace writes seven fractional digits; datetime takes at most six.
    head, _, frac = text.strip().partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}" if frac else head)


def load_trace(path: Path = DEFAULT_TRACE, limit: int | None = None) -> list[Request]:
    """Requests in arrival order, times in seconds from the first arrival."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}; expected {COLUMNS}")
        rows: list[tuple[datetime, int, int]] = []
        for line, row in enumerate(reader, start=2):
            if limit is not None and len(rows) >= limit:
                break
            try:
                at = _timestamp(row["TIMESTAMP"])
                prompt, output = int(row["ContextTokens"]), int(row["GeneratedTokens"])
            except ValueError as exc:
                raise TraceError(f"{path}:{line}: {exc}") from None
            if prompt < 1 or output < 0:
                raise TraceError(f"{path}:{line}: token counts must be positive")
            rows.append((at, prompt, output))
    if not rows:
        raise TraceError(f"{path}: no requests")
    rows.sort(key=lambda r: r[0])
    start = rows[0][0]
    # A request that generated nothing still costs its prefill and one sampled token.
    return [
        Request(i, (at - start).total_seconds(), prompt, max(1, output))
        for i, (at, prompt, output) in enumerate(rows)
    ]


def mean_rate(requests: list[Request]) -> float:
    """Requests per second over the trace's span."""
    span = requests[-1].arrival_s - requests[0].arrival_s
    return (len(requests) - 1) / span if span > 0 else float("inf")


def scale_to_rate(requests: list[Request], rate: float) -> list[Request]:
    """The same requests and burst shape, with time scaled to `rate` requests per second."""
    factor = mean_rate(requests) / rate
    return [replace(r, arrival_s=r.arrival_s * factor) for r in requests]


def assign_classes(
    requests: list[Request], marked_share: float, personal_share: float, seed: int
) -> list[Request]:
    """Give `marked_share` of the requests the marked class and `personal_share` the
    personal one (the rest plain), the same requests for a given seed."""
    rng = random.Random(seed)
    n_marked = round(marked_share * len(requests))
    n_personal = round(personal_share * len(requests))
    chosen = rng.sample(range(len(requests)), n_marked + n_personal)
    klass = dict.fromkeys(chosen[:n_marked], RequestClass.MARKED)
    klass.update(dict.fromkeys(chosen[n_marked:], RequestClass.PERSONAL))
    return [replace(r, klass=klass.get(r.request_id, RequestClass.PLAIN)) for r in requests]
