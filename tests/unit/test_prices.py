"""Prices: the shipped list, snapshot names, config overrides, and the cost of a usage."""

from __future__ import annotations

import pytest

from spillgate.fallback.prices import Price, PriceBook, cost_usd
from spillgate.protocol import Usage


def test_every_provider_family_has_prices() -> None:
    book = PriceBook.shipped()
    for family, model in [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash"),
        ("mistral", "mistral-small-latest"),
    ]:
        price = book.lookup(family, model)
        assert price is not None and price.input > 0 and price.output > 0, (family, model)


def test_a_dated_snapshot_is_priced_as_its_model() -> None:
    book = PriceBook.shipped()
    assert book.lookup("openai", "gpt-4o-mini-2024-07-18") == book.lookup("openai", "gpt-4o-mini")
    assert book.lookup("anthropic", "claude-sonnet-4-5-20250929") == book.lookup(
        "anthropic", "claude-sonnet-4-5"
    )
    assert book.lookup("openai", "gpt-4o-mini-tts") is None
    assert book.lookup(None, "gpt-4o") is None, "an openai-compatible provider has no list"


def test_cost_charges_cached_prompt_tokens_at_the_cached_rate() -> None:
    price = Price(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=400_000)
    assert cost_usd(price, usage) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)


def test_without_a_cached_rate_cached_tokens_cost_the_input_rate() -> None:
    usage = Usage(prompt_tokens=2000, completion_tokens=0, cached_tokens=1000)
    assert cost_usd(Price(input=1.0, output=1.0), usage) == pytest.approx(0.002)
