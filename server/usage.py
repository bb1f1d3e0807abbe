"""The usage report: sums per group, the share served locally, and what that share saved.

The local share counts requests a target served (local or cloud), not those the gateway
refused itself (401, 429, ...).

"Saved" is what the locally served tokens would have cost at the cloud route's prices for
the same model. Those prices come from `price_per_token`, the seam the cloud pricing data
fills; a model with no cloud price has nothing to compare with, and its saving is unknown
(None), never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spillgate.server.ledger.store import UsageRow


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per token at a cloud route, for prompt and completion tokens."""

    prompt_usd: float
    completion_usd: float


PriceLookup = Callable[[str], TokenPrices | None]


def no_cloud_prices(model: str) -> TokenPrices | None:
    """No cloud route prices any model (no cloud routes configured)."""
    return None


def saved_usd(row: UsageRow, price_per_token: PriceLookup) -> float | None:
    """What `row`'s locally served tokens would have cost in the cloud; None if unpriced."""
    if row.target_kind != "local":
        return 0.0
    prices = price_per_token(row.model)
    if prices is None:
        return None
    return row.prompt_tokens * prices.prompt_usd + row.completion_tokens * prices.completion_usd


def summarize(
    rows: list[UsageRow], price_per_token: PriceLookup, key_names: dict[str, str]
) -> list[dict[str, Any]]:
    """One summary per group, in the order the rows came."""
    groups: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        g = groups.setdefault(
            row.group,
            {
                "group": row.group,
                "name": key_names.get(row.group or ""),
                "requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cached_tokens": 0,
                "cost_usd": 0.0,
                "local_requests": 0,
                "served_requests": 0,
                "saved_usd": 0.0,
                "unpriced_local_tokens": 0,
            },
        )
        g["requests"] += row.requests
        g["prompt_tokens"] += row.prompt_tokens
        g["completion_tokens"] += row.completion_tokens
        g["cached_tokens"] += row.cached_tokens
        g["cost_usd"] += row.cost_usd
        if row.target_kind != "none":  # answered by a target, not refused by the gateway
            g["served_requests"] += row.requests
        if row.target_kind == "local":
            g["local_requests"] += row.requests
            saved = saved_usd(row, price_per_token)
            if saved is None:
                g["unpriced_local_tokens"] += row.prompt_tokens + row.completion_tokens
            else:
                g["saved_usd"] += saved
    for g in groups.values():
        served = g.pop("served_requests")
        g["local_share"] = g["local_requests"] / served if served else None
        if g["unpriced_local_tokens"] and not g["saved_usd"]:
            g["saved_usd"] = None  # nothing served locally had a cloud price to compare
        g["cost_usd"] = round(g["cost_usd"], 6)
    return list(groups.values())
