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
    """The shipped list prices by provider family (`openai`, `anthropic`, `gemini`, `mistral`),
    and each model's documented output limit where the table has one (`max_output`)."""

    def __init__(
        self,
        tables: dict[str, dict[str, Price]],
        output_limits: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self._tables = tables
        self._output_limits = output_limits or {}

    @classmethod
    def shipped(cls) -> PriceBook:
        raw = orjson.loads(
            resources.files("spillgate.fallback").joinpath("prices.json").read_bytes()
        )
        families = {
            family: models
            for family, models in raw.items()
            if not family.startswith("_") and isinstance(models, dict) and family != "sources"
        }
        tables = {
            family: {model: price_of(entry) for model, entry in models.items()}
            for family, models in families.items()
        }
        limits = {
            family: {m: int(e["max_output"]) for m, e in models.items() if "max_output" in e}
            for family, models in families.items()
        }
        return cls(tables, limits)

    def lookup(self, family: str | None, model: str) -> Price | None:
        return _find(self._tables, family, model)

    def max_output(self, family: str | None, model: str) -> int | None:
        """The most tokens one answer of `model` may have; None when not documented."""
        return _find(self._output_limits, family, model)


def _find(tables: dict[str, dict[str, Any]], family: str | None, model: str) -> Any:
    if family is None:
        return None
    table = tables.get(family, {})
    name = model.removeprefix("models/")
    return table.get(name) or table.get(_SNAPSHOT.sub("", name))


def price_of(entry: dict[str, Any]) -> Price:
    return Price(
        input=float(entry["input"]),
        output=float(entry["output"]),
        cached_input=None if entry.get("cached_input") is None else float(entry["cached_input"]),
    )
