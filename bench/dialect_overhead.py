"""The gateway's own cost per inbound API: chat, Responses and Messages, local and spilled.

One instant upstream (bench/dialect_upstream.py) speaks all three APIs. Spillgate, pinned to
core 0 with keys, the ledger and the privacy scans on, serves model `fake` from it as a
local engine (bytes passed through) and model `cloud` from it as an `openai-compatible`
provider (Responses and Messages translated through chat). wrk and the load run on core 1.

Per API it prints: p50 at c=1 direct and through the gateway (the difference is what the
gateway adds), req/s at c=16, and gateway CPU per request for ~2,000-token streamed
prompts, local and spilled.

    python bench/dialect_overhead.py [--duration 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gateway_overhead import (  # noqa: E402
    ADMIN_TOKEN,
    GATEWAY_CORE,
    LOAD_CORE,
    cpu_per_request,
    free_port,
    lua_script,
    start,
    wait_up,
    wrk,
)

PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}
PROSE = "the gateway forwards each request to a local engine unless it is full " * 150
SYSTEM = "You are a careful code reviewer."


def body(api: str, model: str, text: str, stream: bool) -> dict[str, Any]:
    """One request of `api` with a system prompt and a user turn."""
    if api == "responses":
        return {"model": model, "instructions": SYSTEM, "input": text, "stream": stream}
    turn = [{"role": "user", "content": text}]
    if api == "messages":
        return {
            "model": model,
            "max_tokens": 64,
            "system": SYSTEM,
            "messages": turn,
            "stream": stream,
        }
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, *turn],
        "stream": stream,
    }


def gateway_config(work: Path, port: int, upstream: str) -> Path:
    config = work / "spillgate.yaml"
    engine = {"name": "fake", "url": f"{upstream}/v1", "served_model_names": ["fake"]}
    provider = {
        "name": "cloudy",
        "kind": "openai-compatible",
        "base_url": f"{upstream}/v1",
        "api_key": "sk-bench-cloud-0123456789",
    }
    settings = {
        "server": {"port": port},
        "home": str(work / "home"),
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "engines": [{**engine, "health_interval_s": 1}],
        "providers": [provider],
        "routes": {"cloud": ["cloudy/fake"]},
    }
    config.write_text(json.dumps(settings))
    return config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spillgate-dialects-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, gw_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        upstream_cmd = [sys.executable, str(ROOT / "bench" / "dialect_upstream.py")]
        procs.append(start([*upstream_cmd, "--port", str(up_port)], LOAD_CORE, work / "up.log"))
        serve = ["-m", "spillgate.server.cli", "serve", "--config"]
        config = gateway_config(work, gw_port, upstream)
        gateway = start([sys.executable, *serve, str(config)], GATEWAY_CORE, work / "gw.log")
        procs.append(gateway)
        gw = f"http://127.0.0.1:{gw_port}"
        wait_up(f"{upstream}/health")
        wait_up(f"{gw}/readyz")
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        key = httpx.post(f"{gw}/admin/keys", json={"name": "bench"}, headers=admin).json()["key"]

        rows: dict[str, dict[str, Any]] = {}
        for api, path in PATHS.items():
            small = lua_script(work / f"{api}.lua", body(api, "fake", "Say hello.", False), key)
            large = lua_script(work / f"{api}-2k.lua", body(api, "fake", PROSE, True), key)
            spilled = lua_script(work / f"{api}-cloud.lua", body(api, "cloud", PROSE, True), key)
            wrk(f"{gw}{path}", small, 16, 2)  # warm-up
            wrk(f"{gw}{path}", spilled, 4, 2)
            direct = wrk(f"{upstream}{path}", small, 1, args.duration)
            through = wrk(f"{gw}{path}", small, 1, args.duration)
            rows[api] = {
                "direct_c1_p50_ms": direct["p50_ms"],
                "gateway_c1_p50_ms": through["p50_ms"],
                "added_p50_ms": through["p50_ms"] - direct["p50_ms"],
                "gateway_c16_rps": wrk(f"{gw}{path}", small, 16, args.duration)["rps"],
                "cpu_local_2k_stream": cpu_per_request(
                    gateway.pid, f"{gw}{path}", large, 4, args.duration
                ),
                "cpu_spilled_2k_stream": cpu_per_request(
                    gateway.pid, f"{gw}{path}", spilled, 4, args.duration
                ),
            }
        report(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def report(rows: dict[str, dict[str, Any]]) -> None:
    print(
        "| API | p50 c=1 direct (ms) | p50 c=1 gateway (ms) | added (ms) | req/s c=16 "
        "| CPU ms/req, local 2k stream | CPU ms/req, spilled 2k stream |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for api, r in rows.items():
        print(
            f"| {api} | {r['direct_c1_p50_ms']:.3f} | {r['gateway_c1_p50_ms']:.3f} "
            f"| {r['added_p50_ms']:.3f} | {r['gateway_c16_rps']:.0f} "
            f"| {r['cpu_local_2k_stream']['cpu_ms_per_request']:.2f} "
            f"| {r['cpu_spilled_2k_stream']['cpu_ms_per_request']:.2f} |"
        )


if __name__ == "__main__":
    main()
