"""`python -m bench.sim`: replay the Azure trace through every policy, print the table and
the target check; with --write-docs, also the plots in docs/img/ and docs/routing.md."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from bench.sim.affinity import affinity_table
from bench.sim.affinity import run as affinity_run
from bench.sim.cloud import default_providers
from bench.sim.docs import write_simulation_section
from bench.sim.engine import EngineProfile
from bench.sim.policies import (
    CloudOnly,
    DedicatedSplit,
    LocalOnly,
    Policy,
    QueueThreshold,
    ReactiveFallback,
)
from bench.sim.profiles import PROFILES
from bench.sim.report import (
    Row,
    Verdict,
    check_target,
    class_table,
    kv_table,
    markdown_table,
    plot,
    plot_classes,
    summarise,
    verdict_lines,
    yardstick_usd,
)
from bench.sim.runner import local_capacity, replay
from bench.sim.spillgate_policy import SpillgatePolicy
from bench.sim.trace import DEFAULT_TRACE, Request, assign_classes, load_trace, scale_to_rate
from spillgate.server.config_routing import SchedulerConfig
from spillgate.server.scheduler import Tuning

# The shape: an engine of 4 slots (the h100 profile's speed).
SMALL_PROFILE = "h100, 4 slots"
SMALL_SLOTS = 4
NO_RESERVE = "spillgate, no reserve"

# The KV what-if: Spillgate with the KV signal off (no usage reaches 2) on these loads.
KV_PROFILE = "h100"
KV_LOADS = (1.0, 1.5, 2.0, 2.5, 3.0)
KV_ON = "KV signal at 0.95 (default)"
KV_OFF = "KV signal off"

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    p.add_argument("--requests", type=int, default=None, help="use only the first N requests")
    p.add_argument("--profiles", nargs="+", choices=sorted(PROFILES), default=["cpu", "h100"])
    p.add_argument("--loads", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    p.add_argument("--ttft-budget", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--marked-share", type=float, default=0.10, help="marked on-prem")
    p.add_argument("--personal-share", type=float, default=0.05, help="carry personal data")
    p.add_argument("--reactive-queue", type=int, default=4, help="the reactive proxy's bound")
    p.add_argument("--queue-threshold", type=int, default=2, help="waiting requests to spill at")
    p.add_argument("--seed", type=int, default=7)

    p.add_argument(
        "--write-docs",
        action="store_true",
        help="write docs/img/*.png and the Simulation section of docs/routing.md",
    )
    return p.parse_args()


def policies(args: argparse.Namespace, profile: EngineProfile) -> list[Policy]:
    return [
        LocalOnly(),
        CloudOnly(),
        ReactiveFallback(args.reactive_queue),
        QueueThreshold(args.queue_threshold),
        DedicatedSplit(),
        SpillgatePolicy(profile, args.ttft_budget),
    ]


def replay_rows(
    args: argparse.Namespace,
    requests: list[Request],
    profile: EngineProfile,
    capacity: float,
    loads: Sequence[float],
    make_policies: Callable[[], list[Policy]],
) -> list[Row]:
    """One summarised row per load and policy: the trace scaled to `load x capacity`, each
    of a fresh set of `make_policies()` replayed over it."""
    providers = default_providers()
    yardstick = yardstick_usd(requests, providers)
    rows = []
    for load in loads:
        scaled = scale_to_rate(requests, load * capacity)
        for policy in make_policies():
            outcomes = replay(scaled, policy, profile, providers, args.ttft_budget, args.seed)
            rate = load * capacity
            rows.append(
                summarise(outcomes, profile, load, rate, policy.name, args.ttft_budget, yardstick)
            )
    return rows


def kv_rows(args: argparse.Namespace, requests: list[Request], capacity: float) -> list[Row]:
    """Spillgate with the KV signal at the server's default and off, on the h100 profile
    with `--max-num-seqs 1024` in its arguments: under Spillgate's default cap of 256
    sequences the engine's KV cache never nears full, with 1024 it does."""
    profile = PROFILES[KV_PROFILE]
    profile = replace(profile, vllm_args=(*profile.vllm_args, "--max-num-seqs", "1024"))
    return replay_rows(
        args,
        requests,
        profile,
        capacity,
        KV_LOADS,
        lambda: [
            SpillgatePolicy(profile, args.ttft_budget, name=KV_ON),
            SpillgatePolicy(profile, args.ttft_budget, tuning=Tuning(kv_pressure=2.0), name=KV_OFF),
        ],
    )


def small_engine_rows(
    args: argparse.Namespace, requests: list[Request]
) -> tuple[float, list[Row], list[Verdict]]:
    """Issue 16's own shape: the h100 profile cut to 4 slots (`--max-num-seqs 4`, so the
    gateway's cap is 4), where a handful of plain requests can fill the engine. The split,
    Spillgate, and Spillgate with the reserve off (`reserve_blocking: 1`)."""
    base = PROFILES[KV_PROFILE]
    profile = replace(
        base,
        name=SMALL_PROFILE,
        max_num_seqs=SMALL_SLOTS,
        vllm_args=(*base.vllm_args, "--max-num-seqs", str(SMALL_SLOTS)),
    )
    capacity = local_capacity(requests, profile, args.ttft_budget)
    no_reserve = SchedulerConfig(reserve_blocking=1.0)
    rows = replay_rows(
        args,
        requests,
        profile,
        capacity,
        args.loads,
        lambda: [
            DedicatedSplit(),
            SpillgatePolicy(profile, args.ttft_budget),
            SpillgatePolicy(profile, args.ttft_budget, scheduler=no_reserve, name=NO_RESERVE),
        ],
    )
    return capacity, rows, check_target(rows)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    requests = assign_classes(
        load_trace(args.trace, args.requests), args.marked_share, args.personal_share, args.seed
    )
    rows: list[Row] = []
    capacities: dict[str, float] = {}
    for name in args.profiles:
        profile = PROFILES[name]
        capacity = local_capacity(requests, profile, args.ttft_budget)
        capacities[name] = capacity
        print(f"{name}: {profile.source}; local capacity {capacity:.4g} req/s")
        rows += replay_rows(
            args, requests, profile, capacity, args.loads, partial(policies, args, profile)
        )
    for name in args.profiles:
        print(f"\n## {name}\n")
        print(class_table([r for r in rows if r.profile == name]))
        print()
        print(markdown_table([r for r in rows if r.profile == name]))
    verdicts = check_target(rows)
    print("\n" + "\n".join(verdict_lines(verdicts)))
    for r in rows:
        if r.policy.startswith("spillgate"):
            p50, p90 = r.prediction_error_p50_s, r.prediction_error_p90_s
            error = "no prediction" if p50 is None else f"median {p50:.3f} s, p90 {p90:.3f} s"
            print(f"TTFT prediction error {r.policy} {r.profile} {r.load:.1f}x: {error}")
    kv = kv_rows(args, requests, capacities[KV_PROFILE]) if KV_PROFILE in capacities else []
    if kv:
        print(f"\n## KV signal, {KV_PROFILE}\n")
        print(kv_table(kv))
    small = small_engine_rows(args, requests) if KV_PROFILE in capacities else None
    if small is not None:
        print(f"\n## {SMALL_PROFILE}: local capacity {small[0]:.4g} req/s\n")
        print(class_table(small[1]))
        print()
        print(markdown_table(small[1]))
        print("\n" + "\n".join(verdict_lines(small[2])))
    affinity = affinity_run([PROFILES[name] for name in args.profiles], seed=args.seed)
    print("\n## Prefix affinity\n")
    print(affinity_table(affinity))
    if args.write_docs:
        for name in args.profiles:
            plot(rows, name, ROOT / "docs" / "img" / f"sim_{name}.png", args.ttft_budget)
            img = ROOT / "docs" / "img" / f"sim_{name}_classes.png"
            plot_classes(rows, name, img, args.ttft_budget)
        write_simulation_section(
            ROOT / "docs" / "routing.md", args, rows, verdicts, capacities, kv, affinity, small
        )
    print(f"\n{len(requests)} requests, {len(rows)} runs, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
