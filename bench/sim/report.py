"""Turn outcomes into the table, the target check and the plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.sim.engine import EngineProfile
from bench.sim.policies import LOCAL
from bench.sim.runner import FAILED, Outcome

TARGET_SHARE = 0.99
COST_SLACK = 1.1
# Below a cent the comparison is noise (one capability-gap spill costs ~$0.0005).
COST_FLOOR_USD = 0.01
SPILLGATE = "spillgate"


@dataclass(frozen=True, slots=True)
class Row:
    profile: str
    load: float  # multiple of the local capacity
    rate: float  # requests per second
    policy: str
    in_budget: float  # share of the answerable requests whose first token came in budget
    p50_s: float  # failed requests count as never answering (infinite)
    p99_s: float
    cost_usd: float
    spilled: float  # share of all requests answered by a cloud provider
    sensitive_spilled: float  # share of sensitive requests sent to a cloud provider
    failed: float
    prediction_error_p50_s: float | None
    prediction_error_p90_s: float | None


def answerable(outcome: Outcome, profile: EngineProfile, budget_s: float) -> bool:
    """Could any policy answer this in budget? Not a sensitive request the engine cannot take,
    or cannot prefill in time even when idle: it may go nowhere else."""
    r = outcome.request
    if not r.sensitive:
        return True
    return profile.fits(r.prompt_tokens, r.output_tokens) and (
        profile.solo_ttft_s(r.prompt_tokens) <= budget_s
    )


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summarise(
    outcomes: Sequence[Outcome],
    profile: EngineProfile,
    load: float,
    rate: float,
    policy: str,
    budget_s: float,
) -> Row:
    fair = [o for o in outcomes if answerable(o, profile, budget_s)]
    in_budget = sum(1 for o in fair if o.ttft_s is not None and o.ttft_s <= budget_s)
    ttfts = [o.ttft_s if o.ttft_s is not None else math.inf for o in outcomes]
    cloud = [o for o in outcomes if o.target not in (LOCAL, FAILED)]
    sensitive = [o for o in outcomes if o.request.sensitive]
    errors = [
        abs(o.predicted_local_ttft_s - o.ttft_s)
        for o in outcomes
        if o.target == LOCAL and o.predicted_local_ttft_s is not None and o.ttft_s is not None
    ]
    return Row(
        profile=profile.name,
        load=load,
        rate=rate,
        policy=policy,
        in_budget=in_budget / len(fair),
        p50_s=_quantile(ttfts, 0.50),
        p99_s=_quantile(ttfts, 0.99),
        cost_usd=sum(o.cost_usd for o in outcomes),
        spilled=len(cloud) / len(outcomes),
        sensitive_spilled=(
            sum(1 for o in sensitive if o.target not in (LOCAL, FAILED)) / len(sensitive)
            if sensitive
            else 0.0
        ),
        failed=sum(1 for o in outcomes if o.target == FAILED) / len(outcomes),
        prediction_error_p50_s=_quantile(errors, 0.5) if errors else None,
        prediction_error_p90_s=_quantile(errors, 0.9) if errors else None,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    profile: str
    load: float
    passed: bool | None  # None: no policy reaches the target share, nothing to compare
    why: str


def check_target(rows: Sequence[Row]) -> list[Verdict]:
    """At every load where some policy answers 99% in budget, Spillgate must too, at no more
    than 1.1x (or one cent over) the cloud cost of the cheapest policy that does, and spill
    nothing sensitive."""
    verdicts = []
    for key in dict.fromkeys((r.profile, r.load) for r in rows):
        # What-if variants of Spillgate ("spillgate+...") are shown, never compared.
        here = [
            r for r in rows if (r.profile, r.load) == key and not r.policy.startswith("spillgate+")
        ]
        ours = next(r for r in here if r.policy == SPILLGATE)
        winners = [r for r in here if r.in_budget >= TARGET_SHARE]
        if ours.sensitive_spilled > 0:
            verdicts.append(Verdict(*key, False, "spillgate sent sensitive requests to a cloud"))
        elif not winners:
            best = max(here, key=lambda r: r.in_budget)
            why = f"no policy reaches {TARGET_SHARE:.0%} (best: {best.policy} {best.in_budget:.1%})"
            verdicts.append(Verdict(*key, None, why))
        elif ours not in winners:
            names = ", ".join(r.policy for r in winners)
            why = f"spillgate {ours.in_budget:.2%} in budget; {names} reach {TARGET_SHARE:.0%}"
            verdicts.append(Verdict(*key, False, why))
        else:
            cheapest = min(winners, key=lambda r: r.cost_usd)
            limit = max(COST_SLACK * cheapest.cost_usd, cheapest.cost_usd + COST_FLOOR_USD)
            passed = ours.cost_usd <= limit
            why = (
                f"spillgate ${ours.cost_usd:.3f} vs cheapest in budget {cheapest.policy} "
                f"${cheapest.cost_usd:.3f} (limit ${limit:.3f}), {ours.in_budget:.2%} in budget"
            )
            verdicts.append(Verdict(*key, passed, why))
    return verdicts


def _seconds(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| load | req/s | policy | in budget | p50 TTFT s | p99 TTFT s | cloud $ | spilled "
        "| sensitive spilled | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.load:.1f}x | {r.rate:.3g} | {r.policy} | {r.in_budget:.1%} | "
            f"{_seconds(r.p50_s)} | {_seconds(r.p99_s)} | {r.cost_usd:.2f} | {r.spilled:.1%} | "
            f"{r.sensitive_spilled:.1%} | {r.failed:.1%} |"
        )
    return "\n".join(lines)


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    label = {True: "PASS", False: "FAIL", None: "n/a"}
    return [f"{label[v.passed]} {v.profile} {v.load:.1f}x: {v.why}" for v in verdicts]


def plot(rows: Sequence[Row], profile: str, path: Path, budget_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r.profile == profile]
    policies = list(dict.fromkeys(r.policy for r in mine))
    fig, (share, cost) = plt.subplots(1, 2, figsize=(11, 4))
    for name in policies:
        series = [r for r in mine if r.policy == name]
        loads = [r.load for r in series]
        share.plot(loads, [100 * r.in_budget for r in series], marker="o", label=name)
        cost.plot(loads, [r.cost_usd for r in series], marker="o", label=name)
    share.axhline(100 * TARGET_SHARE, color="grey", linestyle=":", linewidth=1)
    share.set(
        xlabel="load (x local capacity)",
        ylabel=f"% of answerable requests, TTFT <= {budget_s:g} s",
        title=f"{profile}: requests answered in budget",
    )
    cost.set(xlabel="load (x local capacity)", ylabel="cloud cost, USD", title="cloud spend")
    share.legend(fontsize=8)
    fig.text(
        0.01,
        0.01,
        "Load: Azure LLM inference trace 2023 (conversation), Patel et al., Splitwise, ISCA 2024",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
