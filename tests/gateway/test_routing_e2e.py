"""The scheduler through the whole gateway: overflow spills, private requests never do.

A stand-in engine that runs one request at a time (and slowly), a recording fake cloud
provider, and bursts of concurrent requests through the official client.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config

KEY = "sk-routing-provider-key-5678"
ADMIN = "admin-token-for-routing-tests"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any, str]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    engine = standin_engine_config(
        "local",
        ["small"],
        args=["--max-num-seqs", "1", "--max-model-len", "512"],
        scheduling={"max_concurrency": 1, "capabilities": {"images": False}},
    )
    config = {
        "engines": [engine],
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {"smart": ["small", "oai/gpt-4o-mini"]},
        # The reserve has its own test (test_reserve.py): on this one-slot engine, the marked
        # requests of the burst test would keep the whole engine for marked requests.
        "scheduler": {"latency_budget_ms": 1000, "max_queue_wait_s": 2.5, "reserve_blocking": 1},
        "admin": {"token": ADMIN},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("routing")) as gateway:
            standin = f"http://127.0.0.1:{engine['port']}"
            _wait_engine_ready(gateway)
            yield gateway, fake, standin
    finally:
        fake.stop()


def _wait_engine_ready(gateway: GatewayProcess) -> None:
    # /readyz is ready once the cloud target is; wait for the engine itself.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{gateway.url}/readyz").json()["engines"].get("local"):
            return
        time.sleep(0.1)
    raise TimeoutError("the stand-in engine never became ready")


@pytest.fixture
def idle(setup: tuple[GatewayProcess, Any, str]) -> tuple[GatewayProcess, Any, str]:
    _, fake, standin = setup
    httpx.post(f"{standin}/_standin/mode", json={})
    fake.reset()
    return setup


def _chat(gateway: GatewayProcess, content: Any, headers: dict[str, str] | None = None):
    body = {"model": "smart", "messages": [{"role": "user", "content": content}], "max_tokens": 20}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers=headers or {}, timeout=30
    )


def test_idle_engine_serves_and_the_cloud_sees_nothing(idle) -> None:
    gateway, fake, _ = idle
    resp = _chat(gateway, "hello")
    assert resp.status_code == 200
    assert resp.headers["x-spillgate-route"] == "local"
    assert resp.headers["x-spillgate-reason"] == "local"
    assert fake.requests == []


def test_burst_spills_overflow_and_never_private_requests(idle) -> None:
    gateway, fake, standin = idle
    # The engine takes 1.5 s per request, one at a time: a burst overflows it.
    httpx.post(f"{standin}/_standin/mode", json={"first_byte_delay_s": 1.5})
    jobs: list[tuple[str, dict[str, str]]] = []
    jobs += [(f"plain marker-p{i}", {}) for i in range(6)]
    jobs += [(f"private marker-s{i}", {"x-spillgate-data": "on-prem"}) for i in range(3)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _chat(gateway, job[0], job[1]), jobs))

    plain, private = results[:6], results[6:]
    assert all(r.status_code == 200 for r in plain), [r.text for r in plain]
    spilled = [r for r in plain if r.headers["x-spillgate-route"] == "oai/gpt-4o-mini"]
    assert spilled, "a burst five times the engine's capacity must overflow to the cloud"
    assert {r.headers["x-spillgate-reason"] for r in spilled} <= {"overload"}
    for r in private:
        if r.status_code == 200:
            assert r.headers["x-spillgate-route"] == "local"
        else:  # waited past max_queue_wait_s: a clear 429, never the cloud
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            assert "may not leave the box" in r.json()["error"]["message"]
    seen_by_cloud = orjson.dumps([req.body for req in fake.requests]).decode()
    assert "marker-p" in seen_by_cloud
    assert "marker-s" not in seen_by_cloud, "a private request reached the cloud provider"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'spillgate_decisions_total{reason="overload"}' in metrics


def test_image_is_a_capability_gap_the_cloud_fills(idle) -> None:
    gateway, fake, _ = idle
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    resp = _chat(gateway, image)
    assert resp.status_code == 200
    assert resp.headers["x-spillgate-reason"] == "images_unsupported"
    assert resp.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    refused = _chat(gateway, image, {"x-spillgate-data": "on-prem"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "images_unsupported"
    assert len(fake.requests) == 1


def test_context_too_long_is_counted_then_spilled(idle) -> None:
    gateway, _, _ = idle
    long_prompt = "lorem ipsum dolor " * 200  # far over the engine's 512-token window
    resp = _chat(gateway, long_prompt)
    assert resp.status_code == 200
    assert resp.headers["x-spillgate-reason"] == "context_too_long"
    assert resp.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    # Near the limit but fitting once counted: it stays local.
    resp = _chat(gateway, "word " * 60)
    assert resp.headers["x-spillgate-route"] == "local"


def test_bad_routing_headers_are_400(idle) -> None:
    gateway, _, _ = idle
    bad = _chat(gateway, "x", {"x-spillgate-max-ttft-ms": "soon"})
    assert bad.status_code == 400 and "x-spillgate-max-ttft-ms" in bad.json()["error"]["message"]
    bad = _chat(gateway, "x", {"x-spillgate-data": "public"})
    assert bad.status_code == 400 and "on-prem" in bad.json()["error"]["message"]


def test_explain_endpoint_and_cli(idle, tmp_path: Path) -> None:
    gateway, fake, _ = idle
    request = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
    denied = httpx.post(f"{gateway.url}/admin/route/explain", json={"request": request})
    assert denied.status_code == 401
    answer = httpx.post(
        f"{gateway.url}/admin/route/explain",
        json={"request": request, "headers": {"x-spillgate-data": "on-prem"}},
        headers={"authorization": f"Bearer {ADMIN}"},
    ).json()
    assert answer["decision"]["reason"] == "local"
    assert answer["decision"]["targets"] == ["local"]  # private: no cloud fallback listed
    assert answer["features"]["privacy"] == "local_only"
    assert answer["local"][0]["max_concurrency"] == 1
    assert answer["local"][0]["capabilities"]["max_context"] == 512
    path = tmp_path / "request.json"
    path.write_text(orjson.dumps(request).decode())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "spillgate.server.cli",
            "route",
            "--explain",
            str(path),
            "--url",
            gateway.url,
            "--admin-token",
            ADMIN,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "decision   local  ->  local > oai/gpt-4o-mini" in out.stdout
    assert "predicted  local time to first token" in out.stdout
    assert "reserve    0 of 1 slots kept for requests that may not spill" in out.stdout
    assert "prefill 2000 tok/s configured, backlog 0 tokens" in out.stdout
    assert "picked     local by least predicted wait" in out.stdout
    assert fake.requests == [], "explaining sends nothing anywhere"


def test_personal_data_keeps_a_request_local_under_load(idle) -> None:
    gateway, fake, standin = idle
    httpx.post(f"{standin}/_standin/mode", json={"first_byte_delay_s": 1.0})
    jobs = [f"plain marker-q{i}" for i in range(4)]
    jobs += [f"mail jane.doe{i}@example.org marker-e{i}" for i in range(2)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda text: _chat(gateway, text), jobs))
    for r in results[4:]:
        assert r.status_code in (200, 429)
        if r.status_code == 200:
            assert r.headers["x-spillgate-route"] == "local"
            assert r.headers["x-spillgate-reason"] in ("local", "kept_local_private")
    seen_by_cloud = orjson.dumps([req.body for req in fake.requests]).decode()
    assert "example.org" not in seen_by_cloud and "marker-e" not in seen_by_cloud
