"""Write the "Simulation" section of docs/routing.md, leaving the other sections alone."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.sim.cloud import default_providers
from bench.sim.profiles import PROFILES
from bench.sim.report import Row, Verdict, markdown_table, verdict_lines

HEADING = "## Simulation"

METHOD = """\
`python -m bench.sim --write-docs` regenerates this section and the plots (under a minute on
one core; deterministic for a seed). Code: `bench/sim/` (engine model, cloud model, trace
loader, policies, runner, report).

**Load.** The Azure LLM inference trace 2023, conversation service, one hour on 2023-11-16,
19,366 requests with their prompt and output token counts (Azure Public Dataset, CC-BY 4.0;
Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA
2024). Arrival times keep the trace's bursts and are stretched or squeezed to each load.
A share of the requests, chosen by the seed, is marked sensitive (may never leave the box).

**Engine.** A discrete-event model of a continuous-batching engine (`bench/sim/engine.py`):
each step admits waiting requests first come first served while a batch slot and KV space
are free, prefills up to `max_num_batched_tokens` prompt tokens (chunked prefill) and gives
every decoding sequence one token; a step costs `base + prefill_tokens / prefill_rate +
per_seq x decoding_sequences`. KV space for prompt + output is reserved at admission, so
there is no preemption (vLLM allocates as it goes and preempts; a simplification).

**Capacity.** The highest request rate at which the engine alone answers 99% of the
requests it could answer in budget when idle, found by bisection; loads are multiples of it.

**Policies.** local-only; cloud-only (sensitive requests refused, never sent); reactive
fall-back (a proxy with a bounded vLLM queue that spills only after the engine refuses);
a static threshold on vLLM's waiting queue; and Spillgate. Requests too long for the
engine go to the cloud in every spilling policy; sensitive requests stay local in all but
cloud-only.

**Spillgate** is the server's code, not a re-implementation: `bench/sim/spillgate_policy.py`
builds the config a deployer would write (the engine's vLLM arguments, its context window,
its calibrated prefill and single-request decode rates), lets the server's `RuntimeStore` turn
it into the engine runtime (concurrency cap: `--max-num-seqs` from the arguments, else 256),
scrapes the simulated engine's vLLM counters every `scrape_interval_s` and derives the load
with the server's `derive_load` (5 s window), applies it as the gateway's monitor does
(vLLM's running and waiting counts, the decode rate from the mean inter-token latency),
feeds finished requests to `EngineRuntime.observe` as the executor does and cloud first
tokens to `CloudRuntime.observe`, and calls `spillgate.server.scheduler.decide`. Features:
exact prompt tokens, `max_tokens` = the trace's output tokens, sensitive requests as
`Privacy.LOCAL_ONLY`. The runner carries the decision out as the executor does: a local
target takes a slot in the gateway-side queue or waits for one (as long as the budget
allows if it may still spill, else up to `max_queue_wait_s`), then the next target.

**Where the model is thin.** The engine has no preemption and no prefix caching; the CPU
profile is measured on a busy shared machine and only up to 16 concurrent requests; the H100
prefill rate is an estimate; cloud latencies are assumed distributions, not measurements,
and cloud output speed is not modelled (only time to first token is scored).

**Measures.** "in budget": share of the answerable requests whose first token came within
the budget (a sensitive request the engine cannot take, or cannot prefill in time even
idle, is answerable by no policy and left out). TTFT percentiles count a failed request
as never answered. Cloud cost at the providers' list prices.
"""


# Why the target fails where it does, from a breakdown of Spillgate's misses (seed 7, 2 s
# budget). A first run found the executor waiting the whole budget before spilling and the
# prediction taken at face value; both were changed (see below) and the tables are after.
WHY = """\
**What the simulator changed in the scheduler.** A first run (prediction taken at face
value, a request that may spill waiting the whole remaining budget for a local slot) missed
the target on the h100 profile from 1.5x: 93.6% in budget at 1.5x, 84.2% at 2x, 75.9% at
3x. Three changes followed: the executor now gives up on a local slot early enough for the
next (cloud) target's measured time to first token to fit in the budget, and `decide` keeps
a request local only if the predicted TTFT times `scheduler.prediction_margin` (default 2)
fits the budget; and the prediction takes a busy slot's lifetime from the measured time
requests hold a slot, not from output length alone. The tables above are with all three.

**Where the target is still missed.** On the h100 profile at 2x-3x Spillgate reaches
97.6-99.0% where the static `queue>=2` threshold reaches 99.5-99.7%. Its remaining misses
are requests predicted in time that came late: the prediction leaves out the prefill work
of requests admitted just before (with chunked prefill a burst of admissions shares
`max_num_batched_tokens` a step), so its error grows with load (p90 0.6-0.8 s at 2x-3x).
`queue>=2` wins there because vLLM's waiting queue forms only when the KV cache is full, a
late but reliable sign, and it spills at once. At 1x Spillgate is in budget but spends
about a cent where local-only spends nothing (it spills prompts longer than the engine's
context window, which local-only fails outright); the strict cost rule counts that as a
failure. On the CPU profile Spillgate is the only policy that reaches 99%, at every load;
its prediction error is a few milliseconds there.
"""


def _profiles_table() -> str:
    lines = [
        "| profile | source | prefill tok/s | step base ms | per seq ms | max seqs | KV tokens "
        "| max len | chunk |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in PROFILES.values():
        lines.append(
            f"| {p.name} | {p.source} | {p.prefill_tokens_per_s:,.0f} | "
            f"{1000 * p.step_base_s:.2f} | {1000 * p.step_per_seq_s:.3f} | {p.max_num_seqs} | "
            f"{p.kv_capacity_tokens:,} | {p.max_model_len} | {p.chunked_prefill_tokens} |"
        )
    return "\n".join(lines)


def _cloud_table() -> str:
    lines = [
        "| provider | model | $ in / 1M | $ out / 1M | TTFT median s | TTFT p99 s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in default_providers():
        lines.append(
            f"| {c.name} | {c.model} | {c.price.input:.2f} | {c.price.output:.2f} "
            f"| {c.ttft_median_s:.2f} | {c.ttft_p99_s:.2f} |"
        )
    return "\n".join(lines)


def render(
    args: argparse.Namespace,
    rows: Sequence[Row],
    verdicts: Sequence[Verdict],
    capacities: dict[str, float],
) -> str:
    parts = [
        HEADING,
        "",
        METHOD,
        "Engine profiles (the sources of every number are in `bench/sim/profiles.py`; `cpu` "
        "is measured on this machine, `h100` is taken from published vLLM figures):",
        "",
        _profiles_table(),
        "",
        "Cloud providers (list prices from `fallback/prices.json`; latencies lognormal, "
        "medians of the order public trackers report, p99s assumed; `bench/sim/cloud.py`):",
        "",
        _cloud_table(),
        "",
        f"Run: TTFT budget {args.ttft_budget:g} s, {args.sensitive_share:.0%} sensitive, "
        f"reactive queue bound {args.reactive_queue}, queue threshold {args.queue_threshold}, "
        f"seed {args.seed}.",
    ]
    for name, capacity in capacities.items():
        parts += [
            "",
            f"### {name}: local capacity {capacity:.4g} req/s",
            "",
            f"![{name}](img/sim_{name}.png)",
            "",
            markdown_table([r for r in rows if r.profile == name]),
        ]
        errors = [
            f"{r.load:.1f}x: median {r.prediction_error_p50_s:.3f} s, "
            f"p90 {r.prediction_error_p90_s:.3f} s"
            for r in rows
            if r.profile == name
            and r.policy == "spillgate"
            and r.prediction_error_p50_s is not None
            and r.prediction_error_p90_s is not None
        ]
        parts += [
            "",
            "Spillgate's local TTFT prediction against the simulated TTFT, absolute error: "
            + ("; ".join(errors) if errors else "the decision made no prediction."),
        ]
    parts += [
        "",
        "### Target check",
        "",
        "At every load where a policy answers 99% in budget, Spillgate must too, at no more "
        "than 1.1x the cloud cost of the cheapest such policy (or one cent over it, where that "
        "is more), spilling no sensitive request:",
        "",
        *[f"- {line}" for line in verdict_lines(verdicts)],
        "",
        WHY,
    ]
    return "\n".join(parts)


def write_simulation_section(
    path: Path,
    args: argparse.Namespace,
    rows: Sequence[Row],
    verdicts: Sequence[Verdict],
    capacities: dict[str, float],
) -> None:
    """Replace the Simulation section (up to the next `## ` heading) or append it."""
    section = render(args, rows, verdicts, capacities)
    text = path.read_text() if path.exists() else "# Routing\n"
    start = text.find(HEADING + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
