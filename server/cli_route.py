"""`spillgate route --explain REQUEST.json`: why a request would go where it goes, live."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


def add_command(sub: Any) -> None:
    route = sub.add_parser(
        "route",
        help="explain the routing decision for a request against the running gateway",
        description="Ask the running gateway what it would decide for REQUEST.json now "
        "(an OpenAI request body) and print the decision and the numbers behind it.",
    )
    route.add_argument("--explain", type=Path, required=True, metavar="REQUEST.json")
    route.add_argument("--endpoint", default="chat/completions")
    route.add_argument(
        "--header",
        action="append",
        default=[],
        help="a client header to consider, as 'name: value' (repeatable), e.g. "
        "'x-spillgate-data: on-prem' or 'authorization: Bearer sk-sg-...'",
    )
    route.add_argument("--url", default=os.environ.get("SPILLGATE_URL", "http://127.0.0.1:8000"))
    route.add_argument("--admin-token", default=os.environ.get("SPILLGATE_ADMIN_TOKEN"))
    route.add_argument("--json", action="store_true", help="print the raw JSON answer")


def run(args: argparse.Namespace) -> int:
    if not args.admin_token:
        print("spillgate: set --admin-token or SPILLGATE_ADMIN_TOKEN", file=sys.stderr)
        return 2
    try:
        request = json.loads(args.explain.read_text())
    except (OSError, ValueError) as err:
        print(f"spillgate: cannot read {args.explain}: {err}", file=sys.stderr)
        return 2
    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            print(f"spillgate: --header {item!r} is not 'name: value'", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    body = {"request": request, "headers": headers, "endpoint": args.endpoint}
    try:
        resp = httpx.post(
            f"{args.url}/admin/route/explain",
            json=body,
            headers={"authorization": f"Bearer {args.admin_token}"},
            timeout=30,
        )
    except httpx.HTTPError as err:
        print(f"spillgate: cannot reach the gateway at {args.url}: {err}", file=sys.stderr)
        return 1
    answer = resp.json()
    if resp.status_code != 200:
        print(f"spillgate: {resp.status_code}: {answer['error']['message']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(render(answer))
    return 0


def render(answer: dict[str, Any]) -> str:
    d = answer["decision"]
    f = answer["features"]
    lines = [
        f"model      {answer['model']}",
        f"decision   {d['reason']}  ->  {' > '.join(d['targets']) or '(nothing may serve it now)'}",
    ]
    if d["predicted_local_ttft_ms"] is not None:
        lines.append(
            f"predicted  local time to first token {d['predicted_local_ttft_ms']:.0f} ms "
            f"(budget {f['latency_budget_ms']:.0f} ms)"
        )
    lines.append(
        f"request    ~{f['prompt_tokens']} prompt tokens (at most {f['prompt_tokens_max']}), "
        f"max_tokens {f['max_tokens']}, privacy {f['privacy']}, "
        f"cloud budget {'ok' if f['cloud_budget_ok'] else 'spent'}"
    )
    needs = [n for n in ("tools", "images", "json_schema") if f[f"needs_{n}"]]
    if needs:
        lines.append(f"needs      {', '.join(needs)}")
    numbers = d["numbers"]
    for s in answer["local"]:
        lines.append(
            f"local      {s['name']}: {'ready' if s['ready'] else 'NOT READY'}, in flight "
            f"{s['in_flight']}, vLLM running {s['running']} waiting {s['waiting']}, queued "
            f"{s['queued']}/{s['max_concurrency']} slots, decode {s['decode_tokens_per_s']:.1f} "
            f"tok/s, context {s['capabilities']['max_context']}"
        )
        chosen = numbers.get("engine") == s["name"]
        lines.append(_reserve_line(s, chosen and bool(numbers.get("reserve_applied"))))
        lines.append(_engine_load_line(s))
    if "picked" in numbers:
        how = str(numbers["picked"])
        lines.append(f"picked     {numbers['engine']} by {_PICKED.get(how, how)}")
    for c in answer["cloud"]:
        price = (
            f"${c['input_price']}/${c['output_price']} per 1M"
            if c["input_price"] is not None
            else "price unknown"
        )
        lines.append(
            f"cloud      {c['name']}: {'ready' if c['ready'] else 'BREAKER OPEN'}, "
            f"ttft ~{c['ttft_ms']:.0f} ms, {price}"
        )
    for g in answer["gpus"]:
        lines.append(
            f"gpu        {g['index']} {g['name']}: {g['utilization_pct']}% busy, "
            f"{g['memory_used_bytes'] / 2**30:.1f}/{g['memory_total_bytes'] / 2**30:.1f} GiB"
        )
    extra = {k: v for k, v in numbers.items() if k not in _SHOWN}
    if extra:
        lines.append("numbers    " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(lines)


#: The decision's numbers the lines above already show.
_SHOWN = frozenset(
    {"prompt_tokens", "prompt_tokens_max", "max_tokens", "latency_budget_ms", "picked"}
    | {"reserve", "reserve_applied", "private_arrivals_per_s", "prefill_tokens_per_s"}
    | {"prefill_source", "prefill_backlog_tokens", "kv_cache_usage", "gpu_utilization"}
)

_PICKED = {
    "affinity": "prefix affinity (the engine the prompt's prefix hashes to)",
    "affinity_next": "prefix affinity (the next engine: the first was over its load bound)",
    "least_wait": "least predicted wait",
}


def _reserve_line(s: dict[str, Any], applied: bool) -> str:
    """The slots kept for requests that may not spill, and whether this request is held
    to them."""
    rate = f"{s['private_arrivals_per_s']:.3f} req/s measured"
    verdict = "applied to this request" if applied else "not applied to this request"
    return (
        f"reserve    {s['reserve']} of {s['max_concurrency']} slots kept for requests that "
        f"may not spill ({rate}); {verdict}"
    )


def _engine_load_line(s: dict[str, Any]) -> str:
    """Prefill rate and its source, the prefill backlog, KV-cache and GPU use."""
    source = "measured" if s["prefill_measured"] else "configured"
    parts = [
        f"prefill {s['prefill_tokens_per_s']:.0f} tok/s {source}",
        f"backlog {s['prefill_backlog_tokens']} tokens",
    ]
    if s["kv_cache_usage"] is not None:
        parts.append(f"KV cache {100 * s['kv_cache_usage']:.0f}% used")
    if s["gpu_utilization"] is not None:
        parts.append(f"GPU {100 * s['gpu_utilization']:.0f}% busy")
    return "load       " + ", ".join(parts)
