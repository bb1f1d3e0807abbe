"""The overview's numbers, read from the gateway's live state: never on the request path.

Traffic and reasons come from the decision ring's counters; queues and health from the
runtime store and the engine supervisors; GPUs from the monitor's last sample; spend from
the budget book. `/admin/overview` answers it as JSON; the console page renders it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from spillgate.server.decisions import WINDOW_MIN, DecisionRing

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

#: Keys named beside each reason: the ones with the most of its recent requests.
_KEYS_PER_REASON = 3


def traffic(ring: DecisionRing, now: float) -> dict[str, Any]:
    """Requests per second, and the share served locally and in the cloud (15 minutes)."""
    by_kind: dict[str, int] = {}
    for (kind, _), n in ring.reason_counts(now).items():
        by_kind[kind] = by_kind.get(kind, 0) + n
    local, cloud = by_kind.get("local", 0), by_kind.get("cloud", 0)
    served = local + cloud
    return {
        "window_min": WINDOW_MIN,
        "per_second_10s": round(ring.per_second(now, 10), 2),
        "per_second_60s": round(ring.per_second(now, 59), 2),
        "requests": sum(by_kind.values()),
        "local": local,
        "cloud": cloud,
        "refused": by_kind.get("none", 0),
        "local_share": local / served if served else None,
        "cloud_share": cloud / served if served else None,
    }


def reasons(ring: DecisionRing, now: float) -> list[dict[str, Any]]:
    """Each (where, reason) of the last 15 minutes, most frequent first, with the keys
    behind most of its recent requests."""
    counts = ring.reason_counts(now)
    since = now - WINDOW_MIN * 60
    keys: dict[tuple[str, str], dict[str, int]] = {}
    for r in ring.records:
        if r.ts >= since:
            per = keys.setdefault((r.kind, r.reason), {})
            label = r.key_name or r.key_id or "anonymous"
            per[label] = per.get(label, 0) + 1
    rows = []
    for (kind, reason), n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        top = sorted(keys.get((kind, reason), {}).items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            {
                "reason": reason,
                "where": kind,
                "spilled": kind == "cloud",
                "count": n,
                "keys": [name for name, _ in top[:_KEYS_PER_REASON]],
            }
        )
    return rows


def engines(gw: Gateway) -> list[dict[str, Any]]:
    """Each local engine: health, Spillgate's in-flight and queued requests, vLLM's own
    running and waiting counts, and restarts (None for an engine the gateway attaches to)."""
    restarts = {p.engine.name: p.restarts for p in gw.processes}
    rows = []
    for engine in gw.engines:
        rt = gw.runtime.engine(engine)
        rows.append(
            {
                "name": engine.name,
                "ready": engine.ready,
                "in_flight": max(engine.in_flight, rt.queue.active),
                "queued": rt.queue.waiting,
                "running": rt.running,
                "waiting": rt.waiting,
                "restarts": restarts.get(engine.name),
            }
        )
    return rows


def gpus(gw: Gateway) -> list[dict[str, Any]]:
    sampled = gw.monitor.gpus if gw.monitor is not None else ()
    return [
        {
            "index": g.index,
            "name": g.name,
            "utilization_pct": g.utilization_pct,
            "memory_used_bytes": g.memory_used_bytes,
            "memory_total_bytes": g.memory_total_bytes,
            "memory_used_pct": round(100 * g.memory_used_fraction, 1),
        }
        for g in sampled
    ]


def spend(gw: Gateway, now: float) -> dict[str, Any]:
    """Cloud spend today per live key, against its budgets, biggest first."""
    rows = []
    for key in gw.access.ring.live():
        spent = gw.budgets.spent(key.id, now)
        rows.append(
            {
                "id": key.id,
                "name": key.name,
                "day_usd": round(spent.day_usd, 6),
                "budget_day_usd": key.budget_day_usd,
                "month_usd": round(spent.month_usd, 6),
                "budget_month_usd": key.budget_month_usd,
                "day_used_pct": _used_pct(spent.day_usd, key.budget_day_usd),
            }
        )
    rows.sort(key=lambda r: (-r["day_usd"], r["name"]))
    return {"today_usd": round(sum(r["day_usd"] for r in rows), 6), "keys": rows}


def _used_pct(spent: float, budget: float | None) -> float | None:
    if budget is None:
        return None
    return 100.0 if budget == 0 else round(100 * spent / budget, 1)


def cloud_targets(gw: Gateway) -> list[dict[str, Any]]:
    return [{"name": name, "ready": t.ready} for name, t in sorted(gw.cloud_targets.items())]


def overview(gw: Gateway, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    ring = gw.decisions
    return {
        "now": now,
        "traffic": traffic(ring, now),
        "ttft": ring.ttft_by_route(),
        "engines": engines(gw),
        "cloud_targets": cloud_targets(gw),
        "gpus": gpus(gw),
        "spend": spend(gw, now),
        "reasons": reasons(ring, now),
    }


def key_labels(records: Iterable[Any]) -> list[tuple[str, int]]:
    """(key label, requests) over `records`, most first: who is behind a filtered view."""
    counts: dict[str, int] = {}
    for r in records:
        label = r.key_name or r.key_id or "anonymous"
        counts[label] = counts.get(label, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
