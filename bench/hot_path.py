"""The hot-path benchmark set: Spillgate against the bare proxy, its previous commit and LiteLLM.

One instant upstream (bench/trace_upstream.py) on core 1 serves every gateway; the gateways
run pinned to core 0, the load (wrk, ../shared/tools/ttft.py, and the open-loop client of
bench/trace_client.py, its own process) on core 1. Compared in one run, on identical load:

- spillgate: this working tree, with API keys, the ledger, and a route `chat` of the local
  engine and an `openai-compatible` cloud provider (pointing at the upstream's `/cloud`,
  counted there), so the privacy scan runs on every request as in a deployment; the run
  checks that every request stayed local;
- previous: the same at `--previous` (default: the parent of the newest commit that changed
  core/, server/, models/ or fallback/), built with `git archive`;
- bare: bench/baseline_proxy.py, a bare FastAPI + aiohttp streaming proxy;
- litellm: LiteLLM's proxy (1 worker, no database) in its own virtualenv, .bench/, created
  on first use; `--no-litellm` skips it. It gets fewer requests: its cost per request is
  what counts.

Measured: gateway CPU per streamed request (utime + stime of the server's processes from
/proc over a replay, divided by the requests answered) replaying the arrival times of
../shared/traces/azure_llm_2023_conv.csv at 0.5x, 1x and 3x its rate, open loop, with
~2,000-token prompts (the headline) and with the trace's own prompt sizes, max_tokens the
trace's output (capped at 512); 8k and 32k-token prompts at 1x; req/s at 16 concurrent and
p50 at 1 (wrk, small chat, whole answers); time to first chunk; RSS per 1,000 open
streams (the upstream sends one chunk, then holds every stream until released). Prints
tables and each target's ratio with met / missed; nothing is asserted.

    python bench/hot_path.py [--quick] [--no-litellm] [--previous REV] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gateway_overhead import (  # noqa: E402
    ADMIN_TOKEN,
    GATEWAY_CORE,
    LOAD_CORE,
    SHARED_TOOLS,
    free_port,
    lua_script,
    start,
    wait_up,
    wrk,
)
from trace_client import MODEL  # noqa: E402

TRACE = ROOT.parent / "shared" / "traces" / "azure_llm_2023_conv.csv"
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = ROOT / ".bench" / "litellm-venv"
#: The folders the gateway is built from (setup.py's FOLDERS).
CODE = ("core", "server", "models", "fallback")
MAX_TOKENS_CAP = 512
#: An engine's decode pace in the paced replays: 50 tokens a second per stream.
PACE_MS = 20
SMALL = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}


# --- processes ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (LiteLLM may run its server in a child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mib(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Outside:
    """How much of the machine other processes used meanwhile: others' benchmarks on core 0
    skew every figure here. Ours: this process, its live children and its reaped ones."""

    def __init__(self) -> None:
        self.start = self.sample()

    @staticmethod
    def sample() -> tuple[float, float, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, idle = fields[:4]
        mine = os.times()
        ours = mine.user + mine.system + mine.children_user + mine.children_system
        ours += sum(cpu_seconds(p) for p in descendants(os.getpid())[1:])
        return (user + nice + system) / ticks, (user + nice + system + idle) / ticks, ours

    def share(self) -> float:
        """Others' CPU as a share of all cores' time since the start (softirq left out)."""
        busy, total, ours = (b - a for a, b in zip(self.start, self.sample(), strict=True))
        return max(0.0, busy - ours) / total


@dataclass
class Gateway:
    name: str
    url: str  # base URL, no path
    proc: subprocess.Popen[bytes]
    log: Path
    key: str = "sk-none"
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def chat(self) -> str:
        return f"{self.url}/v1/chat/completions"


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def spillgate_config(work: Path, name: str, port: int, upstream: str) -> Path:
    """Keys, the ledger and a route with a cloud target behind the local engine."""
    engine = {
        "name": "fake",
        "url": f"{upstream}/v1",
        "served_model_names": ["fake"],
        # The instant upstream is an engine of unbounded speed and room: the prediction
        # must never send a 32k-token prompt or the 1,000 held streams to the cloud.
        "scheduling": {
            "max_concurrency": 4096,
            "prefill_tokens_per_s": 1e8,
            "decode_tokens_per_s": 1e6,
        },
    }
    provider = {
        "name": "cloudy",
        "kind": "openai-compatible",
        "base_url": f"{upstream}/cloud/v1",
        "api_key": "sk-bench-cloud-0123456789",
    }
    settings = {
        "server": {"port": port},
        "home": str(work / f"home-{name}"),
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "engines": [engine],
        "providers": [provider],
        "routes": {MODEL: ["fake", "cloudy/fake"]},
        "scheduler": {"max_queue_len": 4096},
    }
    config = work / f"{name}.yaml"
    config.write_text(json.dumps(settings))
    return config


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def last_code_change() -> str:
    """The newest commit that changed the gateway's code (not a bench or docs commit)."""
    return git("rev-list", "-n", "1", "HEAD", "--", *CODE)


def build_previous(rev: str, work: Path) -> Path:
    """The package at `rev`, laid out as setup.py's FOLDERS install it; its PYTHONPATH."""
    src, pkg = work / "prev-src", work / "prev"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, *CODE],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.move(src / "core", pkg / "spillgate")
    for folder in ("server", "models", "fallback"):
        shutil.move(src / folder, pkg / "spillgate" / folder)
    return pkg


def start_spillgate(
    name: str, work: Path, upstream: str, pythonpath: Path | None = None
) -> Gateway:
    port = free_port()
    config = spillgate_config(work, name, port, upstream)
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    log = work / f"{name}.log"
    cmd = [sys.executable, "-m", "spillgate.server.cli", "serve", "--config", str(config)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", GATEWAY_CORE, *cmd], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return Gateway(name, f"http://127.0.0.1:{port}", proc, log)


def ready_spillgate(gw: Gateway) -> None:
    try:
        wait_up(f"{gw.url}/readyz")
    except TimeoutError:
        log = gw.log.read_text()[-3000:]
        raise SystemExit(f"{gw.name} did not become ready; its log:\n{log}") from None
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = httpx.post(f"{gw.url}/admin/keys", json={"name": "bench"}, headers=admin)
    gw.key = answer.json()["key"]


def ensure_litellm() -> Path | None:
    """LiteLLM's `litellm` command in .bench/litellm-venv, installed there on first use."""
    exe, stamp = LITELLM_VENV / "bin" / "litellm", LITELLM_VENV / f".litellm-{LITELLM_VERSION}"
    if exe.exists() and stamp.exists():
        return exe
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
    try:
        subprocess.run(["python3.11", "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run(
            [*pip, f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or ""
        print(f"LiteLLM left out: its install failed: {err} {detail[-500:]}", flush=True)
        return None
    stamp.touch()
    return exe


def start_litellm(exe: Path, work: Path, upstream: str) -> Gateway:
    port = free_port()
    config = work / "litellm.yaml"
    model = {"model": "openai/fake", "api_base": f"{upstream}/v1", "api_key": "x"}
    key = "sk-bench-litellm-" + "0123456789abcdef" * 2  # it refuses to start without one
    config.write_text(
        json.dumps(
            {
                "model_list": [{"model_name": MODEL, "litellm_params": model}],
                "litellm_settings": {"telemetry": False},
                "general_settings": {"master_key": key},
            }
        )
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    log = work / "litellm.log"
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", GATEWAY_CORE, *cmd, "--num_workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    gw = Gateway("litellm", f"http://127.0.0.1:{port}", proc, log, key)
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                wait_up(f"{gw.url}/health/liveliness", timeout_s=2)
                return gw
        raise TimeoutError("LiteLLM did not become ready")
    except BaseException:
        stop([proc])
        raise


# --- measurements ---------------------------------------------------------------------------


def load_trace(n: int) -> list[tuple[float, int, int]]:
    """The trace's first `n` requests: seconds after the first, prompt and output tokens."""
    rows = []
    with open(TRACE) as f:
        for row in csv.DictReader(f):
            rows.append(
                (
                    datetime.fromisoformat(row["TIMESTAMP"][:26]),
                    int(row["ContextTokens"]),
                    int(row["GeneratedTokens"]),
                )
            )
            if len(rows) == n:
                break
    t0 = rows[0][0]
    return [((t - t0).total_seconds(), c, g) for t, c, g in rows]


def schedule(
    trace: list[tuple[float, int, int]], window: int, factor: float, tokens: int | None
) -> list[list[float]]:
    """The first `window * factor` trace requests at `factor` times the trace's rate: every
    level lasts about as long as the 1x window. `tokens` fixes the prompt size."""
    count = max(1, round(window * factor))
    return [
        [at / factor, tokens or context, max(1, min(gen, MAX_TOKENS_CAP))]
        for at, context, gen in trace[:count]
    ]


def run_client(
    gw: Gateway, work: Path, requests: list[list[float]], announce: bool = False
) -> subprocess.Popen[str]:
    spec = {
        "url": gw.chat,
        "key": gw.key,
        "requests": requests,
        "announce": announce,
        "open_timeout_s": 60,
    }
    path = work / "client.json"
    path.write_text(json.dumps(spec))
    cmd = [sys.executable, str(ROOT / "bench" / "trace_client.py"), str(path)]
    return subprocess.Popen(["taskset", "-c", LOAD_CORE, *cmd], stdout=subprocess.PIPE, text=True)


def client_line(proc: subprocess.Popen[str], word: str) -> list[str]:
    """The next line of the client's that starts with `word`, split; [] if it exited."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return line.split()
    return []


def client_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"load client failed ({proc.returncode}): {out[-500:]}")
    return json.loads(lines[-1])


def replay(gw: Gateway, work: Path, requests: list[list[float]]) -> dict[str, Any]:
    """CPU per request of `gw` while the client sends `requests` on their schedule."""
    proc = run_client(gw, work, requests)
    client_line(proc, "START")
    before = cpu_seconds(gw.proc.pid)
    stats = client_result(proc)
    time.sleep(0.5)  # let the gateway finish what follows an answer (ledger, logs)
    used = cpu_seconds(gw.proc.pid) - before
    ttfts = sorted(stats.pop("ttft_ms"))
    return {
        **stats,
        "requests": len(requests),
        "cpu_s": used,
        "cpu_ms_per_request": 1000 * used / max(stats["ok"], 1),
        "rate": len(requests) / max(requests[-1][0], 1e-9) if len(requests) > 1 else 0.0,
        "ttft_p50_ms": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_p99_ms": ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))] if ttfts else 0.0,
    }


def open_streams(gw: Gateway, work: Path, upstream: str, streams: int) -> dict[str, Any]:
    """RSS of `gw` before and while `streams` streams stay open (the upstream holds them)."""
    httpx.post(f"{upstream}/bench/hold")
    time.sleep(0.5)
    before = rss_mib(gw.proc.pid)
    proc = run_client(gw, work, [[0.0, 50, 16]] * streams, announce=True)
    try:
        line = client_line(proc, "OPEN")
        opened = int(line[1]) if len(line) == 2 and line[0] == "OPEN" else 0
        during = 0.0
        for _ in range(5):  # the largest of a few samples over a second
            time.sleep(0.2)
            during = max(during, rss_mib(gw.proc.pid))
    finally:
        httpx.post(f"{upstream}/bench/release")
    stats = client_result(proc)
    time.sleep(1.0)
    after = rss_mib(gw.proc.pid)
    return {
        "streams": streams,
        "opened": opened,
        "ok": stats["ok"],
        "failed": stats["failed"],
        "errors": stats["errors"],
        "routes": stats["routes"],
        "rss_before_mib": before,
        "rss_open_mib": during,
        "rss_after_mib": after,
        "mib_per_1000": (during - before) * 1000 / max(opened, 1),
    }


def ttft(url: str, n: int, api_key: str) -> dict[str, float]:
    """../shared/tools/ttft.py for the `chat` route (gateway_overhead's asks for `fake`)."""
    tool = str(SHARED_TOOLS / "ttft.py")
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, tool, url, str(n), api_key, MODEL],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nums = [float(x.split("=")[1]) for x in out.split() if "=" in x]
    return {"first_p50_ms": nums[0], "first_p99_ms": nums[1], "done_p50_ms": nums[2]}


# --- the run --------------------------------------------------------------------------------


@dataclass
class Plan:
    wrk_s: int
    ttft_n: int
    window: int  # trace requests at 1x
    big_requests: int  # for 8k and 32k prompts
    litellm_window: int
    streams: int
    idle_s: int
    trace_levels: tuple[float, ...] = (0.5, 1, 3)
    paced_levels: tuple[float, ...] = (1, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases, a smoke run")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument(
        "--previous",
        help="the commit to compare with (default: the gateway's code before its last change)",
    )
    ap.add_argument("--trace-requests", type=int, help="trace requests replayed at 1x")
    ap.add_argument("--streams", type=int, help="open streams for the memory test")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    plan = (
        Plan(
            wrk_s=2,
            ttft_n=100,
            window=8,
            big_requests=3,
            litellm_window=8,
            streams=1000,
            idle_s=3,
            trace_levels=(1,),
            paced_levels=(1,),
        )
        if args.quick
        else Plan(
            wrk_s=5,
            ttft_n=300,
            window=50,
            big_requests=25,
            litellm_window=30,
            streams=1000,
            idle_s=10,
        )
    )
    plan.window = args.trace_requests or plan.window
    plan.streams = args.streams or plan.streams
    # 1,000 client streams are 2,000 sockets in a proxy: lift the soft limit for all children.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    previous = git("rev-parse", "--short", args.previous or f"{last_code_change()}~1")
    litellm = None if args.no_litellm else ensure_litellm()
    work = Path(tempfile.mkdtemp(prefix="spillgate-hotpath-"))
    print(f"logs and configs in {work}; previous = {previous}", flush=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        up_cmd = [sys.executable, str(ROOT / "bench" / "trace_upstream.py"), "--port", str(up_port)]
        procs.append(start(up_cmd, LOAD_CORE, work / "upstream.log"))
        wait_up(f"{upstream}/health")

        current = start_spillgate("spillgate", work, upstream)
        procs.append(current.proc)
        prev = start_spillgate("previous", work, upstream, build_previous(previous, work))
        procs.append(prev.proc)
        base_port = free_port()
        base_cmd = [
            sys.executable,
            str(ROOT / "bench" / "baseline_proxy.py"),
            f"{upstream}/v1/chat/completions",
            str(base_port),
        ]
        bare = Gateway(
            "bare",
            f"http://127.0.0.1:{base_port}",
            start(base_cmd, GATEWAY_CORE, work / "bare.log"),
            work / "bare.log",
        )
        procs.append(bare.proc)
        ready_spillgate(current)
        ready_spillgate(prev)
        wait_up(f"{bare.url}/docs")
        gateways = [current, prev, bare]
        outside = Outside()
        results = measure(gateways, work, upstream, plan)
        if litellm:
            results["litellm"] = measure_litellm(litellm, work, upstream, plan, procs)
        results["outside_cpu_share"] = outside.share()
        results["cloud_calls"] = httpx.get(f"{upstream}/bench/counts").json()
        results["access_log_routes"] = access_routes(current.log)
        results["previous_rev"] = previous
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        stop(procs)


def measure(gateways: list[Gateway], work: Path, upstream: str, plan: Plan) -> dict[str, Any]:
    """Every phase, each gateway in turn on the same load before the next phase."""
    small = lua_script(work / "small.lua", SMALL, gateways[0].key)
    for gw in gateways:  # warm-up; the key is the same per wrk script, so one script per gateway
        script = lua_script(work / f"small-{gw.name}.lua", SMALL, gw.key)
        wrk(gw.chat, script, 16, 2)
    out: dict[str, Any] = {"wrk": {}, "ttft": {}, "replay": {}, "rss": {}, "idle": {}}
    for gw in gateways:  # what a gateway spends with no requests at all (probes, timers)
        before = cpu_seconds(gw.proc.pid)
        time.sleep(plan.idle_s)
        out["idle"][gw.name] = 1000 * (cpu_seconds(gw.proc.pid) - before) / plan.idle_s
    targets = [("direct", f"{upstream}/v1/chat/completions", "sk-none")] + [
        (gw.name, gw.chat, gw.key) for gw in gateways
    ]
    print("wrk c=1 and c=16, small chat ...", flush=True)
    for name, url, _key in targets:
        script = small if name == "direct" else work / f"small-{name}.lua"
        out["wrk"][name] = {
            "c1": wrk(url, script, 1, plan.wrk_s),
            "c16": wrk(url, script, 16, plan.wrk_s),
        }
    for name, url, key in targets:
        out["ttft"][name] = ttft(url, plan.ttft_n, key)

    trace = load_trace(max(plan.window * 3, plan.big_requests) + 1)
    runs = [(f"2k x{f}", schedule(trace, plan.window, f, 2000)) for f in (0.5, 1, 3)] + [
        (f"trace x{f}", schedule(trace, plan.window, f, None)) for f in plan.trace_levels
    ]
    runs += [(f"{k}k x1", schedule(trace, plan.big_requests, 1, k * 1000)) for k in (8, 32)]
    # As an engine decodes: one event every PACE_MS, each its own read at the gateway.
    paced = [(f"2k paced x{f}", schedule(trace, plan.window, f, 2000)) for f in plan.paced_levels]
    for label, requests in runs + paced:
        pace_ms = PACE_MS if "paced" in label else 0
        httpx.post(f"{upstream}/bench/pace?ms={pace_ms}")
        print(f"replay {label}: {len(requests)} requests ...", flush=True)
        out["replay"][label] = {gw.name: replay(gw, work, requests) for gw in gateways}
    httpx.post(f"{upstream}/bench/pace?ms=0")
    for gw in gateways:
        print(f"{plan.streams} open streams through {gw.name} ...", flush=True)
        out["rss"][gw.name] = open_streams(gw, work, upstream, plan.streams)
    return out


def measure_litellm(
    exe: Path, work: Path, upstream: str, plan: Plan, procs: list[subprocess.Popen[bytes]]
) -> dict[str, Any]:
    print("LiteLLM: starting ...", flush=True)
    try:
        gw = start_litellm(exe, work, upstream)
    except TimeoutError:
        log = (work / "litellm.log").read_text()[-2000:]
        print(f"LiteLLM left out: it did not become ready; its log:\n{log}", flush=True)
        return {}
    procs.append(gw.proc)
    try:
        script = lua_script(work / "small-litellm.lua", SMALL, gw.key)
        wrk(gw.chat, script, 4, 2)  # warm-up
        trace = load_trace(plan.litellm_window + 1)
        print("LiteLLM: wrk c=16 and the 2k replay at 1x ...", flush=True)
        return {
            "c16": wrk(gw.chat, script, 16, plan.wrk_s),
            "2k x1": replay(gw, work, schedule(trace, plan.litellm_window, 1, 2000)),
        }
    finally:
        stop([gw.proc])


def access_routes(log: Path) -> dict[str, int]:
    """Requests per route in the gateway's access log (`none`: refused, or the client left)."""
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        if '"spillgate.access"' in line:
            route = json.loads(line).get("route", "?")
            counts[route] = counts.get(route, 0) + 1
    return counts


# --- the report -----------------------------------------------------------------------------


def cpu(row: dict[str, Any], name: str) -> float:
    return float(row[name]["cpu_ms_per_request"])


def busy(row: dict[str, Any], idle_ms_per_s: float) -> float:
    """CPU ms per request less what the gateway spends idle over the replay's duration."""
    return (1000 * row["cpu_s"] - idle_ms_per_s * row["seconds"]) / max(row["ok"], 1)


def target(text: str, ok: bool) -> None:
    print(f"- {text}: {'met' if ok else 'missed'}")


def report(r: dict[str, Any]) -> None:
    names = [n for n in r["wrk"] if n != "direct"]
    lite = r.get("litellm") or {}
    print(f"\nprevious = {r['previous_rev']}\n")
    print("| target | c=1 p50 ms | c=16 req/s | c=16 p99 ms | first chunk p50 ms | done p50 ms |")
    print("|---|---|---|---|---|---|")
    for name, w in r["wrk"].items():
        t = r["ttft"][name]
        print(
            f"| {name} | {w['c1']['p50_ms']:.2f} | {w['c16']['rps']:,.0f} "
            f"| {w['c16']['p99_ms']:.1f} | {t['first_p50_ms']:.2f} | {t['done_p50_ms']:.2f} |"
        )
    if lite:
        print(f"| litellm | — | {lite['c16']['rps']:,.0f} | {lite['c16']['p99_ms']:.1f} | — | — |")

    idle = ", ".join(f"{n} {v:.1f}" for n, v in r["idle"].items())
    print(f"\nIdle CPU, ms per second with no requests: {idle}")
    print("\nGateway CPU ms per streamed request (requests answered; failed, if any):\n")
    print("| replay | req/s | " + " | ".join(names) + (" | litellm |" if lite else " |"))
    print("|---|---|" + "---|" * (len(names) + (1 if lite else 0)))
    for label, row in r["replay"].items():
        cells = []
        for n in names:
            fail = f", {row[n]['failed']} failed" if row[n]["failed"] else ""
            cells.append(f"{cpu(row, n):.2f} ({row[n]['ok']}{fail})")
        if lite:
            cells.append(f"{cpu(lite, label):.1f} ({lite[label]['ok']})" if label in lite else "—")
        print(f"| {label} | {row[names[0]]['rate']:.1f} | " + " | ".join(cells) + " |")

    print("\nThe same less each gateway's idle CPU over the replay (the cost of the requests):\n")
    print("| replay | " + " | ".join(names) + " | spillgate/bare |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, row in r["replay"].items():
        active = {n: busy(row[n], r["idle"][n]) for n in names}
        ratio = active["spillgate"] / active["bare"] if active["bare"] > 0 else float("nan")
        line = " | ".join(f"{active[n]:.2f}" for n in names)
        print(f"| {label} | {line} | {ratio:.2f}x |")

    print("\nRSS (MiB) with streams held open after their first chunk:\n")
    print("| gateway | streams open | RSS before | RSS while open | after | MiB per 1,000 |")
    print("|---|---|---|---|---|---|")
    for name, x in r["rss"].items():
        print(
            f"| {name} | {x['opened']} | {x['rss_before_mib']:.1f} | {x['rss_open_mib']:.1f} "
            f"| {x['rss_after_mib']:.1f} | {x['mib_per_1000']:.1f} |"
        )

    sg, bare, prev = "spillgate", "bare", "previous"
    rep, w, t, rss = r["replay"], r["wrk"], r["ttft"], r["rss"]
    print("\nTargets (ratios within this run):")
    for level in ("x0.5", "x1", "x3"):
        ratio = cpu(rep[f"2k {level}"], sg) / cpu(rep[f"2k {level}"], bare)
        target(
            f"CPU/request, 2k prompts {level}: spillgate/bare {ratio:.2f}x (<= 1.3x)", ratio <= 1.3
        )
    levels = [cpu(rep[f"2k {lv}"], sg) for lv in ("x0.5", "x1", "x3")]
    print(
        f"- CPU/request, 2k prompts, 0.5x to 3x: {min(levels):.2f}-{max(levels):.2f} ms "
        f"(spread {max(levels) / min(levels):.2f}x)"
    )
    for label in ("trace x1", "8k x1", "32k x1", *(k for k in rep if "paced" in k)):
        ratio = cpu(rep[label], sg) / cpu(rep[label], bare)
        target(f"CPU/request, {label}: spillgate/bare {ratio:.2f}x (<= 1.3x)", ratio <= 1.3)
    if lite:
        ratio = cpu(lite, "2k x1") / cpu(rep["2k x1"], sg)
        target(f"CPU/request, 2k x1: litellm/spillgate {ratio:.1f}x (>= 15x)", ratio >= 15)
    ratio = w[sg]["c16"]["rps"] / w[bare]["c16"]["rps"]
    target(f"c=16 req/s: spillgate/bare {ratio:.2f}x (>= 0.7x)", ratio >= 0.7)
    added = w[sg]["c1"]["p50_ms"] - w["direct"]["c1"]["p50_ms"]
    target(f"added p50 at c=1: {added:.2f} ms over direct (<= 0.5 ms)", added <= 0.5)
    added = t[sg]["first_p50_ms"] - t["direct"]["first_p50_ms"]
    target(f"added time to first chunk: {added:.2f} ms over direct (<= 0.5 ms)", added <= 0.5)
    print(
        f"- RSS per 1,000 open streams: spillgate {rss[sg]['mib_per_1000']:.1f} MiB, "
        f"bare {rss[bare]['mib_per_1000']:.1f} MiB"
    )
    print("Against the previous commit:")
    ratio = cpu(rep["2k x1"], sg) / cpu(rep["2k x1"], prev)
    print(f"- CPU/request, 2k x1: spillgate/previous {ratio:.2f}x")
    print(f"- c=16 req/s: spillgate/previous {w[sg]['c16']['rps'] / w[prev]['c16']['rps']:.2f}x")
    p50s = w[sg]["c1"]["p50_ms"], w[prev]["c1"]["p50_ms"]
    print(f"- p50 at c=1: spillgate {p50s[0]:.2f} ms, previous {p50s[1]:.2f} ms")
    print(f"- RSS per 1,000 open streams: previous {rss[prev]['mib_per_1000']:.1f} MiB")

    routes: dict[str, int] = {}
    for row in rep.values():
        for name in (sg, prev):
            for route, n in row[name]["routes"].items():
                routes[route] = routes.get(route, 0) + n
    failed = sum(x["failed"] for row in rep.values() for x in row.values())
    print(
        f"\nSpillgate's x-spillgate-route over the replays: {routes}; upstream calls: "
        f"{r['cloud_calls']}; failed requests in the replays: {failed}"
    )
    print(f"Spillgate's access log, requests per route: {r['access_log_routes']}")
    share = r["outside_cpu_share"]
    print(f"Other processes used {100 * share:.0f}% of the machine's CPU during the run")
    if share > 0.05:
        print("WARNING: the machine was busy with other work; repeat before quoting figures")
    if r["cloud_calls"]["cloud"] or set(routes) - {"fake"}:
        print("WARNING: some requests did not stay local; the CPU figures include spilled ones")


if __name__ == "__main__":
    main()
