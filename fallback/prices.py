"""What a cloud request cost: list prices (prices.json, overridable in config) times usage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from spillgate.protocol import Usage

# A dated snapshot is priced as its model: gpt-4o-2024-08-06, claude-sonnet-4-5-20250929.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. `cached_input` applies to prompt tokens the provider served from
    its cache; unset, they cost `input`."""

    input: float
    output: float
    cached_input: float | None = None


def cost_usd(price: Price, usage: Usage) -> float:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    micro = (
        (usage.prompt_tokens - cached) * price.input
        + cached * cached_rate
        + usage.completion_tokens * price.output
    )
    return micro / 1_000_000


class PriceBook:
    """The shipped list prices by provider family (`openai`, `anthropic`, `gemini`, `mistral`)."""

    def __init__(self, tables: dict[str, dict[str, Price]]) -> None:
        self._tables = tables

    @classmethod
    def shipped(cls) -> PriceBook:
        raw = orjson.loads(
            resources.files("spillgate.fallback").joinpath("prices.json").read_bytes()
        )
        tables = {
            family: {model: price_of(entry) for model, entry in models.items()}
            for family, models in raw.items()
            if not family.startswith("_") and isinstance(models, dict) and family != "sources"
        }
        return cls(tables)

    def lookup(self, family: str | None, model: str) -> Price | None:
        if family is None:
            return None
        table = self._tables.get(family, {})
        name = model.removeprefix("models/")
        return table.get(name) or table.get(_SNAPSHOT.sub("", name))


def price_of(entry: dict[str, Any]) -> Price:
    return Price(
        input=float(entry["input"]),
        output=float(entry["output"]),
        cached_input=None if entry.get("cached_input") is None else float(entry["cached_input"]),
    )
