"""Measure the gateway's own cost against an instant upstream, baseline in the same run.

Starts ../shared/tools/fake_upstream.py (instant OpenAI-compatible answers), Spillgate
pinned to core 0, a bare aiohttp proxy pinned to core 0 (the guide's baseline), and drives
each with wrk pinned to core 1. Prints req/s and p50/p99 at concurrency 1, 16 and 64,
streaming time to first chunk (../shared/tools/ttft.py), and gateway CPU per request for
realistic 2,000-token streamed prompts.

    python bench/gateway_overhead.py [--duration 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SHARED_TOOLS = ROOT.parent / "shared" / "tools"
GATEWAY_CORE, LOAD_CORE = "0", "1"
ADMIN_TOKEN = "bench-admin-token-0123456789"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def start(cmd: list[str], core: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(["taskset", "-c", core, *cmd], stdout=out, stderr=subprocess.STDOUT)


def lua_script(path: Path, body: dict, api_key: str) -> Path:
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {api_key}"\n'
        f'wrk.body = "{payload}"\n'
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path, conns: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        lat[pct] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "non2xx": int(errors.group(1)) if errors else 0,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
    }


def ttft(url: str, n: int, api_key: str) -> dict[str, float]:
    tool = str(SHARED_TOOLS / "ttft.py")
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, tool, url, str(n), api_key],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nums = [float(x) for x in re.findall(r"=([\d.]+)", out)]
    return {
        "first_p50_ms": nums[0],
        "first_p99_ms": nums[1],
        "done_p50_ms": nums[2],
        "done_p99_ms": nums[3],
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(pid: int, url: str, script: Path, conns: int, duration: int) -> dict:
    before = cpu_seconds(pid)
    result = wrk(url, script, conns, duration)
    used = cpu_seconds(pid) - before
    requests = result["rps"] * duration
    return {"conns": conns, "rps": result["rps"], "cpu_ms_per_request": 1000 * used / requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spillgate-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, gw_port, base_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        procs.append(
            start(
                [
                    sys.executable,
                    str(SHARED_TOOLS / "fake_upstream.py"),
                    "--port",
                    str(up_port),
                    "--chunks",
                    "20",
                ],
                LOAD_CORE,
                work / "up.log",
            )
        )
        config = work / "spillgate.yaml"
        config.write_text(
            json.dumps(
                {
                    "server": {"port": gw_port},
                    "home": str(work / "home"),
                    # Realistic: API keys checked, every request in the ledger (SQLite).
                    "auth": {"enabled": True},
                    "admin": {"token": ADMIN_TOKEN},
                    "engines": [
                        {
                            "name": "fake",
                            "url": f"{upstream}/v1",
                            "served_model_names": ["fake"],
                            "health_interval_s": 1,
                        }
                    ],
                }
            )
        )
        gateway = start(
            [sys.executable, "-m", "spillgate.server.cli", "serve", "--config", str(config)],
            GATEWAY_CORE,
            work / "gateway.log",
        )
        procs.append(gateway)
        procs.append(
            start(
                [
                    sys.executable,
                    str(ROOT / "bench" / "baseline_proxy.py"),
                    f"{upstream}/v1/chat/completions",
                    str(base_port),
                ],
                GATEWAY_CORE,
                work / "baseline.log",
            )
        )
        gw = f"http://127.0.0.1:{gw_port}"
        base = f"http://127.0.0.1:{base_port}"
        wait_up(f"{upstream}/health")
        wait_up(f"{gw}/readyz")
        wait_up(f"{base}/docs")
        api_key = httpx.post(
            f"{gw}/admin/keys",
            json={"name": "bench"},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        ).json()["key"]

        small = lua_script(
            work / "chat.lua",
            {
                "model": "fake",
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            },
            api_key,
        )
        # ~2,000 tokens of prose, streamed: the realistic case the guide asks for.
        words = "the gateway forwards each request to a local engine unless it is full " * 150
        large = lua_script(
            work / "large.lua",
            {
                "model": "fake",
                "stream": True,
                "messages": [
                    {"role": "system", "content": "You are a careful code reviewer."},
                    {"role": "user", "content": words},
                ],
            },
            api_key,
        )

        for url in (gw, base, upstream):  # warm-up
            wrk(f"{url}/v1/chat/completions", small, 16, 2)

        rows: dict[str, dict] = {}
        for name, url in (("direct", upstream), ("spillgate", gw), ("bare aiohttp proxy", base)):
            rows[name] = {
                f"c{c}": wrk(f"{url}/v1/chat/completions", small, c, args.duration)
                for c in (1, 16, 64)
            }
            rows[name]["stream"] = ttft(f"{url}/v1/chat/completions", 500, api_key)
        # taskset execs its command, so these pids are the servers themselves.
        gw_pid, base_pid = gateway.pid, procs[-1].pid
        cpu = {
            "spillgate": [
                cpu_per_request(gw_pid, f"{gw}/v1/chat/completions", large, c, args.duration)
                for c in (1, 4, 16)
            ],
            "bare aiohttp proxy": [
                cpu_per_request(base_pid, f"{base}/v1/chat/completions", large, c, args.duration)
                for c in (1, 4, 16)
            ],
        }
        report(rows, cpu)
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "cpu": cpu}, indent=2))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def report(rows: dict[str, dict], cpu: dict[str, list]) -> None:
    print(
        "\n| target | c=1 p50 ms | c=1 req/s | c=16 req/s | c=16 p50 ms | c=16 p99 ms | "
        "c=64 req/s | c=64 p99 ms | stream first chunk p50 ms | stream done p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['c1']['p50_ms']:.2f} | {r['c1']['rps']:.0f} | {r['c16']['rps']:.0f} "
            f"| {r['c16']['p50_ms']:.2f} | {r['c16']['p99_ms']:.2f} | {r['c64']['rps']:.0f} "
            f"| {r['c64']['p99_ms']:.2f} | {r['stream']['first_p50_ms']:.2f} "
            f"| {r['stream']['done_p50_ms']:.2f} |"
        )
    d, s = rows["direct"], rows["spillgate"]
    print(f"\nadded p50 at c=1: {s['c1']['p50_ms'] - d['c1']['p50_ms']:.3f} ms (target <= 1 ms)")
    print(f"req/s at c=16: {s['c16']['rps']:.0f} (target >= 1,500)")
    added = s["stream"]["first_p50_ms"] - d["stream"]["first_p50_ms"]
    print(f"added time to first streamed chunk: {added:.3f} ms (target <= 1 ms)")
    print("\nCPU per request, 2,000-token prompt streamed (20 chunks):")
    print("| gateway | " + " | ".join(f"c={x['conns']}" for x in cpu["spillgate"]) + " |")
    print("|---|" + "---|" * len(cpu["spillgate"]))
    for name, series in cpu.items():
        print(
            f"| {name} | "
            + " | ".join(f"{x['cpu_ms_per_request']:.2f} ms ({x['rps']:.0f} req/s)" for x in series)
            + " |"
        )
    for s_row, b_row in zip(cpu["spillgate"], cpu["bare aiohttp proxy"], strict=True):
        print(
            f"ratio at c={s_row['conns']}: "
            f"{s_row['cpu_ms_per_request'] / b_row['cpu_ms_per_request']:.2f}x (target <= 1.5x)"
        )


if __name__ == "__main__":
    main()
