"""`/healthz` latency while the gateway scans an 8 MiB hostile body, per detector kind.

Starts a gateway (pinned to core 0) whose one route has a cloud target (a recording fake
OpenAI server, so every request is scanned), sends one 8 MiB body built to be a
detector's worst case, and meanwhile polls `/healthz` from core 1 over one keep-alive
connection. Prints p50/p99/max of those polls, the time the hostile request took, and the
same polls with no hostile request as the baseline. The goal: p99 < 50 ms.

    python bench/privacy_healthz.py [--mib 8] [--kinds private_key,email,...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))

from fakes.openai_server import FakeOpenAIServer  # noqa: E402
from harness import free_port, wait_http  # noqa: E402
from privacy_hostile import HOSTILE  # noqa: E402


def polls(url: str, until: threading.Event, seconds: float | None = None) -> list[float]:
    took: list[float] = []
    stop_at = time.monotonic() + seconds if seconds else None
    with httpx.Client(timeout=120) as client:
        while not until.is_set() and (stop_at is None or time.monotonic() < stop_at):
            start = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            took.append((time.perf_counter() - start) * 1000)
    return took


def summary(took: list[float]) -> str:
    if not took:
        return "no poll completed"
    ordered = sorted(took)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(took):>6} polls  p50 {statistics.median(took):6.2f} ms  "
        f"p99 {p99:6.2f} ms  max {ordered[-1]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=8.0)
    parser.add_argument("--kinds", default=",".join(HOSTILE))
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)
    fake = FakeOpenAIServer("openai", "sk-bench-0000").start()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="spillgate-healthz-"))
    config = {
        "home": str(work / "home"),
        "auth": {"enabled": False},
        "server": {"port": port, "max_body_bytes": 4 * size},
        "providers": [{"name": "oai", "kind": "openai-compatible", "base_url": fake.base_url,
                       "api_key": "sk-bench-0000"}],
        "routes": {"cloud": ["oai/gpt-4o-mini"]},
    }  # fmt: skip
    (work / "spillgate.yaml").write_text(yaml.safe_dump(config))
    spillgate = str(Path(sys.executable).parent / "spillgate")
    log = open(work / "gateway.log", "wb")  # noqa: SIM115
    gateway = subprocess.Popen(
        ["taskset", "-c", "0", spillgate, "serve", "--config", str(work / "spillgate.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", 60)
        print(f"gateway on core 0, /healthz polled from this process; body {args.mib} MiB")
        print(f"{'idle (baseline)':<18} {summary(polls(url, threading.Event(), 3.0))}")
        for kind in args.kinds.split(","):
            text = HOSTILE[kind](size)
            body = {"model": "cloud", "messages": [{"role": "user", "content": text}]}
            done = threading.Event()
            result: dict[str, float | int] = {}

            def send(body: dict = body, done: threading.Event = done, result: dict = result):
                start = time.perf_counter()
                reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
                result.update(status=reply.status_code, s=time.perf_counter() - start)
                done.set()

            sender = threading.Thread(target=send)
            sender.start()
            took = polls(url, done)
            sender.join()
            print(f"{kind:<18} {summary(took)}   request {result['status']} "
                  f"in {result['s']:.2f} s")  # fmt: skip
    finally:
        gateway.terminate()
        gateway.wait(30)
        fake.stop()


if __name__ == "__main__":
    main()
