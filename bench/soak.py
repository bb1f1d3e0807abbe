"""Soak: many requests of every kind, then is the gateway the same size it started at?

Starts a gateway (its launched stand-in engine streaming at a token every few ms) with one
cloud route to a fake OpenAI provider (its own process) that fails a share of requests
(429 with Retry-After, 500, 502, 503, streams cut, broken or ended by an error event), and
sends `--requests` requests from `--concurrency` connections: whole and streamed chat
answers, local, cloud and local-then-cloud, clients that hang up mid-stream, embeddings,
completions, and malformed bodies. A side thread polls `/healthz` throughout.

Reported: the gateway process's RSS, open file descriptors, threads and asyncio tasks
(`spillgate_asyncio_tasks` on /metrics) after warm-up and at the end, both read with no
client connected and nothing in flight (flat within 5% is the goal), their course during the
run, the `/healthz` latency (p50, p99, max, overall and per tenth of the run), and what the
requests got.

    python bench/soak.py [--requests 100000] [--warmup 5000] [--concurrency 32] [--json out]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from fakes.openai_server import FakeOpenAIServer, Fault  # noqa: E402
from harness import STANDIN, free_port, wait_http  # noqa: E402

PROVIDER_KEY = "sk-soak-provider-00112233"
LOCAL, CLOUD, SPILL = "soak-local", "soak-cloud", "soak-spill"
CHAT = [{"role": "user", "content": "Tell me about the weather in Lisbon in spring."}]
#: What the flaky provider does instead of answering well, each equally likely.
FAULTS = [
    Fault(status=429, headers={"retry-after": "1"}),
    Fault(status=500),
    Fault(status=502),
    Fault(status=503),
    Fault(cut_after_chunks=2),
    Fault(malformed_after_chunks=2),
    Fault(error_event_after_chunks=2),
]
#: Bodies a client gets a 4xx for.
MALFORMED = [
    b'{"model": "soak-local", "messages": [',
    b"[1, 2, 3]",
    b'{"model": "soak-local", "messages": "hi"}',
    b'{"model": "soak-cloud", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    b'{"model": "soak-local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
    b'{"model": "soak-cloud", "messages": [{"role": "assistant", "tool_calls": 7}]}',
    b'{"model": "soak-local", "messages": [{"role": "user", "content": "hi"}], "x": '
    + b"[" * 300
    + b"]" * 300
    + b"}",
    b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}',
]


# -- the flaky provider (its own process) -----------------------------------------------------


class FlakyProvider(FakeOpenAIServer):
    """The fake OpenAI provider, failing `fault_rate` of requests at random; a request whose
    `user` is "slow" streams a long answer slowly, for clients to hang up in the middle of."""

    def __init__(self, fault_rate: float, seed: int) -> None:
        super().__init__("openai", PROVIDER_KEY)
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)

    async def _admit(self, request: Any) -> Any:
        body = await request.read()  # aiohttp keeps it: the fake's own read gets it again
        if len(self.requests) > 1000:
            self.requests.clear()  # it keeps every request; a soak does not need them
        if b'"user":"slow"' in body or b'"user": "slow"' in body:
            self.fail_next(Fault(chunk_delay_s=0.01, extra_words=60))
        elif self.rng.random() < self.fault_rate:
            self.fail_next(self.rng.choice(FAULTS))
        return await super()._admit(request)


def serve_provider(fault_rate: float, seed: int) -> None:
    provider = FlakyProvider(fault_rate, seed).start()
    print(provider.port, flush=True)
    threading.Event().wait()


# -- the gateway's own figures ---------------------------------------------------------------


def fd_kinds(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """The gateway's open descriptors by kind; a TCP socket named by the known port at
    either end (`ports`: the gateway's own, the engine's, the provider's)."""
    peers = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            here = int(fields[1].rsplit(":", 1)[1], 16)
            there = int(fields[2].rsplit(":", 1)[1], 16)
            if there == 0:
                peers[fields[9]] = f"tcp listening on {ports.get(here, here)}"
            elif here in ports:
                peers[fields[9]] = f"tcp from a client of the {ports[here]}"
            else:
                peers[fields[9]] = f"tcp to the {ports.get(there, there)}"
    kinds: collections.Counter[str] = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            kinds[peers.get(target[8:-1], "socket, not TCP")] += 1
        else:
            kinds[target.split(":")[0] if ":" in target else "file"] += 1
    return dict(sorted(kinds.items()))


def process_figures(pid: int, url: str) -> dict[str, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    tasks = float("nan")
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("spillgate_asyncio_tasks "):
            tasks = float(line.split()[1])
    return {
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(status["Threads"]),
        "asyncio_tasks": tasks,
    }


def quiet_figures(pid: int, url: str, settle_s: float, ports: dict[int, str]) -> dict[str, Any]:
    """The figures after `settle_s` with nothing in flight; the upstream connections the
    gateway keeps alive (as many as the load once needed) are counted apart."""
    time.sleep(settle_s)
    figures: dict[str, Any] = process_figures(pid, url)
    kinds = fd_kinds(pid, ports)
    pooled = sum(n for kind, n in kinds.items() if kind.startswith("tcp to the"))
    return {**figures, "fds_outside_pools": figures["fds"] - pooled, "fd_kinds": kinds}


class HealthSampler(threading.Thread):
    """Polls /healthz over one keep-alive connection every `every_s`, all run long."""

    def __init__(self, url: str, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.every_s = url, every_s
        self.samples: list[tuple[float, float]] = []  # (when, ms); ms is inf for a failure
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = (time.perf_counter() - start) * 1000 if ok else float("inf")
                self.samples.append((time.monotonic(), took))
                self.stop.wait(self.every_s)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


# -- the load ----------------------------------------------------------------------------------


class Load:
    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.kinds: list[tuple[str, Callable[[aiohttp.ClientSession], Awaitable[str]], int]] = [
            ("chat-local", lambda s: self._whole(s, LOCAL), 26),
            ("chat-local-stream", lambda s: self._stream(s, LOCAL), 22),
            ("chat-cloud", lambda s: self._whole(s, CLOUD), 10),
            ("chat-cloud-stream", lambda s: self._stream(s, CLOUD), 10),
            ("chat-spill-stream", lambda s: self._stream(s, SPILL), 6),
            ("hangup-local-stream", lambda s: self._hang_up(s, LOCAL), 5),
            ("hangup-cloud-stream", lambda s: self._hang_up(s, CLOUD), 5),
            ("embeddings-local", self._embeddings, 4),
            ("completions-local", self._completions, 4),
            ("malformed", self._malformed, 8),
        ]
        self.weights = [w for _, _, w in self.kinds]

    async def run(self, requests: int, concurrency: int) -> float:
        """Sends `requests` requests from `concurrency` connections; returns the seconds."""
        left = iter(range(requests))
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        timeout = aiohttp.ClientTimeout(total=120)
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker() -> None:
                for _ in left:
                    name, send, _w = self.rng.choices(self.kinds, self.weights)[0]
                    try:
                        outcome = await send(session)
                    except (TimeoutError, aiohttp.ClientError) as err:
                        outcome = type(err).__name__
                    self.outcomes[(name, outcome)] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started

    async def _post(self, session: aiohttp.ClientSession, path: str, body: Any) -> str:
        async with session.post(f"{self.url}/v1/{path}", json=body) as resp:
            await resp.read()
            return str(resp.status)

    async def _whole(self, session: aiohttp.ClientSession, model: str) -> str:
        return await self._post(session, "chat/completions", {"model": model, "messages": CHAT})

    async def _stream(self, session: aiohttp.ClientSession, model: str) -> str:
        body = {"model": model, "messages": CHAT, "stream": True}
        body["stream_options"] = {"include_usage": True}
        async with session.post(f"{self.url}/v1/chat/completions", json=body) as resp:
            content = await resp.read()
            if resp.status == 200 and not content.rstrip().endswith(b"data: [DONE]"):
                return "200-ended-by-error"
            return str(resp.status)

    async def _hang_up(self, session: aiohttp.ClientSession, model: str) -> str:
        """Reads the first event, then drops the connection."""
        body = {"model": model, "messages": CHAT, "stream": True, "user": "slow"}
        resp = await session.post(f"{self.url}/v1/chat/completions", json=body)
        try:
            if resp.status == 200:
                await resp.content.readuntil(b"\n\n")
                resp.close()  # closes the connection, not only this response
                return "hung-up"
            await resp.read()
            return str(resp.status)
        finally:
            resp.release()

    async def _embeddings(self, session: aiohttp.ClientSession) -> str:
        body = {"model": LOCAL, "input": ["first text", "second text"]}
        return await self._post(session, "embeddings", body)

    async def _completions(self, session: aiohttp.ClientSession) -> str:
        body = {"model": LOCAL, "prompt": "Once upon a time", "max_tokens": 16}
        return await self._post(session, "completions", body)

    async def _malformed(self, session: aiohttp.ClientSession) -> str:
        body = self.rng.choice(MALFORMED)
        headers = {"content-type": "application/json"}
        async with session.post(
            f"{self.url}/v1/chat/completions", data=body, headers=headers
        ) as resp:
            await resp.read()
            return str(resp.status)


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--warmup", type=int, default=5_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--fault-rate", type=float, default=0.05, help="of cloud requests")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--settle-s", type=float, default=20.0, help="quiet before each reading")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--serve-provider", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_provider:
        serve_provider(args.fault_rate, args.seed)
        return

    work = Path(tempfile.mkdtemp(prefix="spillgate-soak-"))
    loadavg_start = os.getloadavg()
    with open(work / "provider.log", "wb") as provider_log:
        provider = subprocess.Popen(
            [sys.executable, __file__, "--serve-provider", "--fault-rate", str(args.fault_rate)],
            stdout=subprocess.PIPE,
            stderr=provider_log,
            text=True,
        )
    assert provider.stdout is not None
    provider_port = int(provider.stdout.readline())
    provider_url = f"http://127.0.0.1:{provider_port}/v1"
    port, engine_port = free_port(), free_port()
    ports = {port: "gateway", engine_port: "engine", provider_port: "provider"}
    config = {
        "server": {"port": port},
        "home": str(work / "home"),
        "auth": {"enabled": False},
        "engines": [
            {
                "name": "standin",
                "model": LOCAL,
                "served_model_names": [LOCAL],
                "launcher": STANDIN,
                "port": engine_port,
                "args": ["--embeddings", "--max-num-seqs", "64"],
            }
        ],
        "providers": [
            {"name": "oai", "kind": "openai", "base_url": provider_url, "api_key": PROVIDER_KEY}
        ],
        "routes": {CLOUD: ["oai/gpt-4o-mini"], SPILL: [LOCAL, "oai/gpt-4o-mini"]},
    }
    config_path = work / "spillgate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with open(work / "gateway.log", "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "spillgate.server.cli", "serve", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    sampler = HealthSampler(url)
    try:
        wait_http(f"{url}/readyz", 120)
        while not httpx.get(f"{url}/readyz").json()["engines"]["standin"]:
            time.sleep(0.2)
        # A token every 5 ms: streams last long enough to be hung up on.
        mode = {"chunks": 8, "chunk_delay_s": 0.005}
        httpx.post(f"http://127.0.0.1:{engine_port}/_standin/mode", json=mode).raise_for_status()
        load = Load(url, args.seed)
        print(f"gateway pid {gateway.pid}, work dir {work}; warm-up {args.warmup} requests")
        asyncio.run(load.run(args.warmup, args.concurrency))
        start = quiet_figures(gateway.pid, url, args.settle_s, ports)
        print(f"after warm-up: {start}")
        load.outcomes.clear()
        course: list[dict[str, float]] = []
        sampler.start()
        sampled = threading.Event()

        def follow() -> None:
            while not sampled.wait(15):
                course.append({"t_s": round(time.monotonic() - began, 1)})
                course[-1].update(process_figures(gateway.pid, url))

        began = time.monotonic()
        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        took = asyncio.run(load.run(args.requests, args.concurrency))
        sampled.set()
        sampler.stop.set()
        end = quiet_figures(gateway.pid, url, args.settle_s, ports)
        report = summarise(args, start, end, course, sampler, load, took)
        report["loadavg_start"] = loadavg_start
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        alive = gateway.poll() is None and httpx.get(f"{url}/healthz").status_code == 200
        print(f"gateway alive and healthy at the end: {alive}")
    finally:
        sampler.stop.set()
        gateway.terminate()
        gateway.wait(60)
        provider.terminate()
        provider.wait(30)


def summarise(
    args: argparse.Namespace,
    start: dict[str, Any],
    end: dict[str, Any],
    course: list[dict[str, float]],
    sampler: HealthSampler,
    load: Load,
    took: float,
) -> dict[str, Any]:
    change = {
        k: round(100 * (end[k] - start[k]) / start[k], 1)
        for k in start
        if isinstance(start[k], int | float) and start[k]
    }
    samples = sampler.samples
    failed = sum(1 for _, ms in samples if ms == float("inf"))
    tenths = []
    if samples:
        first, last = samples[0][0], samples[-1][0]
        width = (last - first) / 10 or 1
        for i in range(10):
            part = [
                ms
                for t, ms in samples
                if i <= (t - first) / width < i + 1 or (i == 9 and t == last)
            ]
            tenths.append(percentiles([ms for ms in part if ms != float("inf")]))
    by_kind: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (kind, outcome), n in sorted(load.outcomes.items()):
        by_kind[kind][outcome] = n
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "seconds": round(took, 1),
        "requests_per_s": round(args.requests / took, 1),
        "start": start,
        "end": end,
        "change_percent": change,
        "course": course,
        "healthz": percentiles([ms for _, ms in samples if ms != float("inf")]),
        "healthz_failed": failed,
        "healthz_by_tenth": tenths,
        "outcomes": by_kind,
        "loadavg_end": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
