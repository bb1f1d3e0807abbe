"""Budgets: the pure check the scheduler calls, the spend book behind it, and "saved"."""

from __future__ import annotations

import calendar

import pytest

from spillgate.server.budgets import BudgetBook, Spend, may_spend, period_starts
from spillgate.server.keys import ApiKey
from spillgate.server.ledger.store import UsageRow
from spillgate.server.observe import Metrics
from spillgate.server.usage import TokenPrices, no_cloud_prices, summarize

JAN_31_NOON = calendar.timegm((2025, 1, 31, 12, 0, 0))


def key(**rules: object) -> ApiKey:
    return ApiKey(id="key_1", name="team", prefix="sk-sg-abcd", **rules)  # type: ignore[arg-type]


def test_no_budget_or_no_key_may_always_spend() -> None:
    assert may_spend(None, Spend(1e9, 1e9), 5.0).allowed
    assert may_spend(key(), Spend(1e9, 1e9), 5.0).allowed


def test_on_prem_only_never_spends() -> None:
    verdict = may_spend(key(onprem_only=True), Spend(), 0.0)
    assert not verdict.allowed and verdict.code == "onprem_only"


@pytest.mark.parametrize(
    ("spent", "estimate", "allowed", "code"),
    [
        (Spend(0.50, 0.50), 0.10, True, None),
        (Spend(0.95, 0.95), 0.10, False, "daily_budget_exceeded"),
        (Spend(1.00, 1.00), 0.0, False, "daily_budget_exceeded"),
        (Spend(0.10, 9.95), 0.10, False, "monthly_budget_exceeded"),
    ],
)
def test_daily_and_monthly_budgets(
    spent: Spend, estimate: float, allowed: bool, code: str | None
) -> None:
    verdict = may_spend(key(budget_day_usd=1.0, budget_month_usd=10.0), spent, estimate)
    assert verdict.allowed is allowed and verdict.code == code
    if not allowed:
        assert "budget" in (verdict.message or "") and "raise it" in (verdict.message or "")


def test_a_zero_budget_allows_no_cloud_spend() -> None:
    assert not may_spend(key(budget_day_usd=0.0), Spend(), 0.0).allowed


def test_period_starts_are_utc_day_and_month() -> None:
    day, month = period_starts(JAN_31_NOON)
    assert day == calendar.timegm((2025, 1, 31, 0, 0, 0))
    assert month == calendar.timegm((2025, 1, 1, 0, 0, 0))


def test_the_book_adds_records_the_database_has_not_seen() -> None:
    book = BudgetBook(Metrics())
    periods = period_starts(JAN_31_NOON)
    book.refreshed({"key_1": (0.40, 2.00)}, periods, seen_seq=0)
    book.charge(1, "key_1", 0.10, JAN_31_NOON)
    book.charge(2, "key_1", 0.05, JAN_31_NOON)
    book.charge(3, "key_2", 9.00, JAN_31_NOON)
    assert book.spent("key_1", JAN_31_NOON) == pytest.approx(Spend(0.55, 2.15))
    # The database now holds record 1: it is counted there, not twice.
    book.refreshed({"key_1": (0.50, 2.10)}, periods, seen_seq=1)
    assert book.spent("key_1", JAN_31_NOON) == pytest.approx(Spend(0.55, 2.15))
    # The next UTC day starts from zero; the month goes on.
    next_day = JAN_31_NOON + 86_400
    assert book.spent("key_1", next_day).day_usd == 0.0


def test_budget_remaining_is_exported_per_key_and_period() -> None:
    metrics = Metrics()
    book = BudgetBook(metrics)
    book.charge(1, "key_1", 0.25, JAN_31_NOON)
    book.export([key(budget_day_usd=1.0)], JAN_31_NOON)
    sample = metrics.registry.get_sample_value(
        "spillgate_key_budget_remaining_usd", {"key_id": "key_1", "period": "day"}
    )
    assert sample == pytest.approx(0.75)


def test_saved_is_the_local_share_at_the_cloud_route_s_prices() -> None:
    rows = [
        UsageRow("key_1", "gpt-4o-mini", "local", 3, 1000, 500, 0, 0.0),
        UsageRow("key_1", "gpt-4o-mini", "cloud", 1, 100, 50, 0, 0.002),
        UsageRow("key_1", "gpt-4o-mini", "none", 2, 0, 0, 0, 0.0),
    ]

    def prices(model: str) -> TokenPrices | None:
        return TokenPrices(prompt_usd=1e-6, completion_usd=4e-6) if model == "gpt-4o-mini" else None

    (summary,) = summarize(rows, prices, {"key_1": "team"})
    assert summary["name"] == "team" and summary["requests"] == 6
    assert summary["saved_usd"] == pytest.approx(1000 * 1e-6 + 500 * 4e-6)
    assert summary["cost_usd"] == pytest.approx(0.002)
    assert summary["local_share"] == pytest.approx(0.75)  # refusals are not "served"
    (unpriced,) = summarize(rows, no_cloud_prices, {})
    assert unpriced["saved_usd"] is None
