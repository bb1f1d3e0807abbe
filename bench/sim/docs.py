"""Write the "Simulation" section of docs/routing.md, leaving the other sections alone."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.sim.affinity import AffinityRow, affinity_table
from bench.sim.cloud import default_providers
from bench.sim.profiles import PROFILES
from bench.sim.report import (
    COST_SLACK,
    PRIVATE_SLACK,
    SPILLGATE,
    Row,
    Verdict,
    class_table,
    kv_table,
    markdown_table,
    verdict_lines,
)

HEADING = "## Simulation"

METHOD = """\
`python -m bench.sim --write-docs` regenerates this section and the plots (a few minutes on
one core; deterministic for a seed). Code: `bench/sim/` (engine model, cloud model, trace
loader, policies, runner, report, prefix affinity).

**Load.** The Azure LLM inference trace 2023, conversation service, one hour on 2023-11-16,
19,366 requests with their prompt and output token counts (Azure Public Dataset, CC-BY 4.0;
Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA
2024). Arrival times keep the trace's bursts and are stretched or squeezed to each load.

**Classes.** Each request gets a class, chosen by the seed: `marked` (marked on-prem),
`personal` (carries personal data; under keep-local it may not spill either) or `plain`.
Both non-plain classes are routed as `Privacy.LOCAL_ONLY`; "private" below means the two
together.

**Engine.** A discrete-event model of a continuous-batching engine (`bench/sim/engine.py`):
each step admits waiting requests first come first served while a batch slot and KV space
are free, prefills up to `max_num_batched_tokens` prompt tokens (chunked prefill) and gives
every decoding sequence one token; a step costs `base + prefill_tokens / prefill_rate +
per_seq x decoding_sequences`. KV space for prompt + output is reserved at admission, so
there is no preemption: when the KV cache is full, the head of vLLM's waiting queue waits
for a sequence to end (vLLM allocates as it goes and preempts; a simplification). Its
/metrics carry vLLM's running and waiting counts, `kv_cache_usage_perc` (KV reserved /
capacity), the prompt and generation token counters, and the TTFT, queue-time, inter-token
and prefill-time histograms (prefill time: from leaving the waiting queue to first token).

**Capacity.** The highest request rate at which the engine alone answers 99% of the
requests it could answer in budget when idle, found by bisection; loads are multiples of it.

**Policies.** local-only; cloud-only (private requests refused, never sent); reactive
fall-back (a proxy with a bounded vLLM queue that spills only after the engine refuses);
a static threshold on vLLM's waiting queue; the **dedicated-engine split** (`split`: the
local engine serves the private requests alone, straight to vLLM in arrival order, and
every plain request goes to the cheapest provider: issue 16's yardstick); and Spillgate.
Requests too long for the engine go to the cloud in every spilling policy; private requests
stay local in all but cloud-only.

**Spillgate** is the server's code, not a re-implementation: `bench/sim/spillgate_policy.py`
builds the config a deployer would write (the engine's vLLM arguments, its context window,
its calibrated prefill and single-request decode rates), lets the server's `RuntimeStore` turn
it into the engine runtime (concurrency cap: `--max-num-seqs` from the arguments, else 256),
scrapes the simulated engine's /metrics every `scrape_interval_s` and derives the load with
the server's `derive_load` (5 s window), applies it with `EngineRuntime.apply_load` as the
gateway's monitor does, and reports to the runtime what the executor reports: each request
handed to the engine and its first token (`admitted`/`first_token`: the prefill backlog),
each finished request (`observe`; `observe_private` for private ones), each private request
routed to the engine (`note_private_arrival`: the reserve's arrival rate). It then takes the
snapshot with `RuntimeStore.local_state(now=...)`, which sizes the reserve, and calls
`spillgate.server.scheduler.decide` with the server's default `Tuning`. The runner carries
the decision out as the executor does: a local target takes a slot in the gateway-side
queue (`bench/sim/gateway.py`) or waits for one (as long as the budget allows if it may
still spill, else up to `max_queue_wait_s`), then the next target. That queue keeps the
reserve (a plain request takes a slot only while `active < capacity - reserve`; a freed
slot goes to a plain waiter only under the same rule) and orders its private lane: those
that can still make their deadline at the engine's prefill rate first, shortest prompt
first, then the rest, oldest first.

**Where the model is thin.** The engine has no preemption (and no prefix caching outside
the affinity study); the CPU profile is measured on a busy shared machine and only up to 16
concurrent requests; the H100 prefill rate is an estimate; cloud latencies are assumed
distributions, not measurements, and cloud output speed is not modelled (only time to first
token is scored).

**Measures.** Per class: "in budget", the share of the class's answerable requests whose
first token came within the budget (a private request the engine cannot take, or cannot
prefill in time even idle, is answerable by no policy and left out), and TTFT percentiles
over the same requests (a failed one counts as never answered, shown as ∞). "marked at
cloud": marked requests a policy sent to a provider. "cost x yardstick": the cloud bill at
the providers' list prices over what sending every plain request to the cheapest provider
costs. "local": the share of all requests the local engine answered (the money saved).
"""

WHY = """\
**Where the target is met.** On the cpu profile at every load: plain 99.4% in budget (the
split's plain requests, all at the cloud, get 99.0%), the private classes exactly as the
split serves them (in budget, p50 and p90 within a few milliseconds), no marked request at
a cloud, at 0.85x the yardstick's cost with 46% of all requests served locally. Spillgate
keeps local only what it can prefill well within the budget (prompts up to ~800 tokens on
this engine), which leaves the private requests an engine about as idle as the split's;
its smarter order has nothing to reorder there, so it does not beat the split either. On
the h100 profile plain requests are 99.4-100% in budget at every load, no marked request
leaves, and the cost is 0.00-0.57x the yardstick.

**Where it misses, and why.** On the h100 profile the private classes get 100% in budget,
as with the split, but their TTFT is longer: p50 0.07-0.22 s against the split's 0.06 s,
p90 0.22-0.40 s against 0.16-0.22 s, far beyond 5%. The split gives the engine to 15% of
the traffic; Spillgate fills it with plain requests as long as they are predicted in
budget (99.9% of all requests served locally at 0.5x, 56% at 3x). A private request then
shares each step's 8,192-token prefill budget with the prompts admitted just before it,
and each step carries the decode of up to 256 running sequences (6.4 ms + 0.08 ms each).
The reserve guarantees the private request a slot, not an idle engine: a TTFT of 0.1-0.4 s
inside a 2 s budget is the price of serving 56-100% of the traffic locally. Matching the
split's p50 would mean keeping plain traffic off the engine, at the split's cost. What
would narrow it is an engine that prefills the private request first: vLLM's
`--scheduling-policy priority` with a per-request priority, which the gateway does not set
yet and the engine model does not have. On a 4-slot engine (below), where the slots and
not the batch are what a private request waits for, the reserve does bring the private
classes to the split's p50 and to within 0.01-0.02 s of its p90.

**Beating the split.** In no table does Spillgate beat the split for the private
classes: at best it equals it (the cpu profile; on the 4-slot engine the in-budget share
and p50). The private lane's smarter order (deadline-feasible first, shortest prompt
first) only acts on private requests waiting in the gateway's queue, and with the reserve
few do: what they wait for is vLLM's batch, which serves in arrival order.
"""

SMALL_TEXT = """\
The black-box check that filed issue 16 ran an engine of 4 slots, where a few plain
requests fill it. This is the h100 profile with `--max-num-seqs 4` (so the gateway's cap is
4), on the same trace and loads relative to its own capacity: the split; Spillgate; and
Spillgate with the reserve off (`scheduler.reserve_blocking: 1`), which is what the
gateway did before the reserve: the private lane of its queue went first, but a plain
request could take the last free slot."""

SMALL_WHY = """\
Without the reserve, the private classes lose to the split as the issue measured: their
p90 TTFT is 1.3-5 times the split's (0.20 s against 0.15 s at 0.5x, 0.94 s against 0.19 s
at 3x) and, from 1x, their in-budget share drops below it, because a private request that
finds the 4 slots full waits for a plain one to finish. With the reserve, their in-budget
share and p50 equal the split's at every load and their p90 is within 0.00-0.02 s of it
(+0-11%, the misses above); plain requests stay at 99.1-99.8% in budget, because while the
reserve is kept a plain request takes an open slot or spills at once (when plain requests
could wait for a slot, they waited behind private ones and spilled late: 89.6% and 88.0% in
budget at 1.5x and 3x in a first run). The price of the reserve is the cloud: it keeps
slots free for requests that may come, so at 0.5x Spillgate serves 80% locally where it
could serve all, at 0.24x the yardstick against none.
"""

KV_TEXT = """\
The engine model reserves KV space for prompt + output at admission, so it never preempts;
when the KV cache is full the head of vLLM's waiting queue waits for a sequence to end,
and new requests queue behind it. With Spillgate's default cap (256 concurrent requests) the
h100 profile's 450,000-token KV cache never nears full on this trace, and the KV signal
changes nothing. The table therefore runs the h100 profile with `--max-num-seqs 1024` in
its arguments (the gateway's cap follows it), Spillgate with `kv_pressure` 0.95 (the
default) against 2 (off: no usage reaches it). With the signal, a request arriving while
the cache is 95% full is predicted to wait for a slot, and a plain one spills instead of
queueing behind the full cache: at 2.5x-3x the private classes' p90 TTFT drops from
0.43-0.54 s to 0.39-0.41 s. Plain requests and the local share barely move, and the
prediction error moves by 0.01-0.02 s either way (the signal predicts a wait for every
request while the cache is full, where some are admitted as soon as one sequence ends).
"""

AFFINITY_TEXT = """\
`bench/sim/affinity.py`: N replicas of each engine profile, each with a prefix cache (an
LRU of 16-token prompt blocks, as many as the profile's KV cache holds; a block's key stands
for the whole prefix up to it, as vLLM chains block hashes; hit tokens skip prefill, all
but the last prompt token). Workload: 200 conversations of 2-8 turns on four system prompts
of 120, 400, 800 and 1,200 tokens; each turn's prompt is the system prompt plus the
conversation so far, user turns ~80 tokens and answers ~200 (lognormal), a conversation
ending when its next turn would pass `max_model_len`; turns arrive open loop, an
exponential think time (mean 30 s) after the previous one, at a rate that would keep the
replicas' prefill 60% busy without any cache. Each turn is routed by the server's
`decide()` over one `LocalState` per replica (the server's `RuntimeStore`, fed as the
executor feeds it), with `prefix_key` = `scheduler.prefix_key` of the prompt text's first
KB (the system prompt, and for the 120-token one the first user turn) against
`prefix_key=None` (least wait). Hit rate = hit tokens / prompt tokens, as vLLM's
`prefix_cache_hits / prefix_cache_queries`."""

AFFINITY_WHY = """\
On the h100 profile affinity raises the hit rate by 7 points with two replicas and 11 with
four, and the p90 TTFT drops with it: without affinity a conversation's next turn lands on
another replica about half the time (or three times in four) and recomputes its history.
Least wait alone is not as bad as random: at equal load `decide()` breaks ties by name, so
at light load turns pile onto one replica and meet their history there.

On the cpu profile affinity changes nothing, and the reason is in `_pick_local`: the
affinity replica keeps a request only while its predicted TTFT times
`scheduler.prediction_margin` (2) fits the budget, and the prediction does not know that
the prefix is cached. At 845 prompt tokens/s every prompt over ~800 tokens is predicted
over 1 s, so about 70% of the picks (435 of 619 with two replicas) fall through to least
wait, though most of that prompt would be a cache hit. The prediction on the affinity
replica would have to discount the prefix it expects to find cached for affinity to help
a slow engine, where it helps most."""

TUNING = """\
The reserve's two knobs were tried on the first 6,000 requests of the trace, Spillgate
alone against the split (seed 7). `scheduler.reserve_blocking` from 0.01 to 0.2 moved
nothing beyond noise. The window mattered in a first version, where the arrival rate was a
plain decayed count and a plain request could wait in the gateway queue for a slot: a
short window made the reserve swing with each burst of private arrivals and held plain
requests in the queue until they spilled late (plain in budget at 3x on the h100 profile:
92.0% with a 30 s window, 97.4% with 600 s). With the rate read over the time observed and
plain requests no longer waiting under a reserve, it no longer does: from 60 s to 1,200 s,
plain requests are 99.2-99.5% in budget at 2x-3x on the h100 profile (99.0-99.2% on the
4-slot engine) and the private classes' p50 and p90 move by 0.02 s at most.
`scheduler.reserve_window_s` stays 600 s, the smoothest of the windows that measured as
well; `reserve_blocking` stays 0.05. On the cpu profile neither knob changed any figure:
its reserve never binds (Spillgate keeps only prompts it can prefill well within budget,
and the engine has slots to spare at the loads where that holds)."""


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


def _profile_part(name: str, capacity: float, rows: Sequence[Row]) -> list[str]:
    mine = [r for r in rows if r.profile == name]
    errors = [
        f"{r.load:.1f}x: median {r.prediction_error_p50_s:.3f} s, "
        f"p90 {r.prediction_error_p90_s:.3f} s"
        for r in mine
        if r.policy == SPILLGATE
        and r.prediction_error_p50_s is not None
        and r.prediction_error_p90_s is not None
    ]
    return [
        "",
        f"### {name}: local capacity {capacity:.4g} req/s",
        "",
        f"![{name}: per class in budget, Spillgate against the split](img/sim_{name}_classes.png)",
        "",
        "Per class (marked / personal / plain):",
        "",
        class_table(mine),
        "",
        f"![{name}: all requests](img/sim_{name}.png)",
        "",
        "All requests:",
        "",
        markdown_table(mine),
        "",
        "Spillgate's local TTFT prediction against the simulated TTFT, absolute error: "
        + ("; ".join(errors) if errors else "the decision made no prediction."),
    ]


def render(
    args: argparse.Namespace,
    rows: Sequence[Row],
    verdicts: Sequence[Verdict],
    capacities: dict[str, float],
    kv: Sequence[Row],
    affinity: Sequence[AffinityRow],
    small: tuple[float, Sequence[Row], Sequence[Verdict]] | None = None,
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
        f"Run: TTFT budget {args.ttft_budget:g} s, {args.marked_share:.0%} marked and "
        f"{args.personal_share:.0%} personal, reactive queue bound {args.reactive_queue}, "
        f"queue threshold {args.queue_threshold}, seed {args.seed}; Spillgate with the "
        "server's default scheduler settings.",
    ]
    for name, capacity in capacities.items():
        parts += _profile_part(name, capacity, rows)
    parts += [
        "",
        "### Target check",
        "",
        "Issue 16's target, at every load: plain requests >= 99% in budget; the private "
        f"classes' in-budget share, p50 and p90 TTFT within {PRIVATE_SLACK:.0%} of the "
        f"split's in the same run; no marked request at a cloud; cloud cost <= {COST_SLACK}x "
        "the yardstick.",
        "",
        *[f"- {line}" for line in verdict_lines(verdicts)],
        "",
        WHY,
    ]
    if small is not None:
        capacity, small_rows, small_verdicts = small
        parts += [
            "",
            f"### A 4-slot engine (issue 16's shape): local capacity {capacity:.4g} req/s",
            "",
            SMALL_TEXT,
            "",
            class_table(small_rows),
            "",
            markdown_table(small_rows),
            "",
            *[f"- {line}" for line in verdict_lines(small_verdicts)],
            "",
            SMALL_WHY,
        ]
    if kv:
        parts += ["", "### KV pressure near saturation", "", KV_TEXT, "", kv_table(kv)]
    if affinity:
        parts += [
            "",
            "### Prefix affinity across replicas",
            "",
            AFFINITY_TEXT,
            "",
            affinity_table(affinity),
            "",
            AFFINITY_WHY,
        ]
    parts += ["", "### Tuning the reserve", "", TUNING]
    return "\n".join(parts) + "\n"


def write_simulation_section(
    path: Path,
    args: argparse.Namespace,
    rows: Sequence[Row],
    verdicts: Sequence[Verdict],
    capacities: dict[str, float],
    kv: Sequence[Row],
    affinity: Sequence[AffinityRow],
    small: tuple[float, Sequence[Row], Sequence[Verdict]] | None = None,
) -> None:
    """Replace the Simulation section (from its heading to the end of the file) or append
    it."""
    section = render(args, rows, verdicts, capacities, kv, affinity, small)
    text = path.read_text() if path.exists() else "# Routing\n"
    start = text.find(HEADING + "\n")
    head = text.rstrip("\n") + "\n\n" if start == -1 else text[:start]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + section)
