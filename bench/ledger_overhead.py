"""What keys, limits and the write-ahead ledger cost a request, end to end and in-process.

End to end: one keep-alive client sends N sequential chat requests to a gateway in front of
the stand-in engine, for each variant; the latency difference between variants is what the
accounting adds. `--baseline PYTHONPATH` also runs a gateway built from another checkout
(e.g. the commit before this work) under the same conditions.

In-process: the accounting write alone (build the record, JSON, one write(2) to the spool)
and the key check alone (SHA-256 and a dict lookup), timed with timeit.

    python bench/ledger_overhead.py --requests 2000 [--baseline /tmp/base-pkg]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from harness import GatewayProcess, standin_engine_config  # noqa: E402

ADMIN_TOKEN = "bench-admin-token-0123456789"


def _run(name: str, config: dict[str, Any], requests: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        gateway = GatewayProcess(config, Path(tmp), env=env)
        if "PYTHONPATH" in env:  # the baseline predates the `auth` key the harness adds
            gateway.config.pop("auth")
            gateway.config_path.write_text(yaml.safe_dump(gateway.config))
        gateway.start()
        try:
            headers = {}
            if config.get("auth", {}).get("enabled"):
                made = httpx.post(
                    f"{gateway.url}/admin/keys",
                    json={"name": "bench", "rpm": 10**9, "tpm": 10**12},
                    headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                ).json()
                headers["authorization"] = f"Bearer {made['key']}"
            body = {"model": "standin-model", "messages": [{"role": "user", "content": "hi"}]}
            latencies = []
            with httpx.Client(base_url=gateway.url, headers=headers) as client:
                for _ in range(200):  # warm up
                    client.post("/v1/chat/completions", json=body)
                for _ in range(requests):
                    t = time.perf_counter()
                    resp = client.post("/v1/chat/completions", json=body)
                    latencies.append(time.perf_counter() - t)
                    assert resp.status_code == 200, resp.text
        finally:
            gateway.stop()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def _in_process() -> dict[str, float]:
    from spillgate.protocol import Endpoint, UpstreamReply, Usage
    from spillgate.server.accounting import Accounting
    from spillgate.server.budgets import BudgetBook
    from spillgate.server.config import LimitsConfig, TracingConfig
    from spillgate.server.keys import ApiKey, KeyRing, new_secret
    from spillgate.server.ledger.store import Store
    from spillgate.server.ledger.writer import Ledger
    from spillgate.server.limits import Limiter
    from spillgate.server.observe import Metrics
    from spillgate.server.tracing import Tracing

    with tempfile.TemporaryDirectory() as tmp:
        metrics = Metrics()
        store = Store(f"sqlite:///{tmp}/ledger.sqlite3")
        store.open()
        ledger = Ledger(store, Path(tmp) / "spool", metrics)
        accounting = Accounting(
            ledger,
            BudgetBook(metrics),
            Limiter(LimitsConfig(), metrics),
            metrics,
            Tracing(TracingConfig()),
            access_log_enabled=False,
        )
        reply = UpstreamReply(status=200, body=b"{}", usage=Usage(12, 34, 0))
        st = accounting.start("req-1", Endpoint.CHAT)
        st.model, st.reason = "standin-model", "local"
        n = 20_000
        write_s = (
            timeit.timeit(
                lambda: accounting._write(
                    st, "standin", "local", 200, reply, streamed=False, complete=True
                ),
                number=n,
            )
            / n
        )
        ledger.spool.close(None)
        store.close()
    secret, key_hash, prefix = new_secret()
    ring = KeyRing()
    ring.put(key_hash, ApiKey(id="key_1", name="bench", prefix=prefix))
    header = f"Bearer {secret}"
    auth_s = timeit.timeit(lambda: ring.authenticate(header), number=n) / n
    return {"ledger_write_us": write_s * 1e6, "key_check_us": auth_s * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline", help="PYTHONPATH of another checkout's `spillgate`")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    engine = standin_engine_config("standin", ["standin-model"])
    variants: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    if args.baseline:
        # The baseline knows none of the new keys; its config is engines only.
        variants.append(("baseline", {"engines": [engine]}, {"PYTHONPATH": args.baseline}))
    variants += [
        ("ledger, auth off", {"engines": [engine]}, {}),
        (
            "ledger, key + in-process limits",
            {"engines": [engine], "auth": {"enabled": True}, "admin": {"token": ADMIN_TOKEN}},
            {},
        ),
        (
            "ledger, key + Redis limits",
            {
                "engines": [engine],
                "auth": {"enabled": True},
                "admin": {"token": ADMIN_TOKEN},
                "limits": {"redis_url": "redis://127.0.0.1:6379/0"},
            },
            {},
        ),
    ]
    print(f"machine: {os.cpu_count()} CPUs; {args.requests} sequential requests per run")
    for round_ in range(args.rounds):
        for name, config, env in variants:
            engine["port"] = standin_engine_config("x", ["y"])["port"]
            r = _run(name, config, args.requests, env)
            print(
                f"round {round_ + 1}  {name:34s} p50 {r['p50_ms']:.3f} ms  "
                f"mean {r['mean_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms"
            )
    r = _in_process()
    print(
        f"in-process: ledger write {r['ledger_write_us']:.1f} us/request, "
        f"key check {r['key_check_us']:.1f} us/request"
    )


if __name__ == "__main__":
    main()
