"""The per-class report and issue 16's target check, on hand-made outcomes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench.sim.cloud import default_providers
from bench.sim.policies import LOCAL
from bench.sim.report import PRIVATE, Row, check_target, summarise, yardstick_usd
from bench.sim.runner import FAILED, Outcome
from bench.sim.trace import Request, RequestClass
from tests.sim.test_sim_runner import ONE_SLOT

M, P, PL = RequestClass.MARKED, RequestClass.PERSONAL, RequestClass.PLAIN
BUDGET_S = 2.0


def outcome(i: int, klass: RequestClass, target: str, ttft_s: float | None) -> Outcome:
    # 500-token prompts: every request is answerable on the one-slot engine (0.51 s idle).
    return Outcome(Request(i, float(i), 500, 10, klass), target, "test", ttft_s, 0.0)


def trace() -> list[Outcome]:
    return [
        outcome(0, M, LOCAL, 0.5),
        outcome(1, M, LOCAL, 3.0),
        outcome(2, M, "gemini", 0.4),  # a marked request at a cloud: a hard miss
        outcome(3, P, LOCAL, 1.0),
        outcome(4, PL, "gemini", 0.45),
        outcome(5, PL, FAILED, None),
    ]


def row(outcomes: list[Outcome], policy: str) -> Row:
    yardstick = yardstick_usd([o.request for o in outcomes], default_providers())
    return summarise(outcomes, ONE_SLOT, 1.0, 1.0, policy, BUDGET_S, yardstick)


def test_each_class_is_reported_on_its_own_and_the_private_classes_together() -> None:
    r = row(trace(), "spillgate")
    marked, personal, plain = (r.classes[k.value] for k in (M, P, PL))
    assert (marked.count, personal.count, plain.count) == (3, 1, 2)
    assert marked.in_budget == pytest.approx(2 / 3)
    assert (marked.p50_s, marked.p99_s) == (0.5, 3.0)
    assert personal.in_budget == 1.0
    assert plain.in_budget == 0.5 and math.isinf(plain.p90_s)  # a failure never answers
    assert r.classes[PRIVATE].count == 4
    assert r.classes[PRIVATE].in_budget == pytest.approx(3 / 4)
    assert r.marked_at_cloud == 1 and r.sensitive_spilled == 1
    assert r.local_share == pytest.approx(3 / 6)


def test_cloud_cost_is_a_multiple_of_every_plain_request_at_the_cheapest_provider() -> None:
    cheapest = min(default_providers(), key=lambda p: 3 * p.price.input + p.price.output)
    one_plain = cheapest.cost_usd(500, 10)
    outcomes = [replace(o, cost_usd=one_plain if o.target == "gemini" else 0.0) for o in trace()]
    # Two plain requests make the yardstick; two cloud answers cost as much.
    assert row(outcomes, "spillgate").cost_multiple == pytest.approx(1.0)


def test_the_target_holds_against_the_split_of_the_same_run() -> None:
    split = [
        outcome(0, M, LOCAL, 0.50),
        outcome(1, P, LOCAL, 1.00),
        *[outcome(i, PL, "gemini", 0.4) for i in range(2, 102)],
    ]
    ours = [
        outcome(0, M, LOCAL, 0.52),  # within 5% of the split's TTFT
        outcome(1, P, LOCAL, 1.02),
        *[outcome(i, PL, LOCAL, 0.3) for i in range(2, 102)],
    ]
    [verdict] = check_target([row(split, "split"), row(ours, "spillgate")])
    assert verdict.passed, verdict.misses
    assert "0 marked at a cloud" in verdict.summary


def test_the_target_names_every_part_it_misses_and_by_how_much() -> None:
    split = [outcome(0, M, LOCAL, 0.5), outcome(1, PL, "gemini", 0.4)]
    ours = [outcome(0, M, "gemini", 0.4), outcome(1, PL, LOCAL, 2.5)]
    [verdict] = check_target([row(split, "split"), row(ours, "spillgate")])
    assert not verdict.passed
    text = "; ".join(verdict.misses)
    assert "plain 0.0% in budget" in text
    assert "1 marked requests at a cloud" in text
