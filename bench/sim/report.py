"""Turn outcomes into per-class rows, the target check of issue 16, tables and plots.

Classes: `marked` and `personal` may not leave the box, `plain` may; "private" is the two
non-plain classes together. The yardstick for cloud cost is every plain request at the
cheapest provider; the one for the private classes is the dedicated-engine split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.sim.cloud import Cloud, CloudProfile
from bench.sim.engine import EngineProfile
from bench.sim.policies import LOCAL
from bench.sim.runner import FAILED, Outcome
from bench.sim.trace import CLASSES, Request, RequestClass

PLAIN_TARGET = 0.99
# The private classes: within this factor of the split's within-budget share, p50 and p90.
PRIVATE_SLACK = 0.05
COST_SLACK = 1.1
SPILLGATE = "spillgate"
SPLIT = "split"
PRIVATE = "private"  # marked + personal
GROUPS = (*(c.value for c in CLASSES), PRIVATE)


@dataclass(frozen=True, slots=True)
class ClassStats:
    count: int
    # Over the answerable requests of the class (`answerable`): the share whose first token
    # came in budget, and TTFT percentiles (a failed request counts as never answering).
    in_budget: float
    p50_s: float
    p90_s: float
    p99_s: float


@dataclass(frozen=True, slots=True)
class Row:
    profile: str
    load: float  # multiple of the local capacity
    rate: float  # requests per second
    policy: str
    in_budget: float  # all answerable requests
    classes: dict[str, ClassStats]  # by class name, and PRIVATE
    cost_usd: float
    cost_multiple: float  # of the yardstick: every plain request at the cheapest provider
    local_share: float  # share of all requests answered by the local engine
    marked_at_cloud: int
    sensitive_spilled: int  # marked or personal requests sent to a cloud
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


def yardstick_usd(requests: Sequence[Request], providers: Sequence[CloudProfile]) -> float:
    """What sending every plain request to the cheapest provider costs."""
    cheapest = Cloud(providers, 0, 0).by_price()[0]
    return sum(
        cheapest.cost_usd(r.prompt_tokens, r.output_tokens) for r in requests if not r.sensitive
    )


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def class_stats(outcomes: Sequence[Outcome], profile: EngineProfile, budget_s: float) -> ClassStats:
    if not outcomes:
        return ClassStats(0, math.nan, math.nan, math.nan, math.nan)
    fair = [o for o in outcomes if answerable(o, profile, budget_s)]
    if not fair:
        return ClassStats(len(outcomes), math.nan, math.nan, math.nan, math.nan)
    ok = sum(1 for o in fair if o.ttft_s is not None and o.ttft_s <= budget_s)
    ttfts = [o.ttft_s if o.ttft_s is not None else math.inf for o in fair]
    return ClassStats(
        len(outcomes),
        ok / len(fair),
        _quantile(ttfts, 0.50),
        _quantile(ttfts, 0.90),
        _quantile(ttfts, 0.99),
    )


def _in_class(outcomes: Sequence[Outcome], group: str) -> list[Outcome]:
    if group == PRIVATE:
        return [o for o in outcomes if o.request.sensitive]
    return [o for o in outcomes if o.request.klass == group]


def summarise(
    outcomes: Sequence[Outcome],
    profile: EngineProfile,
    load: float,
    rate: float,
    policy: str,
    budget_s: float,
    yardstick: float,
) -> Row:
    at_cloud = [o for o in outcomes if o.target not in (LOCAL, FAILED)]
    errors = [
        abs(o.predicted_local_ttft_s - o.ttft_s)
        for o in outcomes
        if o.target == LOCAL and o.predicted_local_ttft_s is not None and o.ttft_s is not None
    ]
    cost = sum(o.cost_usd for o in outcomes)
    return Row(
        profile=profile.name,
        load=load,
        rate=rate,
        policy=policy,
        in_budget=class_stats(outcomes, profile, budget_s).in_budget,
        classes={g: class_stats(_in_class(outcomes, g), profile, budget_s) for g in GROUPS},
        cost_usd=cost,
        cost_multiple=cost / yardstick if yardstick > 0 else math.nan,
        local_share=sum(1 for o in outcomes if o.target == LOCAL) / len(outcomes),
        marked_at_cloud=sum(1 for o in at_cloud if o.request.klass is RequestClass.MARKED),
        sensitive_spilled=sum(1 for o in at_cloud if o.request.sensitive),
        failed=sum(1 for o in outcomes if o.target == FAILED) / len(outcomes),
        prediction_error_p50_s=_quantile(errors, 0.5) if errors else None,
        prediction_error_p90_s=_quantile(errors, 0.9) if errors else None,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    profile: str
    load: float
    passed: bool
    summary: str  # every measure of the target, met or not
    misses: tuple[str, ...]  # the parts of the target missed, with by how much


def _relative(ours: float, theirs: float) -> float:
    """How much larger `ours` is than `theirs`, as a fraction of `theirs`."""
    return (ours - theirs) / theirs if theirs > 0 else (0.0 if ours <= theirs else math.inf)


def check_target(rows: Sequence[Row], policy: str = SPILLGATE) -> list[Verdict]:
    """Issue 16's target at each (profile, load): plain >= 99% in budget; the private
    classes within 5% of the split's within-budget share, p50 and p90 TTFT; no marked
    request at a cloud; cloud cost <= 1.1x the yardstick."""
    verdicts = []
    for key in dict.fromkeys((r.profile, r.load) for r in rows):
        here = {r.policy: r for r in rows if (r.profile, r.load) == key}
        ours, split = here[policy], here[SPLIT]
        mine, theirs = ours.classes[PRIVATE], split.classes[PRIVATE]
        plain = ours.classes[RequestClass.PLAIN.value].in_budget
        misses = []
        if plain < PLAIN_TARGET:
            misses.append(f"plain {plain:.1%} in budget (< {PLAIN_TARGET:.0%})")
        if mine.in_budget < (1 - PRIVATE_SLACK) * theirs.in_budget:
            misses.append(f"private in budget {mine.in_budget:.1%} vs split {theirs.in_budget:.1%}")
        for label, a, b in (("p50", mine.p50_s, theirs.p50_s), ("p90", mine.p90_s, theirs.p90_s)):
            over = _relative(a, b)
            if over > PRIVATE_SLACK:
                misses.append(
                    f"private {label} {_seconds(a)} s vs split {_seconds(b)} s (+{over:.0%})"
                )
        if ours.marked_at_cloud:
            misses.append(f"{ours.marked_at_cloud} marked requests at a cloud")
        if ours.cost_multiple > COST_SLACK:
            misses.append(f"cloud cost {ours.cost_multiple:.2f}x the yardstick (> {COST_SLACK}x)")
        summary = (
            f"plain {plain:.1%} in budget; private {mine.in_budget:.1%} in budget "
            f"(split {theirs.in_budget:.1%}, {_points(mine.in_budget - theirs.in_budget)}), "
            f"p50 {_seconds(mine.p50_s)} s (split {_seconds(theirs.p50_s)}), "
            f"p90 {_seconds(mine.p90_s)} s (split {_seconds(theirs.p90_s)}); "
            f"{ours.marked_at_cloud} marked at a cloud; cost {ours.cost_multiple:.2f}x the "
            f"yardstick; {ours.local_share:.1%} served locally"
        )
        verdicts.append(Verdict(*key, not misses, summary, tuple(misses)))
    return verdicts


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    lines = []
    for v in verdicts:
        head = "PASS" if v.passed else "MISS"
        tail = f" — missed: {'; '.join(v.misses)}" if v.misses else ""
        lines.append(f"{head} {v.profile} {v.load:.1f}x: {v.summary}{tail}")
    return lines


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _share(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _points(delta: float) -> str:
    return f"{100 * delta:+.1f} points"


def _trio(row: Row, field: str) -> str:
    classes = [row.classes[c.value] for c in CLASSES]
    if field == "in_budget":
        return " / ".join(_share(s.in_budget) for s in classes)
    return " / ".join(_seconds(getattr(s, field)) for s in classes)


def class_table(rows: Sequence[Row]) -> str:
    """Per class (marked / personal / plain): within budget and TTFT percentiles."""
    lines = [
        "| load | policy | in budget (m / p / pl) | p50 TTFT s | p90 TTFT s | p99 TTFT s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.load:.1f}x | {r.policy} | {_trio(r, 'in_budget')} | {_trio(r, 'p50_s')} "
            f"| {_trio(r, 'p90_s')} | {_trio(r, 'p99_s')} |"
        )
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """All requests: within budget, cost against the yardstick, where they went."""
    lines = [
        "| load | req/s | policy | in budget | marked at cloud | cloud $ | cost x yardstick "
        "| local | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.load:.1f}x | {r.rate:.3g} | {r.policy} | {r.in_budget:.1%} | "
            f"{r.marked_at_cloud} | {r.cost_usd:.2f} | {r.cost_multiple:.2f} | "
            f"{r.local_share:.1%} | {r.failed:.1%} |"
        )
    return "\n".join(lines)


def _figure(width: float, panels: int):
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width, 4))
    return plt, fig, axes


def _save(plt, fig, path: Path) -> None:
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


def plot(rows: Sequence[Row], profile: str, path: Path, budget_s: float) -> None:
    """All requests in budget, and cloud cost against the yardstick, for every policy."""
    mine = [r for r in rows if r.profile == profile]
    plt, fig, (share, cost) = _figure(11, 2)
    for name in dict.fromkeys(r.policy for r in mine):
        series = [r for r in mine if r.policy == name]
        loads = [r.load for r in series]
        share.plot(loads, [100 * r.in_budget for r in series], marker="o", label=name)
        cost.plot(loads, [r.cost_multiple for r in series], marker="o", label=name)
    share.axhline(100 * PLAIN_TARGET, color="grey", linestyle=":", linewidth=1)
    cost.axhline(COST_SLACK, color="grey", linestyle=":", linewidth=1)
    share.set(
        xlabel="load (x local capacity)",
        ylabel=f"% of answerable requests, TTFT <= {budget_s:g} s",
        title=f"{profile}: requests answered in budget",
    )
    cost.set(
        xlabel="load (x local capacity)",
        ylabel="cloud cost / every plain request at the cheapest",
        title="cloud spend against the yardstick",
    )
    share.legend(fontsize=8)
    _save(plt, fig, path)


def plot_classes(rows: Sequence[Row], profile: str, path: Path, budget_s: float) -> None:
    """Per class, share in budget against load: Spillgate against the dedicated split."""
    mine = [r for r in rows if r.profile == profile and r.policy in (SPILLGATE, SPLIT)]
    plt, fig, axes = _figure(13, len(CLASSES))
    for ax, klass in zip(axes, CLASSES, strict=True):
        for name, style in ((SPILLGATE, "-o"), (SPLIT, "--s")):
            series = [r for r in mine if r.policy == name]
            shares = [100 * r.classes[klass.value].in_budget for r in series]
            ax.plot([r.load for r in series], shares, style, label=name)
        ax.set(
            xlabel="load (x local capacity)",
            ylabel=f"% TTFT <= {budget_s:g} s",
            title=f"{profile}: {klass.value}",
        )
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def kv_table(rows: Sequence[Row]) -> str:
    """Spillgate with the KV signal on and off: per class in budget, prediction error."""
    lines = [
        "| load | policy | in budget (m / p / pl) | p90 TTFT s (m / p / pl) "
        "| prediction error p50 / p90 s | local | cost x yardstick |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p50, p90 = r.prediction_error_p50_s, r.prediction_error_p90_s
        error = "n/a" if p50 is None or p90 is None else f"{p50:.3f} / {p90:.3f}"
        lines.append(
            f"| {r.load:.1f}x | {r.policy} | {_trio(r, 'in_budget')} | {_trio(r, 'p90_s')} "
            f"| {error} | {r.local_share:.1%} | {r.cost_multiple:.2f} |"
        )
    return "\n".join(lines)
