"""The benchmark's target check: what passes, what fails, and what has nothing to compare."""

from __future__ import annotations

from bench.sim.report import Row, check_target


def row(policy: str, in_budget: float, cost: float, sensitive_spilled: float = 0.0) -> Row:
    return Row("gpu", 2.0, 10.0, policy, in_budget, 0.1, 1.0, cost, 0.2, sensitive_spilled, 0.0,
               None, None)  # fmt: skip


def test_spillgate_passes_in_budget_within_a_tenth_over_the_cheapest() -> None:
    [verdict] = check_target([row("queue", 0.995, 10.0), row("spillgate", 0.99, 10.9)])
    assert verdict.passed is True


def test_spillgate_fails_when_it_costs_more_than_a_tenth_over() -> None:
    [verdict] = check_target([row("queue", 0.995, 10.0), row("spillgate", 0.999, 11.5)])
    assert verdict.passed is False
    assert "limit $11.00" in verdict.why


def test_spillgate_fails_when_another_policy_reaches_the_share_and_it_does_not() -> None:
    [verdict] = check_target([row("reactive", 0.991, 3.0), row("spillgate", 0.97, 1.0)])
    assert verdict.passed is False
    assert "reactive reach 99%" in verdict.why


def test_a_sensitive_spill_fails_whatever_else_holds() -> None:
    [verdict] = check_target([row("spillgate", 1.0, 0.0, sensitive_spilled=0.01)])
    assert verdict.passed is False
    assert "sensitive" in verdict.why


def test_nothing_to_compare_when_no_policy_reaches_the_share() -> None:
    [verdict] = check_target([row("local-only", 0.5, 0.0), row("spillgate", 0.9, 1.0)])
    assert verdict.passed is None
    assert "best: spillgate 90.0%" in verdict.why
